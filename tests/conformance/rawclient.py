"""A raw-socket WebSocket peer for the conformance suite.

Nothing here uses wskit: the opening handshake, frame encoding and parsing,
masking and permessage-deflate are written out again, small and literal, so
that the suite checks wskit against an independent reading of RFC 6455 and
RFC 7692 rather than against itself.

* :func:`build_frame` serializes *any* frame, valid or not: every header bit,
  any opcode, a masking key or none, a length encoded in the 7-, 16- or
  64-bit form whatever the payload size, or a declared length that lies.
* :class:`RawPeer` sends frames (optionally chopped into several TCP writes
  with pauses) and reads them back: frames, whole messages (inflated with
  its own zlib objects when compressed), the close frame and the TCP EOF,
  each with a timeout.
* :class:`RawClient` is a :class:`RawPeer` that performs the client side of
  the opening handshake itself, optionally offering permessage-deflate.
  :func:`http_exchange` sends arbitrary bytes as a request and reads a plain
  HTTP response, for the handshake failure cases.

The server side lives in ``rawserver.py`` and reuses :class:`RawPeer`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import socket
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_TIMEOUT",
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "RSV1",
    "RSV2",
    "RSV3",
    "Frame",
    "Message",
    "PeerEOF",
    "DeflateParams",
    "Deflater",
    "Inflater",
    "HTTPResponse",
    "HandshakeFailed",
    "RawPeer",
    "RawClient",
    "build_frame",
    "open_stream",
    "stream_protocol_factory",
    "close_payload",
    "deflate_bomb",
    "mask_bytes",
    "accept_for",
    "parse_deflate_response",
    "http_exchange",
    "read_http_head",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# The reserved bits as a 3-bit number, as they sit in the first header byte >> 4.
RSV1 = 0b100
RSV2 = 0b010
RSV3 = 0b001

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFAULT_TIMEOUT = 5.0
_EMPTY_BLOCK = b"\x00\x00\xff\xff"


# --------------------------------------------------------------------------- frames


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (masking is its own inverse)."""
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool | bytes = False,
    length_form: int | None = None,
    length: int | None = None,
) -> bytes:
    """Serialize one frame, valid or deliberately not.

    Args:
        opcode: any value 0-15.
        payload: the (unmasked) payload.
        fin: the FIN bit.
        rsv: the reserved bits as a number 0-7 (``RSV1 | RSV3``...).
        mask: ``True`` for a fresh random key, a 4-byte key, or ``False``.
        length_form: 7, 16 or 64 forces that length encoding (a non-minimal
            one when the payload is short); ``None`` picks the minimal one.
        length: the length written in the header, when it should lie about
            the payload (a 64-bit value with its top bit set, say).
    """
    declared = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    mbit = 0x80 if mask is not False else 0
    form = length_form
    if form is None:
        form = 7 if declared < 126 else 16 if declared < 65536 else 64
    if form == 7:
        if declared > 125:
            raise ValueError("the 7-bit form holds at most 125")
        header = struct.pack("!BB", b0, mbit | declared)
    elif form == 16:
        header = struct.pack("!BBH", b0, mbit | 126, declared)
    elif form == 64:
        header = struct.pack("!BBQ", b0, mbit | 127, declared)
    else:
        raise ValueError(f"unknown length form {form}")
    if mask is False:
        return header + payload
    key = os.urandom(4) if mask is True else mask
    assert len(key) == 4
    return header + key + mask_bytes(payload, key)


