"""Unit tests for the sans-I/O state machine, wskit.protocol.connection.

Most tests wire a client and a server :class:`Connection` back to back in
memory (what one sends, the other receives) and are parametrized over the
direction, so that each rule is checked on both sides: with masking from
the client, without from the server (RFC 6455 section 5.1). The closing
handshake is also checked against a model of the RFC, in ``test_state.py``;
``PreparedMessage`` in ``test_prepared.py``.
"""

from __future__ import annotations

import itertools
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.support import Frame, deflate_pair, make_pair, parse_frames, reassemble
from wskit.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    LocalProtocolError,
)
from wskit.protocol.connection import (
    MIN_FRAGMENT_COST,
    Connection,
    PreparedMessage,
    Side,
    State,
)
from wskit.protocol.events import (
    CloseReceived,
    DataReceived,
    Event,
    PingReceived,
    PongReceived,
)
from wskit.protocol.frames import apply_mask

# --------------------------------------------------------------------------- helpers

DEFLATE_CONFIGS: dict[str, dict[str, object] | None] = {
    "plain": None,
    "deflate": {},
    "deflate-nct": {"server_no_context_takeover": True, "client_no_context_takeover": True},
    "deflate-w8": {"server_max_window_bits": 8, "client_max_window_bits": 9},
}


def oriented(
    direction: str, deflate: dict[str, object] | None = None, **kwargs: object
) -> tuple[Connection, Connection]:
    """``(sender, receiver)`` for ``direction`` "c2s" or "s2c"."""
    client, server = make_pair(deflate, **kwargs)
    return (client, server) if direction == "c2s" else (server, client)


def transfer(src: Connection, dst: Connection) -> list[Event]:
    """Deliver what ``src`` wants to send to ``dst``; return ``dst``'s events."""
    data = b"".join(src.data_to_send())
    if data:
        dst.receive_data(data)
    return dst.events_received()


def sent_frames(conn: Connection) -> list[Frame]:
    return parse_frames(b"".join(conn.data_to_send()))


def raw_frame(
    b0: int,
    payload: bytes,
    *,
    masked: bool,
    length_form: int | None = None,
    length: int | None = None,
) -> bytes:
    """Build a frame by hand, possibly breaking the rules.

    ``length_form`` forces the 7-bit (0), 16-bit (126) or 64-bit (127) length
    encoding; ``length`` overrides the length written in the header.
    """
    n = len(payload) if length is None else length
    if length_form is None:
        length_form = 0 if n < 126 else 126 if n < 65536 else 127
    m = 0x80 if masked else 0
    if length_form == 0:
        header = bytes([b0, m | n])
    elif length_form == 126:
        header = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        header = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if masked:
        key = random.randbytes(4)
        return header + key + apply_mask(payload, key)
    return header + payload


def frame_to(receiver: Connection, b0: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A hand-made frame masked as ``receiver``'s peer must (client frames are masked)."""
    return raw_frame(b0, payload, masked=receiver.side is Side.SERVER, **kwargs)  # type: ignore[arg-type]


def assert_failed(conn: Connection, code: int) -> None:
    """``conn`` failed the connection with close ``code`` (section 7.1.7)."""
    conn.events_received()  # what arrived before the failure
    assert conn.error is not None, "the connection did not fail"
    assert conn.error.code == code
    assert conn.state is State.CLOSED
    assert conn.close_expected()
    frames = sent_frames(conn)
    assert frames, "no close frame sent"
    close = frames[-1]
    assert close.opcode == 0x8
    assert close.masked == (conn.side is Side.CLIENT)
    assert struct.unpack("!H", close.payload[:2])[0] == code
    assert conn.close_sent is not None and conn.close_sent[0] == code
    # Nothing more can be sent, and data received afterwards is dropped.
    with pytest.raises(LocalProtocolError):
        conn.send_text("after failure")
    conn.receive_data(frame_to(conn, 0x81, b"ignored"))
    assert not conn.events_received()
    exc = conn.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.sent_code == code


SIDES = pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT], ids=["server", "client"])
DIRECTIONS = pytest.mark.parametrize("direction", ["c2s", "s2c"])


# --------------------------------------------------------------------------- round trips


def send_message(conn: Connection, message: str | bytes, cuts: list[int]) -> None:
    """Send ``message`` as fragments cut at byte offsets ``cuts``."""
    payload = message.encode() if isinstance(message, str) else message
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(payload)}), len(payload)]
    pieces = [payload[a:b] for a, b in itertools.pairwise(bounds)]
    if len(pieces) == 1:
        if isinstance(message, str):
            conn.send_text(message)
        else:
            conn.send_binary(message)
        return
    if isinstance(message, str):
        conn.send_text(pieces[0], fin=False)
    else:
        conn.send_binary(pieces[0], fin=False)
    for i, piece in enumerate(pieces[1:], 1):
        conn.send_continuation(piece, fin=i == len(pieces) - 1)


