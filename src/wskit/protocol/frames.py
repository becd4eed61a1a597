"""WebSocket frames (RFC 6455 section 5): opcodes, close codes, masking, encoding.

Parsing lives in :mod:`wskit.protocol.connection`, which reads frames straight
out of its receive buffer; this module holds what both directions share.
"""

from __future__ import annotations

import enum
import os
import struct
import sys
from collections.abc import Container

from .. import speedups as _speedups

__all__ = [
    "Opcode",
    "CloseCode",
    "DATA_OPCODES",
    "CONTROL_OPCODES",
    "MAX_CONTROL_PAYLOAD",
    "apply_mask",
    "encode_frame",
    "encode_frame_parts",
    "encode_close_payload",
    "parse_close_payload",
    "fit_close_reason",
    "is_valid_close_code",
    "ping_payload",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2); 3-7 and 11-15 are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


#: The opcodes of data frames (RFC 6455, section 5.6).
DATA_OPCODES = frozenset((Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY))
#: The opcodes of control frames (RFC 6455, section 5.5).
CONTROL_OPCODES = frozenset((Opcode.CLOSE, Opcode.PING, Opcode.PONG))

MAX_CONTROL_PAYLOAD = 125
"""Control frames carry at most 125 bytes (RFC 6455 section 5.5)."""


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 section 7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never on the wire: "the close frame had no code"
    ABNORMAL_CLOSURE = 1006  # never on the wire: "no close frame at all"
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


_WIRE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a close frame on the wire.

    1000-1003 and 1007-1014 are defined; 3000-3999 are registered by
    libraries and 4000-4999 are private. 1004-1006, 1015 and everything
    else below 3000 or above 4999 is forbidden (RFC 6455 section 7.4).
    """
    return code in _WIRE_CODES or 3000 <= code <= 4999


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Decode a close frame's payload into ``(code, reason)``.

    An empty payload means "no status code": ``(1005, "")``.

    Raises:
        ProtocolError: a one-byte payload, or a code not allowed on the wire.
        InvalidUTF8: the reason is not valid UTF-8.
    """
    from ..exceptions import InvalidUTF8, ProtocolError

    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a one-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise InvalidUTF8("close reason is not valid UTF-8") from None
    return code, reason


def encode_close_payload(code: int | None, reason: str = "") -> bytes:
    """Encode ``(code, reason)`` as a close frame payload.

    ``code=None`` (or 1005) gives the empty payload, which says "no status".

    Raises:
        LocalProtocolError: an invalid code, a reason without a code, or a
            payload over 125 bytes.
    """
    from ..exceptions import LocalProtocolError

    if code is None or code == CloseCode.NO_STATUS_RCVD:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise LocalProtocolError(f"close code {code} may not be sent")
    payload = struct.pack("!H", code) + reason.encode()
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise LocalProtocolError("close reason is longer than 123 bytes")
    return payload


def ping_payload(data: str | bytes | None, in_flight: Container[bytes]) -> bytes:
    """The payload of a ping to send: ``data`` (text UTF-8 encoded), or four random bytes.

    A pong carries its ping's payload back: the random payload is one that no
    ping in ``in_flight`` uses, so that its pong answers this ping alone.
    (The length of ``data`` is checked when the ping is sent.)

    Raises:
        LocalProtocolError: a ping with the payload ``data`` is in flight.
    """
    payload = data.encode() if isinstance(data, str) else data
    if payload is None:
        payload = os.urandom(4)
        while payload in in_flight:
            payload = os.urandom(4)
    elif payload in in_flight:
        from ..exceptions import LocalProtocolError

        raise LocalProtocolError("a ping with the same data is already in flight")
    return payload


def fit_close_reason(reason: str) -> str:
    """The longest start of ``reason`` that fits a close frame (RFC 6455 section 5.5).

    A close frame carries at most 123 bytes of reason after its code; the
    cut never splits a UTF-8 sequence, so the result is still valid text.
    """
    return reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore")


def _apply_mask_python(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 section 5.3)."""
    n = len(data)
    if n == 0:
        return b""
    # One big-integer XOR is far faster in CPython than a byte loop: repeat the
    # key to the payload's length and let int arithmetic do the work.
    key = (mask * (n // 4 + 1))[:n]
    order = sys.byteorder
    return (int.from_bytes(data, order) ^ int.from_bytes(key, order)).to_bytes(n, order)


apply_mask = _speedups.apply_mask or _apply_mask_python
"""XOR ``data`` with ``mask``: the compiled kernel when built, else the Python one."""

_pack_B = struct.Struct("!BB").pack
_pack_H = struct.Struct("!BBH").pack
_pack_Q = struct.Struct("!BBQ").pack


def encode_frame_parts(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
) -> tuple[bytes, bytes]:
    """Serialize one frame as ``(header, payload)``, masking the payload if asked.

    For large payloads, writing the two parts separately saves copying the
    payload behind its header; :func:`encode_frame` joins them.
    """
    length = len(payload)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    m = 0x80 if mask else 0
    if length < 126:
        header = _pack_B(b0, m | length)
    elif length < 65536:
        header = _pack_H(b0, m | 126, length)
    else:
        header = _pack_Q(b0, m | 127, length)
    if mask:
        # A fresh random key for every frame (RFC 6455 section 5.3).
        key = os.urandom(4)
        return header + key, apply_mask(payload, key)
    return header, payload if type(payload) is bytes else bytes(payload)


def encode_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
) -> bytes:
    """Serialize one frame: header, optional masking key, payload.

    ``mask=True`` (the client side) draws a fresh random key from
    :func:`os.urandom` for this frame, as section 5.3 requires.
    """
    header, body = encode_frame_parts(opcode, payload, fin=fin, rsv1=rsv1, mask=mask)
    return header + body
