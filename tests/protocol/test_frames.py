"""Unit tests for wskit.protocol.frames (RFC 6455 sections 5 and 7.4)."""

from __future__ import annotations

import struct
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.exceptions import InvalidUTF8, LocalProtocolError, ProtocolError
from wskit.protocol import frames
from wskit.protocol.events import DataReceived
from wskit.protocol.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    MAX_CONTROL_PAYLOAD,
    CloseCode,
    LargeFrame,
    Opcode,
    apply_mask,
    encode_close_payload,
    encode_frame,
    fit_close_reason,
    is_valid_close_code,
    parse_close_payload,
    ping_payload,
)

# --------------------------------------------------------------------------- opcodes


def test_opcode_values_section_5_2() -> None:
    assert [int(op) for op in Opcode] == [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]
    assert {Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY} == DATA_OPCODES
    assert {Opcode.CLOSE, Opcode.PING, Opcode.PONG} == CONTROL_OPCODES
    assert MAX_CONTROL_PAYLOAD == 125


# --------------------------------------------------------------------------- encode_frame


@pytest.mark.parametrize("opcode", list(Opcode))
@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("rsv1", [True, False])
def test_encode_frame_first_byte(opcode: Opcode, fin: bool, rsv1: bool) -> None:
    frame = encode_frame(opcode, b"abc", fin=fin, rsv1=rsv1)
    expected_b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | int(opcode)
    assert frame == bytes([expected_b0, 3]) + b"abc"


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x82\x00"),
        (1, b"\x82\x01"),
        (125, b"\x82\x7d"),
        # 16-bit extended length from 126 (section 5.2: minimal encoding).
        (126, b"\x82\x7e\x00\x7e"),
        (127, b"\x82\x7e\x00\x7f"),
        (1000, b"\x82\x7e\x03\xe8"),
        (65535, b"\x82\x7e\xff\xff"),
        # 64-bit extended length from 65536.
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (100_000, b"\x82\x7f" + struct.pack("!Q", 100_000)),
    ],
)
def test_encode_frame_length_encodings(length: int, header: bytes) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    frame = encode_frame(Opcode.BINARY, payload)
    assert frame[: len(header)] == header
    assert frame[len(header) :] == payload
    assert len(frame) == len(header) + length


