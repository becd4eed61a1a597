"""WebSocket frames (RFC 6455 section 5): opcodes, close codes, masking, encoding.

Parsing lives in :mod:`wskit.protocol.connection`, which reads frames straight
out of its receive buffer; this module holds what both directions share.
"""

from __future__ import annotations

import enum
import os
import struct
import sys
from collections.abc import Callable, Container
from typing import TYPE_CHECKING

from .. import speedups as _speedups
from ..exceptions import PayloadTooBig, ProtocolError
from .events import DataReceived

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "Opcode",
    "CloseCode",
    "DATA_OPCODES",
    "CONTROL_OPCODES",
    "MAX_CONTROL_PAYLOAD",
    "MIN_FRAGMENT_COST",
    "apply_mask",
    "encode_frame",
    "encode_frame_parts",
    "encode_close_payload",
    "parse_close_payload",
    "fit_close_reason",
    "is_valid_close_code",
    "ping_payload",
    "check_header",
    "LargeFrame",
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

MIN_FRAGMENT_COST = 64
"""What each frame of a fragmented message but the last counts at least against ``max_size``.

Empty and tiny fragments cost memory and time all the same; charging each
at least this many bytes bounds a message to ``max_size / 64 + 1``
fragments, while fragments of 64 bytes or more, and the last one, count
exactly their size.
"""


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


def check_header(
    b0: int,
    length: int,
    in_opcode: int | None,
    in_compressed: bool,
    in_size: int,
    extension: bool,
    max_size: int | None,
) -> None:
    """Validate a frame header before its payload arrives (RFC 6455 section 5.2).

    ``b0`` is the header's first byte and ``length`` the payload's; the
    message being received decides the rest: ``in_opcode`` (``None``
    between messages), whether it is compressed, the size it reached,
    whether an extension (permessage-deflate) was negotiated, and the limit.

    Raises:
        ProtocolError: the header breaks a rule of the protocol.
        PayloadTooBig: the message would grow past ``max_size``.
    """
    opcode = b0 & 0x0F
    if b0 & 0x30:
        raise ProtocolError("reserved bits RSV2/RSV3 set without an extension")
    if opcode >= 8:
        if opcode > Opcode.PONG:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        if not b0 & 0x80:
            raise ProtocolError("fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError("control frame payload over 125 bytes")
        if b0 & 0x40:
            raise ProtocolError("RSV1 set on a control frame")
        return
    if opcode > Opcode.BINARY:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    if opcode == Opcode.CONTINUATION:
        if in_opcode is None:
            raise ProtocolError("continuation frame without a message to continue")
        if b0 & 0x40:
            raise ProtocolError("RSV1 set on a continuation frame")
        compressed = in_compressed
    else:
        if in_opcode is not None:
            raise ProtocolError("new data frame inside a fragmented message")
        compressed = bool(b0 & 0x40)
        if compressed and not extension:
            raise ProtocolError("RSV1 set without a negotiated extension")
    if max_size is not None:
        # Compressed payloads are bounded after inflating; their raw size
        # only fails when it is far beyond anything inflating could shrink
        # back under the limit (stored blocks add 5 bytes per 64 KiB).
        limit = max_size + (max_size >> 8) + 64 if compressed else max_size
        # A fragment but the last counts at least MIN_FRAGMENT_COST.
        size = length if b0 & 0x80 or length > MIN_FRAGMENT_COST else MIN_FRAGMENT_COST
        if opcode == Opcode.CONTINUATION:
            size += in_size
        if size > limit:
            raise PayloadTooBig(f"message over the limit of {max_size} bytes")


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


def _new_payload_python(size: int) -> tuple[bytearray, memoryview]:
    buffer = bytearray(size)
    return buffer, memoryview(buffer)


def _unmask_in_place_python(buffer: memoryview | bytearray, mask: bytes, offset: int) -> None:
    offset &= 3
    buffer[:] = _apply_mask_python(buffer, mask[offset:] + mask[:offset])


_new_payload: Callable[[int], tuple[bytes | bytearray, memoryview]] = (
    _speedups.new_payload or _new_payload_python
)
_unmask_in_place = _speedups.unmask_in_place or _unmask_in_place_python


class LargeFrame:
    """A large binary frame whose payload is read straight into the message.

    :class:`~wskit.protocol.connection.Connection` makes one (its
    ``large_frame``) when the header of a whole, uncompressed binary message
    of 64 KiB or more has arrived with at least an eighth of its payload (a
    header alone commits no memory), and the rest has not: the rest of the
    payload then goes into the message's own bytes as it arrives, unmasked
    in place while the bytes are still in the CPU's cache, rather than
    through the receive buffer and a copy at the end. An I/O layer may read
    from the socket into :meth:`rest` directly and report with
    :meth:`~wskit.protocol.connection.Connection.received_into`.

    Args:
        length: the payload's length (the frame header's).
        key: the masking key of the frame, or ``None`` for an unmasked one.
    """

    __slots__ = ("_key", "_payload", "_view", "done", "length")

    def __init__(self, length: int, key: bytes | None) -> None:
        self._payload: bytes | bytearray
        self._payload, self._view = _new_payload(length)
        self._key = key
        #: The payload's length.
        self.length = length
        #: How many payload bytes arrived so far.
        self.done = 0

    def rest(self) -> memoryview:
        """A writable view of the payload bytes still to come."""
        return self._view[self.done :]

    def received(self, nbytes: int, connection: Connection) -> bool:
        """Note that ``nbytes`` were written at the start of :meth:`rest`.

        Once the payload is whole, it goes to ``connection``'s events as a
        message and the connection's ``large_frame`` is cleared; returns
        whether it was.
        """
        done = self.done
        if self._key is not None:
            _unmask_in_place(self._view[done : done + nbytes], self._key, done)
        self.done = done = done + nbytes
        if done < self.length:
            return False
        payload = self._payload
        # The pure-Python fallback fills a bytearray: one copy makes the message.
        data = payload if type(payload) is bytes else bytes(payload)
        connection.large_frame = None
        connection.events.append(DataReceived(data, True))
        return True

    def fill(
        self, data: bytes | bytearray | memoryview, connection: Connection
    ) -> bytes | bytearray | memoryview | None:
        """Copy in what of ``data`` belongs to the payload (see :meth:`received`).

        Returns what follows the frame in ``data``, or ``None`` while the
        payload is not whole.
        """
        done = self.done
        n = min(len(data), self.length - done)
        with memoryview(data) as view:
            self._view[done : done + n] = view[:n]
        return data[n:] if self.received(n, connection) else None


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