_SIZES = st.one_of(
    st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 65537]),
    st.integers(0, 2000),
    st.integers(0, 70_000),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[str | bytes, list[int]]:
    size = draw(_SIZES)
    rnd = random.Random(draw(st.integers(0, 2**32)))
    kind = draw(st.sampled_from(["text", "random-bytes", "repetitive-bytes", "small-text"]))
    message: str | bytes
    if kind == "small-text":
        message = draw(st.text(max_size=40))
    elif kind == "text":
        # Multi-byte characters, so that cuts fall inside characters.
        message = "".join(rnd.choices("ab é€😀\n", k=size // 2))
    elif kind == "random-bytes":
        message = rnd.randbytes(size)
    else:
        message = (b"wskit " * (size // 6 + 1))[:size]
    n = len(message.encode()) if isinstance(message, str) else len(message)
    cuts = draw(st.lists(st.integers(0, max(n, 1)), max_size=4))
    return message, cuts


@DIRECTIONS
@pytest.mark.parametrize("deflate", DEFLATE_CONFIGS.values(), ids=DEFLATE_CONFIGS.keys())
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(messages(), min_size=1, max_size=4))
def test_round_trip(
    direction: str,
    deflate: dict[str, object] | None,
    batch: list[tuple[str | bytes, list[int]]],
) -> None:
    sender, receiver = oriented(direction, deflate, max_size=None)
    for message, cuts in batch:
        send_message(sender, message, cuts)
    events = transfer(sender, receiver)
    assert reassemble(events) == [m for m, _ in batch]
    for event in events:
        assert isinstance(event, DataReceived)
    # The receiver answered nothing and did not fail.
    assert receiver.error is None
    assert not receiver.data_to_send()
    assert receiver.state is State.OPEN


@DIRECTIONS
@pytest.mark.parametrize("deflate", DEFLATE_CONFIGS.values(), ids=DEFLATE_CONFIGS.keys())
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(messages(), min_size=1, max_size=3), data=st.data())
def test_split_at_random_boundaries(
    direction: str,
    deflate: dict[str, object] | None,
    batch: list[tuple[str | bytes, list[int]]],
    data: st.DataObject,
) -> None:
    sender, whole = oriented(direction, deflate, max_size=None)
    _, pieces = oriented(direction, deflate, max_size=None)
    for message, cuts in batch:
        send_message(sender, message, cuts)
        sender.send_ping(b"p")
    stream = b"".join(sender.data_to_send())
    whole.receive_data(stream)
    expected = whole.events_received()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    events: list[Event] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        pieces.receive_data(stream[a:b])
        events.extend(pieces.events_received())
    # Text frames may be decoded as they arrive, so a frame's text can come
    # out in another grouping; everything else is identical.
    assert reassemble(events) == reassemble(expected) == [m for m, _ in batch]
    assert [(type(e), getattr(e, "fin", None)) for e in events] == [
        (type(e), getattr(e, "fin", None)) for e in expected
    ]
    assert [e for e in events if not isinstance(e, DataReceived)] == [
        e for e in expected if not isinstance(e, DataReceived)
    ]
    # The same answers (pongs), up to the client's random masking keys.
    assert parse_frames(b"".join(pieces.data_to_send())) == parse_frames(
        b"".join(whole.data_to_send())
    )


@DIRECTIONS
def test_byte_by_byte(direction: str) -> None:
    sender, receiver = oriented(direction)
    sender.send_text("héllo wörld €", fin=False)
    sender.send_ping(b"in between")
    sender.send_continuation(" 😀", fin=True)
    sender.send_binary(b"\x00\x01" * 100)
    sender.send_binary(b"x" * 70000)
    stream = b"".join(sender.data_to_send())
    events: list[Event] = []
    for i in range(len(stream)):
        receiver.receive_data(stream[i : i + 1])
        events.extend(receiver.events_received())
    assert reassemble(events) == ["héllo wörld € 😀", b"\x00\x01" * 100, b"x" * 70000]
    assert PingReceived(b"in between") in events


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
@DIRECTIONS
def test_sizes_and_wire_format(direction: str, size: int) -> None:
    sender, receiver = oriented(direction, max_size=None)
    payload = random.randbytes(size)
    sender.send_binary(payload)
    data = b"".join(sender.data_to_send())
    (frame,) = parse_frames(data)
    assert frame.opcode == 0x2 and frame.fin and not frame.rsv1
    assert frame.masked == (sender.side is Side.CLIENT)
    assert frame.payload == payload
    receiver.receive_data(data)
    assert receiver.events_received() == [DataReceived(payload, True)]


def test_client_uses_fresh_mask_per_frame() -> None:
    client, _ = make_pair()
    for _ in range(10):
        client.send_binary(b"\x00" * 8)
    keys = {bytes(chunk[2:6]) for chunk in client.data_to_send()}
    assert len(keys) == 10


# --------------------------------------------------------------------------- masking


def test_server_rejects_unmasked_frame() -> None:
    _, server = make_pair()
    server.receive_data(raw_frame(0x81, b"hi", masked=False))
    assert not server.events_received()
    assert_failed(server, 1002)


def test_client_rejects_masked_frame() -> None:
    client, _ = make_pair()
    client.receive_data(raw_frame(0x81, b"hi", masked=True))
    assert not client.events_received()
    assert_failed(client, 1002)


@SIDES
def test_masking_rule_applies_to_control_frames(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(raw_frame(0x89, b"", masked=side is Side.CLIENT))
    assert not conn.events_received()
    assert_failed(conn, 1002)


# --------------------------------------------------------------------------- header rules


@SIDES
@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
def test_rsv_bits_without_extension(side: Side, rsv: int) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x81 | rsv, b"hi"))
    assert not conn.events_received()
    assert_failed(conn, 1002)


@SIDES
@pytest.mark.parametrize("rsv", [0x20, 0x10])
def test_rsv2_rsv3_with_deflate(side: Side, rsv: int) -> None:
    c, s = deflate_pair()
    conn = Connection(side, deflate=c if side is Side.CLIENT else s)
    conn.receive_data(frame_to(conn, 0x81 | rsv, b"hi"))
    assert_failed(conn, 1002)


@SIDES
def test_rsv1_on_control_frame_with_deflate(side: Side) -> None:
    c, s = deflate_pair()
    conn = Connection(side, deflate=c if side is Side.CLIENT else s)
    conn.receive_data(frame_to(conn, 0x89 | 0x40, b""))
    assert_failed(conn, 1002)


@SIDES
def test_rsv1_on_continuation_with_deflate(side: Side) -> None:
    c, s = deflate_pair()
    conn = Connection(side, deflate=c if side is Side.CLIENT else s)
    conn.receive_data(frame_to(conn, 0x02, b"ab"))
    assert conn.events_received() == [DataReceived(b"ab", False)]
    conn.receive_data(frame_to(conn, 0x80 | 0x40, b"cd"))
    assert_failed(conn, 1002)


@SIDES
@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes(side: Side, opcode: int) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x80 | opcode, b"x"))
    assert not conn.events_received()
    assert_failed(conn, 1002)