def close_payload(code: int | None = None, reason: bytes | str = b"") -> bytes:
    """The payload of a close frame (no code: empty)."""
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    """One frame as read off the wire."""

    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    mask_key: bytes | None
    #: The length as declared in the header (equal to ``len(payload)``).
    length: int
    #: Which encoding the length used: 7, 16 or 64 bits.
    length_form: int

    @property
    def rsv1(self) -> bool:
        return bool(self.rsv & RSV1)

    @property
    def masked(self) -> bool:
        return self.mask_key is not None

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (``None`` when it carries none)."""
        assert self.opcode == OP_CLOSE, f"not a close frame: opcode {self.opcode}"
        if len(self.payload) < 2:
            return None
        code: int = struct.unpack("!H", self.payload[:2])[0]
        return code

    @property
    def close_reason(self) -> bytes:
        assert self.opcode == OP_CLOSE
        return self.payload[2:]

    @property
    def wire_size(self) -> int:
        head = {7: 2, 16: 4, 64: 10}[self.length_form]
        return head + (4 if self.masked else 0) + self.length

    def __repr__(self) -> str:  # short payloads only: a 16 MiB repr helps nobody
        shown = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return (
            f"Frame(fin={self.fin}, rsv={self.rsv:03b}, opcode={self.opcode:#x}, "
            f"len={self.length}, masked={self.masked}, payload={shown!r})"
        )


@dataclass
class Message:
    """A complete data message, or a control frame met while reading one."""

    opcode: int
    data: bytes
    frames: list[Frame] = field(default_factory=list)
    compressed: bool = False

    @property
    def text(self) -> str:
        assert self.opcode == OP_TEXT, f"not a text message: opcode {self.opcode}"
        return self.data.decode()

    @property
    def wire_size(self) -> int:
        return sum(f.wire_size for f in self.frames)


class PeerEOF(Exception):
    """The peer closed the TCP connection (``partial``: bytes of an unfinished frame)."""

    def __init__(self, partial: bytes = b"") -> None:
        super().__init__(f"TCP connection closed by the peer ({len(partial)} stray bytes)")
        self.partial = partial


# --------------------------------------------------------------------------- deflate


@dataclass
class DeflateParams:
    """A permessage-deflate agreement, as read from a response header."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15
    #: The raw parameters of the response, for assertions.
    raw: dict[str, str | None] = field(default_factory=dict)


def parse_deflate_response(value: str | None) -> DeflateParams | None:
    """Parse a ``Sec-WebSocket-Extensions`` response value (one extension expected)."""
    if value is None or not value.strip():
        return None
    elements = [e.strip() for e in value.split(",")]
    if len(elements) != 1:
        raise AssertionError(f"expected one extension in the response, got {value!r}")
    parts = [p.strip() for p in elements[0].split(";")]
    if parts[0].lower() != "permessage-deflate":
        raise AssertionError(f"unexpected extension {parts[0]!r}")
    params = DeflateParams()
    for part in parts[1:]:
        name, eq, val = part.partition("=")
        name = name.strip().lower()
        v: str | None = val.strip().strip('"') if eq else None
        if name in params.raw:
            raise AssertionError(f"duplicate parameter {name} in {value!r}")
        params.raw[name] = v
        if name == "server_no_context_takeover":
            assert v is None, value
            params.server_no_context_takeover = True
        elif name == "client_no_context_takeover":
            assert v is None, value
            params.client_no_context_takeover = True
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            assert v is not None and v.isdigit() and 8 <= int(v) <= 15, value
            setattr(params, name, int(v))
        else:
            raise AssertionError(f"unknown parameter {name} in {value!r}")
    return params


class Deflater:
    """Compresses messages as RFC 7692 section 7.2.1 says, with a given window.

    zlib will not compress with a raw 8-bit window, so for 8 the input is fed
    in 256-byte pieces with a full flush after each: a full flush forgets the
    history, so no match can reach back further than 256 bytes.
    """

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False) -> None:
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self._obj: zlib._Compress | None = None

    def compress(self, data: bytes) -> bytes:
        """One whole message: the compressed payload, without the trailing empty block."""
        if self._obj is None:
            self._obj = zlib.compressobj(6, zlib.DEFLATED, -max(self.window_bits, 9))
        obj = self._obj
        if self.window_bits == 8:
            out = b"".join(
                obj.compress(data[i : i + 256]) + obj.flush(zlib.Z_FULL_FLUSH)
                for i in range(0, max(len(data), 1), 256)
            )
        else:
            out = obj.compress(data) + obj.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(_EMPTY_BLOCK), out[-8:]
        if self.no_context_takeover or self.window_bits == 8:
            self._obj = None
        return out[:-4]


