"""Fuzz entry points: one function per parser, taking any bytes, failing only on a bug.

Each target is a plain function ``target(data: bytes) -> None`` that atheris,
hypothesis (``tests/fuzz/run.py``) and the corpus replay
(``tests/fuzz/test_corpus.py``) all call the same way. It returns normally
for every input the code under test handles as documented, and raises
(``AssertionError`` for a broken property, anything else for an exception
that escaped) for a bug. The first bytes of the input choose the
configuration (side, compression, limits, chunking), so that one input file
replays exactly the run that failed.

``frames``
    :meth:`wskit.protocol.connection.Connection.receive_data` on either side,
    with or without permessage-deflate, the stream cut in chunks. It never
    raises (protocol errors fail the connection, they do not escape), the
    events are well formed and no message exceeds ``max_size``, and the
    compiled parse path reports exactly what the pure one reports.
``http``
    The handshake's HTTP parsers and checks: :class:`RequestParser` then
    :func:`server_handshake` (only ``InvalidRequest``; a 101 that serializes
    and parses back), or :class:`ResponseParser` then
    :meth:`ClientHandshake.process_response` (only ``InvalidResponse`` and
    ``HandshakeRejected``).
``wire``
    The hub's wire decoding, both protocols: ``decode`` returns a packet or
    ``None`` or refuses it with ``WireError``; a ws-wrapper packet encodes back to the same
    packet; an iris value reads as its natural type; the arguments of an
    event bind to typed handlers or fail with ``ConversionError`` only.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypedDict

from wskit.exceptions import HandshakeRejected, InvalidRequest, InvalidResponse
from wskit.hub.convert import ConversionError, HandlerSignature
from wskit.hub.wire import (
    Cancel,
    Event,
    IrisProtocol,
    IrisValue,
    Result,
    WireError,
    WsWrapperProtocol,
)
from wskit.protocol import connection as connection_module
from wskit.protocol.connection import Connection, Side
from wskit.protocol.deflate import DeflateOptions, PerMessageDeflate
from wskit.protocol.events import CloseReceived, DataReceived, PingReceived, PongReceived
from wskit.protocol.handshake import ClientHandshake, is_redirect, server_handshake
from wskit.protocol.http11 import RequestParser, ResponseParser, serialize_response
from wskit.protocol.uri import parse_uri

__all__ = ["TARGETS", "frames", "http", "wire", "compiled_parse_simple"]


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (all of it at once when ``size`` is 0)."""
    if not size:
        yield data
        return
    for start in range(0, len(data), size):
        yield data[start : start + size]


# -- frames ---------------------------------------------------------------------------


@functools.cache
def compiled_parse_simple() -> Callable[..., int] | None:
    """The compiled parse kernel, even where ``WSKIT_NO_EXTENSIONS`` keeps wskit off it."""
    try:
        from wskit.speedups import frames as kernels
    except ImportError:
        return None
    return kernels.parse_simple


_MAX_SIZES = (2**20, 125, 70_000, None)


@dataclasses.dataclass(frozen=True)
class FrameConfig:
    """What the first two bytes of a ``frames`` input choose."""

    side: Side
    deflate: bool
    no_context_takeover: bool
    small_window: bool
    max_size: int | None
    defer_failure: bool
    auto_pong: bool
    chunk: int
    as_bytearray: bool

    @classmethod
    def read(cls, flags: int, chunking: int) -> FrameConfig:
        return cls(
            side=Side.CLIENT if flags & 1 else Side.SERVER,
            deflate=bool(flags & 2),
            no_context_takeover=bool(flags & 4),
            small_window=bool(flags & 8),
            max_size=_MAX_SIZES[(flags >> 4) & 3],
            defer_failure=bool(flags & 64),
            auto_pong=not flags & 128,
            chunk=chunking & 0x7F,
            as_bytearray=bool(chunking & 0x80),
        )

    def connection(self) -> Connection:
        deflate = None
        if self.deflate:
            bits = 9 if self.small_window else 15
            deflate = PerMessageDeflate(
                is_client=self.side is Side.CLIENT,
                server_no_context_takeover=self.no_context_takeover,
                client_no_context_takeover=self.no_context_takeover,
                server_max_window_bits=bits,
                client_max_window_bits=bits,
            )
        return Connection(
            self.side,
            max_size=self.max_size,
            deflate=deflate,
            auto_pong=self.auto_pong,
            defer_failure=self.defer_failure,
        )