@SIDES
@pytest.mark.parametrize(
    ("length_form", "length"),
    [(126, 0), (126, 5), (126, 125), (127, 0), (127, 125), (127, 126), (127, 65535)],
)
def test_non_minimal_length(side: Side, length_form: int, length: int) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x82, b"x" * length, length_form=length_form))
    assert not conn.events_received()
    assert_failed(conn, 1002)


@SIDES
def test_length_with_most_significant_bit(side: Side) -> None:
    conn = Connection(side, max_size=None)
    header = bytes([0x82, (0x80 if side is Side.SERVER else 0) | 127]) + struct.pack("!Q", 2**63)
    conn.receive_data(header)
    assert_failed(conn, 1002)


@SIDES
@pytest.mark.parametrize("length", [126, 127, 1000])
def test_control_frame_too_long(side: Side, length: int) -> None:
    conn = Connection(side)
    # Only the header: the control frame fails before its payload arrives.
    frame = frame_to(conn, 0x89, b"p" * length)
    header_len = 4 + (4 if side is Side.SERVER else 0)
    conn.receive_data(frame[:header_len])
    assert not conn.events_received()
    assert_failed(conn, 1002)


@SIDES
def test_control_frame_125_bytes_ok(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x89, b"p" * 125))
    assert conn.events_received() == [PingReceived(b"p" * 125)]
    assert conn.error is None


@SIDES
@pytest.mark.parametrize("opcode", [0x8, 0x9, 0xA])
def test_fragmented_control_frame(side: Side, opcode: int) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, opcode, b""))
    assert not conn.events_received()
    assert_failed(conn, 1002)


@SIDES
def test_control_frames_between_fragments(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(
        frame_to(conn, 0x01, b"Hel")
        + frame_to(conn, 0x89, b"ping")
        + frame_to(conn, 0x00, b"lo, ")
        + frame_to(conn, 0x8A, b"pong")
        + frame_to(conn, 0x80, b"world")
    )
    assert conn.events_received() == [
        DataReceived("Hel", False),
        PingReceived(b"ping"),
        DataReceived("lo, ", False),
        PongReceived(b"pong"),
        DataReceived("world", True),
    ]
    pong = sent_frames(conn)
    assert [(f.opcode, f.payload) for f in pong] == [(0xA, b"ping")]
    assert conn.error is None


@SIDES
@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_start(side: Side, fin: bool) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, (0x80 if fin else 0) | 0x0, b"x"))
    assert not conn.events_received()
    assert_failed(conn, 1002)


@SIDES
def test_continuation_after_finished_message(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x81, b"done") + frame_to(conn, 0x80, b"more"))
    assert conn.events_received() == [DataReceived("done", True)]
    assert_failed(conn, 1002)


@SIDES
@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_data_frame_inside_fragmented_message(side: Side, opcode: int) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x02, b"first"))
    conn.receive_data(frame_to(conn, 0x80 | opcode, b"second"))
    assert conn.events_received() == [DataReceived(b"first", False)]
    assert_failed(conn, 1002)


# --------------------------------------------------------------------------- UTF-8


@SIDES
def test_invalid_utf8_in_first_fragment_fails_at_once(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x01, b"ok\xff"))
    assert not conn.events_received()
    assert_failed(conn, 1007)


@SIDES
def test_invalid_utf8_in_later_fragment(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x01, b"fine"))
    conn.receive_data(frame_to(conn, 0x00, b"\xc3\x28"))
    assert conn.events_received() == [DataReceived("fine", False)]
    assert_failed(conn, 1007)


@SIDES
def test_invalid_utf8_inside_one_large_frame_fails_before_its_end(side: Side) -> None:
    conn = Connection(side)
    frame = frame_to(conn, 0x81, b"a" * 1000 + b"\xed\xa0\x80" + b"b" * 100_000)
    # Only part of the frame has arrived, but the bad sequence is in it.
    conn.receive_data(frame[:2000])
    assert_failed(conn, 1007)


@SIDES
def test_truncated_utf8_at_fin(side: Side) -> None:
    conn = Connection(side)
    euro = "€".encode()
    conn.receive_data(frame_to(conn, 0x01, b"x" + euro[:2]))
    assert conn.error is None
    conn.receive_data(frame_to(conn, 0x80, b""))
    assert_failed(conn, 1007)


@SIDES
def test_truncated_utf8_single_frame(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x81, "€".encode()[:2]))
    assert_failed(conn, 1007)


@SIDES
def test_multibyte_chars_split_across_fragments(side: Side) -> None:
    conn = Connection(side)
    text = "€😀é"
    raw = text.encode()
    # Every byte its own fragment.
    stream = b"".join(
        frame_to(
            conn, (0x80 if i == len(raw) - 1 else 0) | (0x1 if i == 0 else 0x0), raw[i : i + 1]
        )
        for i in range(len(raw))
    )
    conn.receive_data(stream)
    events = conn.events_received()
    assert len(events) == len(raw)
    assert reassemble(events) == [text]
    assert conn.error is None