class Inflater:
    """Decompresses messages of a peer that agreed to a given window.

    ``strict=True`` makes zlib prove that no back-reference reaches further
    than the window. zlib only checks distances against its window *plus
    what the current call has produced*, so a one-shot decompress accepts a
    stream that cheats on the window; handing out the output one byte per
    call leaves it only the window to look into.
    """

    def __init__(
        self, window_bits: int = 15, no_context_takeover: bool = False, strict: bool = False
    ) -> None:
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self.strict = strict
        self._obj: zlib._Decompress | None = None

    def inflate(self, payload: bytes) -> bytes:
        """Inflate one whole message's payload (all its frames' payloads joined)."""
        if self._obj is None:
            self._obj = zlib.decompressobj(-self.window_bits)
        obj = self._obj
        data = payload + _EMPTY_BLOCK
        out = self._strict(obj, data) if self.strict else obj.decompress(data)
        if obj.unused_data not in (b"", _EMPTY_BLOCK):
            raise AssertionError("data after the end of the deflate stream")
        if self.no_context_takeover or obj.eof:
            self._obj = None
        return out

    @staticmethod
    def _strict(obj: zlib._Decompress, data: bytes) -> bytes:
        out = bytearray()
        for i in range(len(data)):
            chunk = data[i : i + 1]
            while True:
                piece = obj.decompress(chunk, 1)
                chunk = obj.unconsumed_tail
                if piece:
                    out += piece
                elif not chunk:
                    break
        return bytes(out)