def _check_events(events: list[Any], max_size: int | None) -> None:
    """The events a connection reported are well formed and within its limits."""
    in_message: type | None = None  # the type of the fragments of the message in assembly
    size = 0
    closed = False
    for event in events:
        assert not closed, f"event after the close frame: {event!r}"
        kind = type(event)
        if kind is DataReceived:
            data = event.data
            assert type(data) in (str, bytes), f"message data of type {type(data)}"
            assert in_message in (None, type(data)), "a message mixes text and binary fragments"
            size += len(data.encode()) if type(data) is str else len(data)
            assert max_size is None or size <= max_size, f"message of {size} > {max_size} bytes"
            if event.fin:
                in_message, size = None, 0
            else:
                in_message = type(data)
        elif kind is PingReceived or kind is PongReceived:
            assert type(event.data) is bytes and len(event.data) <= 125
        elif kind is CloseReceived:
            assert event.code == 1005 or 1000 <= event.code < 5000, event
            closed = True
        else:
            raise AssertionError(f"unknown event {event!r}")


def _run_frames(config: FrameConfig, stream: bytes, kernel: Callable[..., int] | None) -> Any:
    """Feed ``stream`` to a fresh connection with the parse ``kernel``; what it reported."""
    saved = connection_module._parse_simple
    connection_module._parse_simple = kernel
    try:
        conn = config.connection()
        events: list[Any] = []
        output: list[bytes] = []
        for piece in _chunks(stream, config.chunk):
            # Must not raise, whatever arrives: a bad frame fails the connection.
            conn.receive_data(bytearray(piece) if config.as_bytearray else piece)
            events += conn.events_received()
            output += conn.data_to_send()
            conn.close_expected()
        if conn.failure_pending:
            conn.commit_failure()
        conn.receive_eof()
        events += conn.events_received()
        output += conn.data_to_send()
    finally:
        connection_module._parse_simple = saved
    _check_events(events, config.max_size)
    error = conn.error
    if error is not None:
        assert 1000 <= error.code < 5000 and error.code not in (1005, 1006, 1011), error
    # A client masks what it sends with random keys: compare sizes there.
    sent: list[Any] = [len(b) for b in output] if config.side is Side.CLIENT else output
    outcome = (type(error).__name__, error and error.code, conn.close_sent, conn.state)
    return events, sent, outcome


def frames(data: bytes) -> None:
    """The frame parser: byte 0 chooses the connection, byte 1 the chunking, then the stream."""
    if len(data) < 2:
        return
    config = FrameConfig.read(data[0], data[1])
    stream = data[2:]
    pure = _run_frames(config, stream, None)
    kernel = compiled_parse_simple()
    if kernel is not None:
        compiled = _run_frames(config, stream, kernel)
        assert compiled == pure, f"compiled {compiled!r}\n!= pure {pure!r}"


# -- http -----------------------------------------------------------------------------

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_URI = parse_uri("ws://example.com:8080/chat?x=1")


def _request(stream: bytes, chunk: int, strict_origin: bool) -> None:
    parser = RequestParser(max_line=512, max_headers=32, max_head=4096)
    request = None
    try:
        for piece in _chunks(stream, chunk):
            request = parser.feed(piece) or request
    except InvalidRequest as exc:
        assert 400 <= exc.status < 600, exc.status
        return
    if request is None:
        return
    # What an application reads of a request never fails.
    request.path, request.query, request.query_params, request.cookies, request.host  # noqa: B018
    try:
        result = server_handshake(
            request,
            subprotocols=["chat", "superchat"],
            origins=["http://example.com:8080", None] if strict_origin else None,
            compression=DeflateOptions(),
        )
    except InvalidRequest as exc:
        assert 400 <= exc.status < 600, exc.status
        return
    # A 101 we build is one we can send, and one a client reads back as sent.
    raw = serialize_response(result.response)
    back = ResponseParser().feed(raw)
    assert back is not None and back.status == 101, raw