@SIDES
def test_invalid_utf8_in_compressed_text(side: Side) -> None:
    c, s = deflate_pair()
    client, server = Connection(Side.CLIENT, deflate=c), Connection(Side.SERVER, deflate=s)
    sender, conn = (server, client) if side is Side.CLIENT else (client, server)
    # Produce a compressed frame with bad UTF-8 by sending bytes as "text".
    sender.send_text(b"abc\xff" * 50, compress=True)
    transfer(sender, conn)
    assert_failed(conn, 1007)


@SIDES
def test_invalid_utf8_close_reason(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x88, b"\x03\xe8\xff"))
    assert not conn.events_received()
    assert_failed(conn, 1007)


@SIDES
@pytest.mark.parametrize("payload", [b"\x03", b"\x03\xed", b"\x00\x00", b"\x0b\xb7"])
def test_invalid_close_payload(side: Side, payload: bytes) -> None:
    # One byte, 1005, 0 and 2999 are not allowed on the wire.
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x88, payload))
    assert not conn.events_received()
    assert_failed(conn, 1002)


# --------------------------------------------------------------------------- closing


@DIRECTIONS
def test_close_handshake_initiated_by_one_side(direction: str) -> None:
    initiator, responder = oriented(direction)
    assert initiator.state is State.OPEN and responder.state is State.OPEN
    initiator.send_close(1000, "bye")
    assert initiator.state is State.CLOSING
    assert initiator.close_sent == (1000, "bye")
    assert not initiator.close_expected()

    events = transfer(initiator, responder)
    assert events == [CloseReceived(1000, "bye")]
    assert responder.state is State.CLOSED
    assert responder.close_rcvd == (1000, "bye")
    # The responder echoed the code and the reason.
    assert responder.close_sent == (1000, "bye")

    events = transfer(responder, initiator)
    assert events == [CloseReceived(1000, "bye")]
    assert initiator.state is State.CLOSED
    # The server closes TCP first (section 7.1.1); the client waits for it.
    for conn in (initiator, responder):
        assert conn.close_expected() is (conn.side is Side.SERVER)
        exc = conn.closed_exception()
        assert isinstance(exc, ConnectionClosedOK)
        assert exc.ok
    assert initiator.close_code == 1000 and initiator.close_reason == "bye"
    assert responder.close_code == 1000 and responder.close_reason == "bye"

    client = initiator if initiator.side is Side.CLIENT else responder
    client.receive_eof()
    assert client.close_expected()
    assert client.state is State.CLOSED


@pytest.mark.parametrize("code", [1001, 1003, 1011, 3000, 4999])
@DIRECTIONS
def test_close_code_is_echoed(direction: str, code: int) -> None:
    initiator, responder = oriented(direction)
    initiator.send_close(code, "why")
    transfer(initiator, responder)
    (frame,) = sent_frames(responder)
    assert frame.opcode == 0x8
    assert frame.payload == struct.pack("!H", code) + b"why"
    assert responder.close_sent == (code, "why")


@DIRECTIONS
def test_close_without_code(direction: str) -> None:
    initiator, responder = oriented(direction)
    initiator.send_close(None)
    assert initiator.close_sent == (1005, "")
    data = b"".join(initiator.data_to_send())
    (frame,) = parse_frames(data)
    assert frame.payload == b""
    responder.receive_data(data)
    assert responder.events_received() == [CloseReceived(1005, "")]
    assert responder.close_code == 1005
    # Echoed without a code too.
    (echo,) = parse_frames(b"".join(responder.data_to_send()))
    assert echo.opcode == 0x8 and echo.payload == b""
    assert responder.close_sent == (1005, "")
    exc = responder.closed_exception()
    assert isinstance(exc, ConnectionClosedOK)
    assert exc.code == 1005
    # An OK exception says it is OK (the asyncio layer relies on ``ok``).
    assert exc.ok


@DIRECTIONS
def test_simultaneous_close(direction: str) -> None:
    a, b = oriented(direction)
    a.send_close(1000, "a")
    b.send_close(1001, "b")
    a_out = b"".join(a.data_to_send())
    b_out = b"".join(b.data_to_send())
    a.receive_data(b_out)
    b.receive_data(a_out)
    assert a.events_received() == [CloseReceived(1001, "b")]
    assert b.events_received() == [CloseReceived(1000, "a")]
    # Neither echoes: each has already sent its close frame.
    assert not a.data_to_send() and not b.data_to_send()
    assert a.state is State.CLOSED and b.state is State.CLOSED
    assert isinstance(a.closed_exception(), ConnectionClosedOK)


@DIRECTIONS
def test_nothing_sent_after_close(direction: str) -> None:
    conn, _ = oriented(direction)
    conn.send_text("x", fin=False)
    conn.send_close()
    conn.data_to_send()
    for action in (
        lambda: conn.send_text("x"),
        lambda: conn.send_binary(b"x"),
        lambda: conn.send_continuation(b"x", fin=True),
        lambda: conn.send_ping(),
        lambda: conn.send_pong(),
        lambda: conn.send_close(),
        lambda: conn.send_prepared(PreparedMessage("x")),
    ):
        with pytest.raises(LocalProtocolError):
            action()
    assert not conn.data_to_send()


@DIRECTIONS
def test_receiving_continues_while_closing(direction: str) -> None:
    a, b = oriented(direction)
    a.send_close()
    a.data_to_send()
    b.send_text("late")
    b.send_ping(b"hello?")
    events = transfer(b, a)
    assert events == [DataReceived("late", True), PingReceived(b"hello?")]
    # No pong once our close frame is out.
    assert not a.data_to_send()
    assert a.state is State.CLOSING