@pytest.mark.parametrize(
    ("length", "header_len"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
def test_encode_frame_masked_header(length: int, header_len: int) -> None:
    payload = b"\xa5" * length
    key = b"\x01\x02\x03\x04"
    with mock.patch.object(frames.os, "urandom", return_value=key) as urandom:
        frame = encode_frame(Opcode.TEXT, payload, mask=True)
    urandom.assert_called_once_with(4)
    # The mask bit is set in the second byte, whatever the length form.
    assert frame[1] & 0x80
    unmasked = encode_frame(Opcode.TEXT, payload)
    assert frame[0] == unmasked[0]
    assert frame[1] == unmasked[1] | 0x80
    assert frame[2:header_len] == unmasked[2:header_len]
    assert frame[header_len : header_len + 4] == key
    body = frame[header_len + 4 :]
    assert len(body) == length
    assert apply_mask(body, key) == payload


def test_encode_frame_masked_known_bytes() -> None:
    # RFC 6455 section 5.7: a masked "Hello" from client to server.
    key = bytes.fromhex("37fa213d")
    with mock.patch.object(frames.os, "urandom", return_value=key):
        frame = encode_frame(Opcode.TEXT, b"Hello", mask=True)
    assert frame == bytes.fromhex("818537fa213d7f9f4d5158")


def test_encode_frame_rfc_examples_unmasked() -> None:
    # RFC 6455 section 5.7.
    assert encode_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert encode_frame(Opcode.CONTINUATION, b"lo") == bytes.fromhex("80026c6f")
    assert encode_frame(Opcode.PING, b"Hello") == bytes.fromhex("890548656c6c6f")
    assert encode_frame(Opcode.PONG, b"Hello") == bytes.fromhex("8a0548656c6c6f")


def test_encode_frame_fresh_key_per_frame() -> None:
    payload = b"\x00" * 16
    keys = set()
    for _ in range(20):
        frame = encode_frame(Opcode.BINARY, payload, mask=True)
        key = frame[2:6]
        # XOR with zero bytes reveals the key repeated.
        assert frame[6:] == key * 4
        keys.add(key)
    # 20 random 32-bit keys: a repeat is essentially impossible.
    assert len(keys) == 20


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_encode_frame_accepts_buffers(kind: type) -> None:
    frame = encode_frame(Opcode.BINARY, kind(b"xyz"))
    assert isinstance(frame, bytes)
    assert frame == b"\x82\x03xyz"
    masked = encode_frame(Opcode.BINARY, kind(b"xyz"), mask=True)
    assert apply_mask(masked[6:], masked[2:6]) == b"xyz"


# --------------------------------------------------------------------------- masking


def test_apply_mask_known_values() -> None:
    assert apply_mask(b"", b"abcd") == b""
    assert apply_mask(b"\x00\x00\x00\x00\x00", b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04\x01"
    assert apply_mask(b"\xff\xff\xff", b"\x0f\xf0\x00\xff") == b"\xf0\x0f\xff"
    # Leading zero bytes in the result are kept (length preserved).
    assert apply_mask(b"\x01\x02", b"\x01\x02\x03\x04") == b"\x00\x00"


@given(data=st.binary(max_size=2000), key=st.binary(min_size=4, max_size=4))
def test_apply_mask_is_an_involution(data: bytes, key: bytes) -> None:
    masked = apply_mask(data, key)
    assert len(masked) == len(data)
    assert apply_mask(masked, key) == data
    # And it really is byte-wise XOR with the key repeated (section 5.3).
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(data))


@given(data=st.binary(max_size=300), key=st.binary(min_size=4, max_size=4))
def test_apply_mask_buffer_types(data: bytes, key: bytes) -> None:
    expected = apply_mask(data, key)
    assert apply_mask(bytearray(data), key) == expected
    assert apply_mask(memoryview(data), key) == expected


# --------------------------------------------------------------------------- close codes

VALID_CODES = [*range(1000, 1004), *range(1007, 1015), 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_is_valid_close_code_true(code: int) -> None:
    assert is_valid_close_code(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_is_valid_close_code_false(code: int) -> None:
    assert not is_valid_close_code(code)


def test_is_valid_close_code_full_table() -> None:
    allowed = {c for c in range(0, 65536) if is_valid_close_code(c)}
    expected = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))
    assert allowed == expected


def test_close_code_enum() -> None:
    assert CloseCode.NORMAL_CLOSURE == 1000
    assert CloseCode.NO_STATUS_RCVD == 1005
    assert CloseCode.ABNORMAL_CLOSURE == 1006
    assert CloseCode.MESSAGE_TOO_BIG == 1009
    assert CloseCode.INTERNAL_ERROR == 1011
    for code in (1005, 1006, 1015):
        assert not is_valid_close_code(CloseCode(code))


# --------------------------------------------------------------------------- close payload


@pytest.mark.parametrize("code", VALID_CODES)
def test_close_payload_round_trip_valid_codes(code: int) -> None:
    payload = encode_close_payload(code, "bye")
    assert payload == struct.pack("!H", code) + b"bye"
    assert parse_close_payload(payload) == (code, "bye")


@pytest.mark.parametrize("code", INVALID_CODES)
def test_parse_close_payload_invalid_codes(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(struct.pack("!H", code))
    assert info.value.code == 1002
    assert type(info.value) is ProtocolError


@pytest.mark.parametrize("code", [c for c in INVALID_CODES if c != 1005])
def test_encode_close_payload_invalid_codes(code: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_close_payload(code)


def test_close_payload_every_code() -> None:
    for code in range(65536):
        payload = struct.pack("!H", code)
        if is_valid_close_code(code):
            assert parse_close_payload(payload) == (code, "")
            assert encode_close_payload(code) == payload
            continue
        # (try/except rather than pytest.raises: this loop runs 65,000 times)
        try:
            parse_close_payload(payload)
        except ProtocolError:
            pass
        else:
            pytest.fail(f"close code {code} accepted")
        if code == 1005:
            assert encode_close_payload(code) == b""  # "no status code"
            continue
        try:
            encode_close_payload(code)
        except LocalProtocolError:
            pass
        else:
            pytest.fail(f"close code {code} sent")


def test_close_payload_empty() -> None:
    assert parse_close_payload(b"") == (1005, "")
    assert encode_close_payload(None) == b""
    assert encode_close_payload(1005) == b""
    with pytest.raises(LocalProtocolError):
        encode_close_payload(None, "reason without code")


def test_close_payload_one_byte() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(b"\x03")
    assert info.value.code == 1002


def test_close_payload_code_only() -> None:
    assert encode_close_payload(1000) == b"\x03\xe8"
    assert parse_close_payload(b"\x03\xe8") == (1000, "")


def test_close_payload_unicode_reason() -> None:
    payload = encode_close_payload(4001, "héllo ✓")
    assert payload[2:] == "héllo ✓".encode()
    assert parse_close_payload(payload) == (4001, "héllo ✓")


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_parse_close_payload_invalid_utf8(reason: bytes) -> None:
    with pytest.raises(InvalidUTF8) as info:
        parse_close_payload(b"\x03\xe8" + reason)
    assert info.value.code == 1007


def test_close_reason_length_limit() -> None:
    # 2 bytes of code + 123 bytes of reason = 125, the control frame limit.
    assert len(encode_close_payload(1000, "x" * 123)) == 125
    with pytest.raises(LocalProtocolError):
        encode_close_payload(1000, "x" * 124)
    # The limit is in bytes, not characters: 62 two-byte characters are 124 bytes.
    with pytest.raises(LocalProtocolError):
        encode_close_payload(1000, "é" * 62)
    assert len(encode_close_payload(1000, "é" * 61)) == 124


def test_fit_close_reason_cuts_at_123_bytes_between_characters() -> None:
    assert fit_close_reason("short") == "short"
    assert fit_close_reason("x" * 200) == "x" * 123
    # 62 two-byte characters are 124 bytes: the last one does not fit, whole.
    assert fit_close_reason("é" * 62) == "é" * 61


@given(reason=st.text(max_size=200))
def test_a_fitted_reason_always_makes_a_close_frame(reason: str) -> None:
    fitted = fit_close_reason(reason)
    assert reason.startswith(fitted)
    assert parse_close_payload(encode_close_payload(1000, fitted)) == (1000, fitted)
    if len(reason.encode()) <= 123:
        assert fitted == reason


@given(
    code=st.sampled_from(VALID_CODES),
    reason=st.text(max_size=40).filter(lambda s: len(s.encode()) <= 123),
)
def test_close_payload_round_trip_property(code: int, reason: str) -> None:
    assert parse_close_payload(encode_close_payload(code, reason)) == (code, reason)


def test_encode_close_payload_is_exported_at_the_top_level() -> None:
    # gorilla's FormatCloseMessage: the payload of a close frame, for raw frame writers.
    import wskit

    assert wskit.encode_close_payload is encode_close_payload
    assert wskit.encode_close_payload(wskit.CloseCode.GOING_AWAY, "restart") == b"\x03\xe9restart"


def test_ping_payload() -> None:
    assert ping_payload("hé", {}) == "hé".encode()
    assert ping_payload(b"x", {b"y": None}) == b"x"
    with pytest.raises(LocalProtocolError, match="already in flight"):
        ping_payload("x", {b"x": None})
    assert len(ping_payload(None, {})) == 4
    # A random payload is never one in flight: a drawn one in use is drawn again.
    with mock.patch.object(frames.os, "urandom", side_effect=[b"used", b"free"]):
        assert ping_payload(None, {b"used": None}) == b"free"


# -- LargeFrame ----------------------------------------------------------------------------


class Receiver:
    """What LargeFrame hands a whole payload to: a connection's events and large_frame."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.large_frame: object = "receiving"


@given(st.binary(min_size=1, max_size=3000), st.binary(min_size=4, max_size=4), st.data())
def test_large_frame_unmasks_what_arrives_in_any_pieces(
    payload: bytes, key: bytes, data: st.DataObject
) -> None:
    large = LargeFrame(len(payload), key)
    masked = apply_mask(payload, key)
    receiver = Receiver()
    cut = data.draw(st.integers(0, len(payload)))
    # The first piece copied in (from the receive buffer), the rest read into rest().
    assert large.fill(masked[:cut], receiver) == (b"" if cut == len(payload) else None)  # type: ignore[arg-type]
    while large.done < len(payload):
        rest = large.rest()
        n = data.draw(st.integers(1, len(rest)))
        rest[:n] = masked[large.done : large.done + n]
        large.received(n, receiver)  # type: ignore[arg-type]
    assert receiver.events == [DataReceived(payload, True)]
    assert type(receiver.events[0][0]) is bytes  # type: ignore[index]
    assert receiver.large_frame is None


def test_large_frame_fill_returns_what_follows_the_frame() -> None:
    large = LargeFrame(4, None)
    receiver = Receiver()
    assert large.fill(b"ab", receiver) is None  # type: ignore[arg-type]
    assert large.fill(memoryview(b"cdNEXT"), receiver) == b"NEXT"  # type: ignore[arg-type]
    assert receiver.events == [DataReceived(b"abcd", True)]