def _response(stream: bytes, chunk: int, with_deflate: bool) -> None:
    parser = ResponseParser(max_line=512, max_headers=32, max_head=4096, max_body=4096)
    response = None
    try:
        for piece in _chunks(stream, chunk):
            response = parser.feed(piece) or response
        if response is None:
            response = parser.feed_eof()
    except InvalidResponse:
        return
    assert response is not None
    is_redirect(response)
    handshake = ClientHandshake(
        _URI,
        subprotocols=["chat"],
        compression=DeflateOptions() if with_deflate else None,
        key=_KEY,
    )
    try:
        handshake.process_response(response)
    except (InvalidResponse, HandshakeRejected):
        return


def http(data: bytes) -> None:
    """The HTTP parsers and handshake checks: byte 0 chooses the side and the chunking."""
    if not data:
        return
    mode, stream = data[0], data[1:]
    chunk = (mode >> 2) & 0x3F
    if mode & 1:
        _response(stream, chunk, with_deflate=bool(mode & 2))
    else:
        _request(stream, chunk, strict_origin=bool(mode & 2))


# -- wire -----------------------------------------------------------------------------


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "red"
    GREEN = 2


class Options(TypedDict):
    name: str
    size: int


class _Client:
    """Stands for the hub's client class in the handlers' signatures."""


def _scalars(client: _Client, a: int, b: str, c: float, d: bool, e: bytes) -> None: ...


def _containers(a: list[int], b: dict[str, float], c: tuple[int, str], d: set[str]) -> None: ...


def _objects(a: Point, b: Color, c: Options, d: Literal["x", 1], e: int | None = None) -> None: ...


def _variadic(client: _Client, first: str, *rest: int) -> None: ...


def _plain(a: Any, b: Any = None, *rest: Any) -> None: ...


_SIGNATURES = [
    HandlerSignature(func, _Client) for func in (_scalars, _containers, _objects, _variadic, _plain)
]

_compact_json = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)
_PROTOCOLS = (
    WsWrapperProtocol(),  # msgspec's JSON when installed
    WsWrapperProtocol(dumps=_compact_json, loads=json.loads),  # the standard library's
    IrisProtocol(),
    IrisProtocol(prefix=""),  # every message is for the hub
)


def _bind_everywhere(args: tuple[Any, ...]) -> None:
    client = _Client()
    for signature in _SIGNATURES:
        try:
            signature.bind(client, args)
        except ConversionError:
            pass


def _same_packet(protocol: WsWrapperProtocol, packet: Any) -> None:
    """A ws-wrapper packet written back and read again is the same packet."""
    if type(packet) is Event:
        fields: dict[str, Any] = {"a": [packet.name, *packet.args]}
        if packet.request_id is not None:
            fields["i"] = packet.request_id
        if packet.channel is not None:
            fields["c"] = packet.channel
        text = protocol.dumps(fields)
    elif type(packet) is Result:
        text = protocol.encode_result(packet)
    else:
        text = protocol.encode_cancel(packet.request_id)
    again = protocol.decode(text)
    assert again is not None and type(again) is type(packet), (text, again)
    # Compared as text: NaN, which the standard library reads, is not equal to itself.
    assert protocol.dumps(list(again)) == protocol.dumps(list(packet)), (packet, again)


def wire(data: bytes) -> None:
    """The hub's wire decoding: byte 0 chooses the protocol and the message type."""
    if not data:
        return
    protocol = _PROTOCOLS[data[0] & 3]
    message: str | bytes = data[1:]
    if not data[0] & 4:
        message = data[1:].decode("utf-8", "replace")  # a text message is always valid UTF-8
    try:
        packet = protocol.decode(message)
    except WireError as exc:  # the one refusal decode documents: over a bound
        assert exc.request_id is None or isinstance(exc.request_id, int | str), exc.request_id
        return
    if packet is None:
        return
    assert type(packet) in (Event, Result, Cancel), packet
    assert isinstance(packet.request_id, int | str) or (
        type(packet) is Event and packet.request_id is None
    ), packet
    if type(packet) is Event:
        assert type(packet.name) is str and type(packet.args) is tuple, packet
        assert packet.channel is None or type(packet.channel) is str, packet
        for arg in packet.args:
            if type(arg) is IrisValue:
                arg.natural()
        _bind_everywhere(packet.args)
    if isinstance(protocol, WsWrapperProtocol):
        _same_packet(protocol, packet)


TARGETS: dict[str, Callable[[bytes], None]] = {"frames": frames, "http": http, "wire": wire}
"""Every fuzz target by name: the name of its corpus directory too."""