@SIDES
def test_data_after_close_frame_is_ignored(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(
        frame_to(conn, 0x88, b"\x03\xe8") + frame_to(conn, 0x81, b"late") + b"\xff\xff garbage"
    )
    assert conn.events_received() == [CloseReceived(1000, "")]
    conn.receive_data(frame_to(conn, 0x81, b"later") + frame_to(conn, 0x89, b""))
    assert not conn.events_received()
    assert conn.error is None
    # Only the echo went out; no pong for the ignored ping.
    assert [f.opcode for f in sent_frames(conn)] == [0x8]


@SIDES
def test_receive_eof_without_close_is_1006(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x81, b"partial")[:5])
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_expected()
    assert conn.close_code == 1006
    assert conn.close_reason == ""
    assert not conn.events_received()
    exc = conn.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == 1006 and exc.sent_code is None
    assert not exc.ok
    with pytest.raises(LocalProtocolError):
        conn.send_text("x")
    conn.receive_data(frame_to(conn, 0x81, b"ignored"))
    assert not conn.events_received()


@pytest.mark.parametrize(
    ("sent", "received", "ok"),
    [
        (1000, 1000, True),
        (1001, 1001, True),
        (1000, 1001, True),
        (None, None, True),  # 1005 both ways
        (1011, 1011, False),
        (1002, 1002, False),
        (4000, 4000, False),
        (1000, 1011, False),
        (1011, 1000, False),
    ],
)
def test_closed_exception_class(sent: int | None, received: int | None, ok: bool) -> None:
    client, server = make_pair()
    client.send_close(sent)
    transfer(client, server)
    server.data_to_send()
    # The server answers with its own code (simultaneous close).
    _, server2 = make_pair()
    server2.send_close(received)
    client.receive_data(b"".join(server2.data_to_send()))
    exc = client.closed_exception()
    expected_rcvd = 1005 if received is None else received
    expected_sent = 1005 if sent is None else sent
    assert exc.code == expected_rcvd
    assert exc.sent_code == expected_sent
    assert isinstance(exc, ConnectionClosedOK if ok else ConnectionClosedError)
    assert exc.ok is ok


def test_closed_exception_after_failure() -> None:
    _, server = make_pair()
    server.receive_data(raw_frame(0x81, b"x", masked=False))
    exc = server.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == 1006
    assert exc.sent_code == 1002
    assert exc.sent_reason


# --------------------------------------------------------------------------- limits


@SIDES
def test_max_size_fails_on_header_before_payload(side: Side) -> None:
    conn = Connection(side, max_size=1000)
    frame = frame_to(conn, 0x82, b"x" * 1001)
    header_len = 4 + (4 if side is Side.SERVER else 0)
    conn.receive_data(frame[:header_len])
    assert not conn.events_received()
    assert_failed(conn, 1009)


@SIDES
def test_max_size_exact_limit_ok(side: Side) -> None:
    conn = Connection(side, max_size=1000)
    conn.receive_data(frame_to(conn, 0x82, b"x" * 1000))
    assert conn.events_received() == [DataReceived(b"x" * 1000, True)]


@SIDES
def test_max_size_across_fragments(side: Side) -> None:
    conn = Connection(side, max_size=1000)
    conn.receive_data(frame_to(conn, 0x01, b"x" * 600))
    assert conn.events_received() == [DataReceived("x" * 600, False)]
    # The second fragment's header alone pushes the message over the limit.
    frame = frame_to(conn, 0x80, b"x" * 401)
    conn.receive_data(frame[: 4 + (4 if side is Side.SERVER else 0)])
    assert_failed(conn, 1009)


@SIDES
def test_empty_fragments_count_against_max_size(side: Side) -> None:
    # An endless run of empty fragments: each counts MIN_FRAGMENT_COST bytes,
    # so the run ends in 1009 after max_size / 64 fragments.
    conn = Connection(side, max_size=64 * 100)
    conn.receive_data(frame_to(conn, 0x02, b""))
    empty = frame_to(conn, 0x00, b"")
    conn.receive_data(empty * 99)
    assert len(conn.events_received()) == 100
    assert conn.error is None
    conn.receive_data(empty)
    assert not conn.events_received()
    assert_failed(conn, 1009)


@SIDES
def test_the_last_fragment_counts_its_true_size(side: Side) -> None:
    # A message at its limit in 100-byte fragments, the last one short.
    conn = Connection(side, max_size=1024)
    frames = [frame_to(conn, 0x02, b"a" * 100)]
    frames += [frame_to(conn, 0x00, b"b" * 100)] * 9
    frames.append(frame_to(conn, 0x80, b"c" * 24))
    conn.receive_data(b"".join(frames))
    assert conn.error is None
    assert sum(len(event.data) for event in conn.events_received()) == 1024
    # At the limit, an empty fragment that is not the last is one too many.
    conn.receive_data(frame_to(conn, 0x01, b"x" * 1000) + frame_to(conn, 0x00, b""))
    assert_failed(conn, 1009)