def deflate_bomb(mib: int) -> bytes:
    """A message payload (raw deflate, trailing empty block removed) of ``mib`` MiB of zeros.

    With a sync flush after each MiB, every MiB after the first compresses
    to the very same ~1 KB (same history, same codes, byte-aligned end), so
    a bomb of any size costs one copy instead of compressing it all.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(2**20)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    steady = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert steady == compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert steady.endswith(_EMPTY_BLOCK)
    return (first + steady * (mib - 1))[:-4]


# --------------------------------------------------------------------------- HTTP


@dataclass
class HTTPResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return ", ".join(values) if values else None

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class HandshakeFailed(Exception):
    def __init__(self, response: HTTPResponse) -> None:
        super().__init__(f"handshake failed: {response.status} {response.reason}")
        self.response = response


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def read_http_head(
    reader: asyncio.StreamReader, timeout: float = DEFAULT_TIMEOUT
) -> tuple[str, list[tuple[str, str]]]:
    """Read an HTTP head up to the blank line: ``(start line, headers)``."""
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
    return _parse_head(head)


async def _read_response(reader: asyncio.StreamReader, timeout: float) -> HTTPResponse:
    start, headers = await read_http_head(reader, timeout)
    version, _, rest = start.partition(" ")
    assert version == "HTTP/1.1", start
    status_text, _, reason = rest.partition(" ")
    response = HTTPResponse(int(status_text), reason, headers)
    if response.status != 101:
        length = response.get("Content-Length")
        async with asyncio.timeout(timeout):
            if length is not None:
                response.body = await reader.readexactly(int(length))
            else:
                response.body = await reader.read()
    return response


async def http_exchange(
    host: str, port: int, request: bytes, timeout: float = DEFAULT_TIMEOUT
) -> tuple[HTTPResponse, bool]:
    """Send raw request bytes; return the response and whether the server then closed TCP."""
    reader, writer = await open_stream(host, port)
    try:
        writer.write(request)
        response = await _read_response(reader, timeout)
        try:
            async with asyncio.timeout(timeout):
                rest = await reader.read()
            closed = rest == b""
        except TimeoutError:
            closed = False
        return response, closed
    finally:
        writer.close()


# --------------------------------------------------------------------------- streams


class ResetTolerantReader(asyncio.StreamReader):
    """A stream reader that keeps what it buffered when the peer resets TCP.

    A peer that fails the connection closes its socket; bytes we send after
    that make its kernel answer with RST. A plain :class:`asyncio.StreamReader`
    then raises on every read, losing the close frame it had already
    buffered. Here a reset counts as EOF (``reset`` tells them apart).
    """

    reset = False

    def set_exception(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionError):
            self.reset = True
            self.feed_eof()
        else:
            super().set_exception(exc)


def stream_protocol_factory(
    connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter], None] | None = None,
) -> Callable[[], asyncio.StreamReaderProtocol]:
    """A protocol factory for ``create_connection``/``create_server`` using that reader."""

    def factory() -> asyncio.StreamReaderProtocol:
        reader = ResetTolerantReader(limit=2**20)
        protocol = asyncio.StreamReaderProtocol(reader, connected)
        # The protocol only keeps a weak reference to a reader without a callback.
        protocol.reader = reader  # type: ignore[attr-defined]
        return protocol

    return factory


async def open_stream(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like :func:`asyncio.open_connection`, with a :class:`ResetTolerantReader`."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(stream_protocol_factory(), host, port)
    reader: asyncio.StreamReader = protocol.reader  # type: ignore[attr-defined]
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


# --------------------------------------------------------------------------- peers


class RawPeer:
    """One end of a WebSocket connection after the handshake, spoken by hand.

    ``mask`` is the default for frames sent (a client masks, a server does
    not). ``deflate`` is the agreement, if any; ``inflater`` decodes what the
    other side compresses and ``deflater`` compresses what we send.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        mask: bool,
        deflate: DeflateParams | None = None,
        strict_inflate: bool = False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.mask = mask
        self.deflate = deflate
        self.inflater: Inflater | None = None
        self.deflater: Deflater | None = None
        if deflate is not None:
            # "Local" is our side: a client sends with the client window.
            c_bits, c_nct = deflate.client_max_window_bits, deflate.client_no_context_takeover
            s_bits, s_nct = deflate.server_max_window_bits, deflate.server_no_context_takeover
            if mask:
                (send_bits, send_nct), (recv_bits, recv_nct) = (c_bits, c_nct), (s_bits, s_nct)
            else:
                (send_bits, send_nct), (recv_bits, recv_nct) = (s_bits, s_nct), (c_bits, c_nct)
            self.deflater = Deflater(send_bits, send_nct)
            self.inflater = Inflater(recv_bits, recv_nct, strict=strict_inflate)
        self._partial: list[Frame] = []
        self._eof = False
        #: Set when a write failed because the peer had closed the connection.
        self.send_failed = False
        #: Assert that every frame received is masked (we are a server) or not (a client).
        self.check_masking = True
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Every write should leave as its own segment when chopping frames.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- sending -----------------------------------------------------------

    async def send_raw(
        self,
        data: bytes,
        *,
        chunks: int | Sequence[int] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Write bytes, whole or cut into pieces with a pause after each.

        ``chunks`` is a piece size, or a list of piece sizes (the rest goes
        in one last piece).
        """
        if chunks is None:
            pieces = [data]
        elif isinstance(chunks, int):
            pieces = [data[i : i + chunks] for i in range(0, len(data), chunks)]
        else:
            pieces, pos = [], 0
            for size in chunks:
                pieces.append(data[pos : pos + size])
                pos += size
            if pos < len(data):
                pieces.append(data[pos:])
        for piece in pieces:
            if not piece:
                continue
            if self.send_failed or self.writer.is_closing():
                # The peer is gone (it failed the connection): what is left
                # to send no longer matters, what it sent before still does.
                self.send_failed = True
                return
            try:
                self.writer.write(piece)
                await self.writer.drain()
            except ConnectionError:
                self.send_failed = True
                return
            if delay and len(pieces) > 1:
                await asyncio.sleep(delay)

    async def send_frame(
        self,
        opcode: int,
        payload: bytes | str = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bool | bytes | None = None,
        length_form: int | None = None,
        length: int | None = None,
        chunks: int | Sequence[int] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Send one frame; see :func:`build_frame` and :meth:`send_raw`."""
        if isinstance(payload, str):
            payload = payload.encode()
        frame = build_frame(
            opcode,
            payload,
            fin=fin,
            rsv=rsv,
            mask=self.mask if mask is None else mask,
            length_form=length_form,
            length=length,
        )
        await self.send_raw(frame, chunks=chunks, delay=delay)

    def message_frames(
        self,
        opcode: int,
        data: bytes | str,
        *,
        frame_size: int | None = None,
        compress: bool = False,
    ) -> list[bytes]:
        """Encode a message, fragmented into ``frame_size`` pieces: one bytes per frame."""
        if isinstance(data, str):
            data = data.encode()
        if compress:
            assert self.deflater is not None, "permessage-deflate was not negotiated"
            data = self.deflater.compress(data)
        if frame_size is None or frame_size >= len(data):
            pieces = [data]
        else:
            pieces = [data[i : i + frame_size] for i in range(0, len(data), frame_size)]
        out = []
        for i, piece in enumerate(pieces):
            out.append(
                build_frame(
                    opcode if i == 0 else OP_CONT,
                    piece,
                    fin=i == len(pieces) - 1,
                    rsv=RSV1 if compress and i == 0 else 0,
                    mask=self.mask,
                )
            )
        return out

    async def send_message(
        self,
        opcode: int,
        data: bytes | str,
        *,
        frame_size: int | None = None,
        compress: bool = False,
        chunks: int | Sequence[int] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Send a whole message, optionally fragmented, compressed, chopped."""
        frames = self.message_frames(opcode, data, frame_size=frame_size, compress=compress)
        await self.send_raw(b"".join(frames), chunks=chunks, delay=delay)

    async def send_close(self, code: int | None = 1000, reason: bytes | str = b"") -> None:
        await self.send_frame(OP_CLOSE, close_payload(code, reason))

    # -- receiving ---------------------------------------------------------

    async def _read_exactly(self, n: int) -> bytes:
        try:
            return await self.reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            self._eof = True
            raise PeerEOF(exc.partial) from None
        except ConnectionResetError:
            self._eof = True
            raise PeerEOF() from None

    async def recv_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        """Read the next frame; :class:`PeerEOF` if TCP closes first."""
        async with asyncio.timeout(timeout):
            head = await self._read_exactly(2)
            b0, b1 = head
            length = b1 & 0x7F
            form = 7
            if length == 126:
                (length,) = struct.unpack("!H", await self._read_exactly(2))
                form = 16
            elif length == 127:
                (length,) = struct.unpack("!Q", await self._read_exactly(8))
                form = 64
            key = await self._read_exactly(4) if b1 & 0x80 else None
            payload = await self._read_exactly(length)
        if key is not None:
            payload = mask_bytes(payload, key)
        if self.check_masking:
            # Section 5.1: a client masks every frame, a server none.
            expected = "unmasked" if self.mask else "masked"
            assert (key is None) == self.mask, f"the peer sent a frame that is not {expected}"
        return Frame(
            fin=bool(b0 & 0x80),
            rsv=(b0 >> 4) & 7,
            opcode=b0 & 0x0F,
            payload=payload,
            mask_key=key,
            length=length,
            length_form=form,
        )

    async def recv_message(self, timeout: float = DEFAULT_TIMEOUT) -> Message:
        """Read a whole data message, or the next control frame (even mid-message).

        Fragments read before a control frame are kept, and the next call
        goes on with the same message. Asserts that the frames follow the
        fragmentation rules.
        """
        while True:
            frame = await self.recv_frame(timeout)
            if frame.opcode >= 8:
                assert frame.fin, f"fragmented control frame {frame}"
                assert frame.rsv == 0, f"control frame with reserved bits {frame}"
                return Message(frame.opcode, frame.payload, [frame])
            if self._partial:
                assert frame.opcode == OP_CONT, f"new message inside a fragmented one: {frame}"
                assert frame.rsv == 0, f"reserved bits on a continuation frame: {frame}"
            else:
                assert frame.opcode in (OP_TEXT, OP_BINARY), f"unexpected frame {frame}"
                allowed = RSV1 if self.inflater is not None else 0
                assert frame.rsv & ~allowed == 0, f"unexpected reserved bits: {frame}"
            self._partial.append(frame)
            if frame.fin:
                frames, self._partial = self._partial, []
                payload = b"".join(f.payload for f in frames)
                compressed = frames[0].rsv1
                if compressed:
                    assert self.inflater is not None
                    payload = self.inflater.inflate(payload)
                return Message(frames[0].opcode, payload, frames, compressed)

    async def recv_data(self, timeout: float = DEFAULT_TIMEOUT) -> Message:
        """Read the next data message; fail on any control frame before it."""
        message = await self.recv_message(timeout)
        assert message.opcode in (OP_TEXT, OP_BINARY), f"expected data, got {message.frames}"
        return message

    async def expect_close(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        """Read frames up to a close frame and return it.

        Any data message or pong before it is a failure (tests that expect
        echoes read them first).
        """
        try:
            frame = await self.recv_frame(timeout)
        except PeerEOF:
            raise AssertionError("TCP closed without a close frame") from None
        except TimeoutError:
            raise AssertionError(f"no close frame within {timeout}s") from None
        assert frame.opcode == OP_CLOSE, f"expected a close frame, got {frame}"
        assert frame.fin and frame.rsv == 0, frame
        return frame

    async def expect_close_code(
        self, code: int | None, timeout: float = DEFAULT_TIMEOUT, *, eof: bool = True
    ) -> Frame:
        """Expect a close frame with ``code``, then (by default) the TCP EOF."""
        frame = await self.expect_close(timeout)
        assert frame.close_code == code, (
            f"expected close code {code}, got {frame.close_code} ({frame.close_reason!r})"
        )
        if frame.close_reason:
            frame.close_reason.decode()  # the reason must be valid UTF-8
        if eof:
            await self.expect_eof(timeout)
        return frame

    async def expect_eof(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Expect the peer to close TCP with nothing more sent."""
        try:
            async with asyncio.timeout(timeout):
                rest = await self.reader.read(65536)
                while rest == b"" and not self.reader.at_eof():
                    rest = await self.reader.read(65536)
        except ConnectionResetError:
            rest = b""
        except TimeoutError:
            raise AssertionError(f"the peer did not close TCP within {timeout}s") from None
        assert rest == b"", f"expected EOF, got {len(rest)} more bytes: {rest[:40]!r}"
        self._eof = True

    async def expect_silence(self, duration: float) -> None:
        """Assert that nothing arrives (and TCP stays open) for ``duration`` seconds."""
        try:
            async with asyncio.timeout(duration):
                data = await self.reader.read(65536)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {data[:40]!r}" if data else "got EOF")

    async def aclose(self) -> None:
        """Drop the TCP connection (no closing handshake)."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class RawClient(RawPeer):
    """A client that does the opening handshake itself; see :meth:`open`."""

    response: HTTPResponse
    key: str

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        path: str = "/",
        extensions: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
        strict_inflate: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> RawClient:
        """Connect and complete the handshake; :class:`HandshakeFailed` on non-101.

        ``extensions`` is the ``Sec-WebSocket-Extensions`` value to offer,
        e.g. ``"permessage-deflate; client_max_window_bits"``.
        """
        reader, writer = await open_stream(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if extensions is not None:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
        lines += [f"{k}: {v}" for k, v in extra_headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            response = await _read_response(reader, timeout)
        except BaseException:
            writer.close()
            raise
        if response.status != 101:
            writer.close()
            raise HandshakeFailed(response)
        assert (response.get("Upgrade") or "").lower() == "websocket", response
        assert "upgrade" in (response.get("Connection") or "").lower(), response
        assert response.get("Sec-WebSocket-Accept") == accept_for(key), response
        deflate = parse_deflate_response(response.get("Sec-WebSocket-Extensions"))
        if deflate is not None and extensions is None:
            raise AssertionError("the server accepted an extension that was not offered")
        if deflate is not None and "client_max_window_bits" not in deflate.raw:
            # Our offer's limit binds us even when the server does not echo it.
            offered = re.search(r"client_max_window_bits\s*=\s*(\d+)", extensions or "")
            if offered:
                deflate.client_max_window_bits = int(offered.group(1))
        client = cls(reader, writer, mask=True, deflate=deflate, strict_inflate=strict_inflate)
        client.response = response
        client.key = key
        return client

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