@SIDES
def test_fragments_of_64_bytes_count_their_true_size(side: Side) -> None:
    # A message of exactly max_size in 64-byte fragments passes: the rule
    # charges only fragments shorter than MIN_FRAGMENT_COST.
    assert MIN_FRAGMENT_COST == 64
    max_size = 64 * 1024
    conn = Connection(side, max_size=max_size)
    frames = [frame_to(conn, 0x02, b"a" * 64)]
    frames += [frame_to(conn, 0x00, b"b" * 64)] * (max_size // 64 - 2)
    frames.append(frame_to(conn, 0x80, b"c" * 64))
    conn.receive_data(b"".join(frames))
    events = conn.events_received()
    assert conn.error is None
    assert len(events) == max_size // 64
    assert sum(len(event.data) for event in events) == max_size
    assert events[-1].fin


@SIDES
def test_a_message_in_one_frame_counts_its_true_size(side: Side) -> None:
    # The minimum charge is for fragments only: a short whole message is what it is.
    conn = Connection(side, max_size=10)
    conn.receive_data(frame_to(conn, 0x81, b"") + frame_to(conn, 0x82, b"0123456789"))
    assert conn.events_received() == [DataReceived("", True), DataReceived(b"0123456789", True)]
    assert conn.error is None


@SIDES
def test_short_fragments_fail_on_the_header_of_the_one_too_many(side: Side) -> None:
    conn = Connection(side, max_size=100)
    conn.receive_data(frame_to(conn, 0x01, b"x"))
    assert conn.error is None
    # The next fragment's header alone (one byte to come, and more fragments
    # after it) brings the count to 128.
    conn.receive_data(frame_to(conn, 0x00, b"y")[:2])
    assert_failed(conn, 1009)


@SIDES
def test_text_trickled_a_byte_at_a_time(side: Side) -> None:
    # A frame that arrives a byte per read is decoded into one buffer, not a
    # piece per read, and still fails fast on bad UTF-8.
    conn = Connection(side)
    text = "héllo wörld €" * 50
    frame = frame_to(conn, 0x81, text.encode())
    for i in range(len(frame)):
        conn.receive_data(frame[i : i + 1])
    assert conn.events_received() == [DataReceived(text, True)]
    bad = frame_to(conn, 0x81, b"abc\xffdef")
    for i in range(len(bad) - 3):
        conn.receive_data(bad[i : i + 1])
    assert_failed(conn, 1007)


@DIRECTIONS
def test_max_size_compressed_bomb(direction: str) -> None:
    sender, receiver = oriented(direction, {}, max_size=100_000)
    bomb = b"\x00" * 10_000_000
    sender.send_binary(bomb, compress=True)
    data = b"".join(sender.data_to_send())
    # 10 MB of zeros compress to about 10 KB: far under the raw limit.
    assert len(data) < 20_000
    receiver.receive_data(data)
    assert not receiver.events_received()
    assert_failed(receiver, 1009)


@DIRECTIONS
def test_max_size_compressed_fragments(direction: str) -> None:
    sender, receiver = oriented(direction, {}, max_size=100_000)
    sender.send_binary(b"\x00" * 60_000, fin=False, compress=True)
    sender.send_continuation(b"\x00" * 60_000, fin=True)
    receiver.receive_data(b"".join(sender.data_to_send()))
    events = receiver.events_received()
    assert events == [DataReceived(b"\x00" * 60_000, False)]
    assert_failed(receiver, 1009)


@DIRECTIONS
def test_max_size_compressed_at_limit_ok(direction: str) -> None:
    sender, receiver = oriented(direction, {}, max_size=100_000)
    sender.send_binary(b"\x00" * 100_000, compress=True)
    assert transfer(sender, receiver) == [DataReceived(b"\x00" * 100_000, True)]


def test_invalid_compressed_data() -> None:
    c, _ = deflate_pair()
    conn = Connection(Side.CLIENT, deflate=c)
    conn.receive_data(raw_frame(0xC2, b"\xff\xff\xff\xff not deflate", masked=False))
    assert_failed(conn, 1002)


# --------------------------------------------------------------------------- pings


@DIRECTIONS
def test_auto_pong(direction: str) -> None:
    sender, receiver = oriented(direction)
    sender.send_ping(b"are you there")
    assert transfer(sender, receiver) == [PingReceived(b"are you there")]
    (pong,) = sent_frames(receiver)
    assert pong.opcode == 0xA and pong.payload == b"are you there"
    assert pong.masked == (receiver.side is Side.CLIENT)


@DIRECTIONS
def test_auto_pong_disabled(direction: str) -> None:
    sender, receiver = oriented(direction, auto_pong=False)
    sender.send_ping(b"x")
    assert transfer(sender, receiver) == [PingReceived(b"x")]
    assert not receiver.data_to_send()
    receiver.send_pong(b"x")
    assert transfer(receiver, sender) == [PongReceived(b"x")]


@DIRECTIONS
def test_unsolicited_pong(direction: str) -> None:
    sender, receiver = oriented(direction)
    sender.send_pong(b"heartbeat")
    assert transfer(sender, receiver) == [PongReceived(b"heartbeat")]
    assert not receiver.data_to_send()


def test_control_payload_limit_on_send() -> None:
    conn = Connection(Side.SERVER)
    conn.send_ping(b"x" * 125)
    with pytest.raises(LocalProtocolError):
        conn.send_ping(b"x" * 126)
    with pytest.raises(LocalProtocolError):
        conn.send_pong(b"x" * 126)
    with pytest.raises(LocalProtocolError):
        conn.send_close(1000, "x" * 124)
    assert conn.state is State.OPEN
    assert conn.close_sent is None


# --------------------------------------------------------------------------- sending API


@DIRECTIONS
def test_send_continuation_misuse(direction: str) -> None:
    conn, peer = oriented(direction)
    with pytest.raises(LocalProtocolError):
        conn.send_continuation(b"x", fin=True)
    conn.send_binary(b"a", fin=False)
    with pytest.raises(LocalProtocolError):
        conn.send_text("new message")
    with pytest.raises(LocalProtocolError):
        conn.send_binary(b"new message")
    with pytest.raises(LocalProtocolError):
        conn.send_prepared(PreparedMessage(b"new"))
    # Control frames may be interleaved.
    conn.send_ping(b"p")
    conn.send_continuation(b"b", fin=True)
    with pytest.raises(LocalProtocolError):
        conn.send_continuation(b"c", fin=False)
    events = transfer(conn, peer)
    assert reassemble(events) == [b"ab"]
    assert PingReceived(b"p") in events
    assert peer.error is None


@DIRECTIONS
def test_send_text_accepts_str_and_bytes(direction: str) -> None:
    conn, peer = oriented(direction)
    conn.send_text("é")
    conn.send_text("é".encode())
    conn.send_binary(bytearray(b"ba"))
    conn.send_binary(memoryview(b"mv"))
    assert reassemble(transfer(conn, peer)) == ["é", "é", b"ba", b"mv"]


@DIRECTIONS
def test_compression_per_message(direction: str) -> None:
    sender, receiver = oriented(direction, {"threshold": 100})
    big = b"z" * 1000
    sender.send_binary(big)  # over the threshold: compressed
    sender.send_binary(big, compress=False)
    sender.send_binary(b"small")  # under the threshold: plain
    sender.send_binary(b"small", compress=True)
    sender.compression_enabled = False
    sender.send_binary(big)
    sender.send_text("t" * 1000, fin=False, compress=True)
    sender.send_continuation("t" * 1000, fin=True)
    data = b"".join(sender.data_to_send())
    frames = parse_frames(data)
    assert [f.rsv1 for f in frames] == [True, False, False, True, False, True, False]
    assert len(frames[0].payload) < 100
    assert frames[1].payload == big
    # The continuation of a compressed message is compressed but has RSV1 clear.
    assert len(frames[6].payload) < 100
    receiver.receive_data(data)
    assert reassemble(receiver.events_received()) == [
        big,
        big,
        b"small",
        b"small",
        big,
        "t" * 2000,
    ]


def test_compress_without_deflate() -> None:
    conn = Connection(Side.SERVER)
    with pytest.raises(LocalProtocolError):
        conn.send_binary(b"x", compress=True)
    conn.send_binary(b"x", compress=False)
    (frame,) = sent_frames(conn)
    assert not frame.rsv1


# --------------------------------------------------------------------------- misc


def test_events_are_forgotten_once_read() -> None:
    client, server = make_pair()
    client.send_text("one")
    transfer(client, server)
    assert server.events_received() == []
    assert server.data_to_send() == []


def test_deflate_pair_helper_matches_zlib() -> None:
    # Sanity check of the test helper: a server frame inflates with raw zlib.
    _, server = make_pair({})
    server.send_binary(b"hello hello hello", compress=True)
    (frame,) = sent_frames(server)
    assert zlib.decompressobj(-15).decompress(frame.payload + b"\x00\x00\xff\xff") == (
        b"hello hello hello"
    )


# --------------------------------------------------------------------------- deferred failure


def test_deferred_failure_lets_earlier_messages_be_answered() -> None:
    server = Connection(Side.SERVER, defer_failure=True)
    valid = raw_frame(0x81, b"first", masked=True)
    bad = raw_frame(0x81 | 0x20, b"bad", masked=True)  # RSV2 without an extension
    server.receive_data(valid + bad + raw_frame(0x81, b"ignored", masked=True))
    assert server.events_received() == [DataReceived("first", True)]
    # The failure is known but its close frame is held back...
    assert server.error is not None and server.error.code == 1002
    assert server.failure_pending
    assert not server.close_expected()
    assert server.data_to_send() == []
    # ...so the application can still answer what came before it...
    server.send_text("first")
    (echo,) = sent_frames(server)
    assert (echo.opcode, echo.payload) == (0x1, b"first")
    # ...and nothing after the bad frame is parsed.
    server.receive_data(raw_frame(0x81, b"later", masked=True))
    assert server.events_received() == []
    server.commit_failure()
    assert_failed(server, 1002)


def test_deferred_failure_wins_over_an_application_close() -> None:
    server = Connection(Side.SERVER, defer_failure=True)
    server.receive_data(raw_frame(0x83, b"", masked=True))  # reserved opcode
    assert server.failure_pending
    server.send_close(1000)
    assert not server.failure_pending
    assert_failed(server, 1002)


def test_one_read_decompresses_at_most_about_max_size() -> None:
    # Each 1 MiB message of zeros compresses to about 1 KB: 40 of them fit
    # in one read. Parsing stops once what it decompressed passes max_size,
    # the rest waits in `unparsed`, and receive_data(b"") goes on.
    max_size = 2**20
    client, server = make_pair(deflate={}, max_size=max_size)
    message = bytes(max_size)
    for _ in range(40):
        client.send_binary(message)
    wire = b"".join(client.data_to_send())
    assert len(wire) < 100_000
    server.receive_data(wire)
    got = server.events_received()
    assert 1 <= len(got) <= 2 and server.inflate_paused and server.unparsed
    received = len(got)
    for _ in range(100):
        if not server.inflate_paused:
            break
        server.receive_data(b"")
        got = server.events_received()
        assert len(got) <= 2
        assert all(event == DataReceived(message, True) for event in got)
        received += len(got)
    assert received == 40 and not server.unparsed
    # Uncompressed frames are bounded by the read itself: no pause.
    client, server = make_pair(max_size=max_size)
    for _ in range(40):
        client.send_binary(bytes(1000))
    server.receive_data(b"".join(client.data_to_send()))
    assert len(server.events_received()) == 40 and not server.inflate_paused


def test_a_close_frame_after_paused_parsing_waits_its_turn() -> None:
    client, server = make_pair(deflate={}, max_size=2**16)
    for _ in range(5):
        client.send_text("a" * 2**16)
    client.send_close(1000, "bye")
    server.receive_data(b"".join(client.data_to_send()))
    events = server.events_received()
    while server.inflate_paused:
        server.receive_data(b"")
        events += server.events_received()
    assert [type(event) for event in events] == [DataReceived] * 5 + [CloseReceived]
    assert server.close_rcvd == (1000, "bye")


# --------------------------------------------------------------------------- large frames in place

LARGE = 65536


@SIDES
@pytest.mark.parametrize("chunk", [1, 3, 4096, 70_001])
def test_the_rest_of_a_large_binary_frame_is_read_into_the_message(side: Side, chunk: int) -> None:
    conn = Connection(side)
    payload = random.randbytes(3 * LARGE + 5)
    wire = frame_to(conn, 0x82, payload)
    conn.receive_data(wire[: len(wire) // 4 + 14])  # a quarter of it has come
    large = conn.large_frame
    # Nothing waits in the receive buffer: the payload goes into the message's own bytes.
    assert large is not None and not conn.unparsed
    assert large.length == len(payload)
    while True:
        rest = large.rest()
        assert len(rest) == len(payload) - large.done  # exactly the payload still to come
        n = min(len(rest), chunk if chunk > 1 else random.randint(1, 9))
        at = len(wire) - len(rest)
        rest[:n] = wire[at : at + n]
        del rest  # as asyncio does: the view goes once read into
        if conn.received_into(n):
            break
        assert not conn.events_received()
    assert conn.events_received() == [DataReceived(payload, True)]
    assert conn.large_frame is None and conn.state is State.OPEN


@SIDES
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(LARGE - 2, 2 * LARGE + 3), data=st.data())
def test_a_large_binary_frame_split_anywhere_gives_what_it_always_gave(
    side: Side, size: int, data: st.DataObject
) -> None:
    conn = Connection(side)
    payload = random.randbytes(size)
    wire = frame_to(conn, 0x82, payload) + frame_to(conn, 0x81, b"after") + frame_to(conn, 0x89)
    cuts = data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=8, unique=True))
    events: list[Event] = []
    for a, b in itertools.pairwise([0, *sorted(cuts), len(wire)]):
        conn.receive_data(wire[a:b])
        events += conn.events_received()
    assert events == [DataReceived(payload, True), DataReceived("after", True), PingReceived(b"")]
    assert conn.large_frame is None and not conn.unparsed


@SIDES
def test_a_large_frame_is_read_in_place_once_an_eighth_of_it_has_come(side: Side) -> None:
    conn = Connection(side)
    payload = random.randbytes(LARGE)
    wire = frame_to(conn, 0x82, payload)
    head = len(wire) - len(payload)
    for i in range(head):  # the header (and masking key) byte by byte
        conn.receive_data(wire[i : i + 1])
        assert conn.large_frame is None
    conn.receive_data(wire[head : head + LARGE // 8 - 1])
    assert conn.large_frame is None  # a header alone commits no memory
    conn.receive_data(wire[head + LARGE // 8 - 1 : head + LARGE // 8])
    assert conn.large_frame is not None and not conn.unparsed
    conn.receive_data(wire[head + LARGE // 8 :])
    assert conn.events_received() == [DataReceived(payload, True)]


@SIDES
def test_the_header_of_a_huge_frame_allocates_nothing_without_max_size(side: Side) -> None:
    conn = Connection(side, max_size=None)
    header = frame_to(conn, 0x82, b"", length=2**40)
    conn.receive_data(header + b"x" * 1000)
    assert conn.large_frame is None and len(conn.unparsed) == len(header) + 1000
    assert conn.error is None


@SIDES
@pytest.mark.parametrize(
    "b0",
    [0x81, 0x02, 0xC2],  # text (decoded as it arrives), a first fragment, compressed
    ids=["text", "fragment", "compressed"],
)
def test_only_whole_uncompressed_binary_frames_are_read_in_place(side: Side, b0: int) -> None:
    client, server = make_pair({})
    conn = server if side is Side.SERVER else client
    wire = frame_to(conn, b0, b"a" * (2 * LARGE))
    conn.receive_data(wire[: len(wire) // 2])
    assert conn.large_frame is None
    assert conn.error is None


@SIDES
def test_a_large_frame_over_max_size_fails_before_any_payload_is_kept(side: Side) -> None:
    conn = Connection(side, max_size=LARGE)
    conn.receive_data(frame_to(conn, 0x82, bytes(LARGE + 1))[:20])
    assert conn.large_frame is None
    assert_failed(conn, 1009)


@SIDES
def test_eof_in_the_middle_of_a_large_frame_drops_it(side: Side) -> None:
    conn = Connection(side)
    conn.receive_data(frame_to(conn, 0x82, bytes(2 * LARGE))[:LARGE])
    assert conn.large_frame is not None
    conn.receive_eof()
    assert conn.large_frame is None
    assert conn.events_received() == [] and conn.close_code == 1006


@SIDES
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_views_of_a_reused_buffer_give_what_bytes_give(side: Side, data: st.DataObject) -> None:
    # asyncio's Conn hands the core views of one receive buffer that the next
    # read overwrites: nothing parsed may still point into it.
    conn, reference = Connection(side), Connection(side)
    wire = b"".join(
        [
            frame_to(conn, 0x81, "é".encode() * 40),
            frame_to(conn, 0x01, b"fra"),  # a fragmented text message
            frame_to(conn, 0x89, b"ping"),
            frame_to(conn, 0x80, b"gment"),
            frame_to(conn, 0x82, bytes(range(256)) * 300),  # over 64 KiB: read in place
            frame_to(conn, 0x82, b"\x00" * 300),
            frame_to(conn, 0x8A, b"pong"),
        ]
    )
    cuts = data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=12, unique=True))
    shared = bytearray(len(wire))
    for a, b in itertools.pairwise([0, *sorted(cuts), len(wire)]):
        shared[: b - a] = wire[a:b]
        conn.receive_data(memoryview(shared)[: b - a])
        shared[:] = b"\xff" * len(shared)  # the next read lands here
        reference.receive_data(wire[a:b])
    assert conn.events_received() == reference.events_received()
    # The pong answering the ping (client frames are masked with fresh keys: compare payloads).
    answers = [(f.opcode, f.payload) for f in sent_frames(conn)]
    assert answers == [(f.opcode, f.payload) for f in sent_frames(reference)] == [(0xA, b"ping")]
    assert conn.state is State.OPEN and conn.error is None
