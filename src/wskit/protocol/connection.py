"""The WebSocket connection state machine (RFC 6455 sections 5-7), sans I/O.

Theory of operation
===================

A :class:`Connection` is what remains of a WebSocket once the opening
handshake is done: two byte streams and the rules between them. It never
touches a socket. The I/O layer drives it with two calls and two reads:

* ``receive_data(data)`` with every chunk of bytes from the network, and
  ``receive_eof()`` when the peer closes its side of the TCP connection;
* then, immediately, ``events_received()`` for what arrived (data, pings,
  pongs, a close) and ``data_to_send()`` for the bytes to write (pongs and
  close frames the protocol answers by itself), and ``close_expected()`` to
  learn whether the TCP connection should be closed now.

The application's calls (``send_text``, ``send_binary``,
``send_continuation``, ``send_ping``, ``send_pong``, ``send_close``) queue
bytes for ``data_to_send()`` too.

The asyncio layer, on its hot path, reads what is behind those calls in
place: the lists :attr:`Connection.events` and :attr:`Connection.output`,
the receive buffer :attr:`Connection.unparsed`, the phase
:attr:`Connection.phase` and :attr:`Connection.masking`. They are named and
documented for that purpose; nothing else of the connection is read from
outside.

States
------

The connection's one state variable is its :class:`~wskit.protocol.state.Phase`,
changed only through the transition table of :mod:`wskit.protocol.state`
(read its theory of operation first): it decides what may be sent, whether
received bytes are parsed, when a close frame goes out, and when the TCP
connection should be closed. Applications see it as three states::

    OPEN ──send_close()──▶ CLOSING ──close frame received──▶ CLOSED
    OPEN ──close frame received (echoed at once)──▶ CLOSED
    OPEN or CLOSING ──protocol violation (close frame with the error code)──▶ CLOSED
    any ──receive_eof()──▶ CLOSED

(With ``defer_failure`` a violation leaves the state ``OPEN``, the close
frame held back, until :meth:`Connection.commit_failure`.)

After the close frame has gone out nothing more is sent. Once both close
frames have crossed, the server closes the TCP connection first (section
7.1.1); the client waits for that, and :meth:`Connection.close_expected` says when.

Receiving
---------

Frames are parsed straight out of the receive buffer. A header is checked
as soon as its bytes are there, before the payload arrives, so that a bad
opcode or an oversize length fails the connection without buffering the
payload. Text is validated as UTF-8 frame by frame with an incremental
decoder, so an invalid sequence inside a fragmented message fails with
1007 when its frame arrives, not when the message ends. With
permessage-deflate each frame is inflated as it arrives, bounded by what
``max_size`` still allows, so a decompression bomb fails with 1009 early.

What a message in assembly may cost
-----------------------------------

Every frame of a fragmented message but the last counts at least
:data:`MIN_FRAGMENT_COST` (64) bytes against ``max_size``, even an empty
one: each fragment costs a parse, an event and a queue slot whatever it
carries, so a message may have at most ``max_size / 64 + 1`` fragments, and
an endless run of empty fragments ends in 1009 like any message over the
limit. Fragments of 64 bytes or more count their true size, and so does
the last one, however short (1 MiB in 64-byte fragments passes under
``max_size=2**20``, as does 1020 bytes in 100-byte fragments under 1024;
4 MiB in 64-byte fragments under the echo server's 16 MiB); only a message
cut into fragments shorter than 64 bytes counts more than it carries. A
message in one frame counts its true size, as before. The text of a frame still
arriving is decoded into one growing buffer, not a piece per read, so a
peer that trickles a frame a byte at a time costs no object per byte.
"""

from __future__ import annotations

import codecs
import enum
import io
import struct
from collections.abc import Callable

from .. import speedups as _speedups
from ..exceptions import (
    ConnectionClosed,
    InvalidUTF8,
    LocalProtocolError,
    PayloadTooBig,
    ProtocolError,
    closed_exception,
)
from .deflate import PerMessageDeflate
from .events import CloseReceived, DataReceived, Event, PingReceived, PongReceived
from .frames import (
    MAX_CONTROL_PAYLOAD,
    MIN_FRAGMENT_COST,
    CloseCode,
    LargeFrame,
    Opcode,
    apply_mask,
    check_header,
    encode_close_payload,
    encode_frame,
    encode_frame_parts,
    fit_close_reason,
    parse_close_payload,
)
from .prepared import PreparedMessage
from .state import (
    CLOSE_SENT,
    CLOSE_TCP_NOW,
    FAILURE_HELD,
    PUBLIC_STATE,
    RECEIVING,
    SENDING,
    TRANSITIONS,
    Phase,
    State,
    Trigger,
)

# State, PreparedMessage and MIN_FRAGMENT_COST live in modules of their own and are
# re-exported here.
__all__ = ["Side", "State", "Connection", "PreparedMessage", "MIN_FRAGMENT_COST"]

# What one receive_data() call may decompress without a max_size (see inflate_paused).
_INFLATE_BUDGET = 2**20


class Side(enum.Enum):
    """Which end of the connection this is; it decides who masks."""

    CLIENT = "client"
    SERVER = "server"


# Payloads from this size on are kept apart from their headers on output.
_LARGE = 65536

# NamedTuple's generated __new__ is a Python function; tuple.__new__ is not.
_new_tuple = tuple.__new__
_parse_simple = _speedups.parse_simple
_unpack_H = struct.Struct("!H").unpack_from
_unpack_Q = struct.Struct("!Q").unpack_from
_new_utf8_decoder: Callable[[], codecs.IncrementalDecoder] = codecs.getincrementaldecoder("utf-8")

# Frame header bits (RFC 6455 section 5.2).
_FIN = 0x80
_RSV1 = 0x40
_MASK = 0x80

_OP_CONT = Opcode.CONTINUATION.value
_OP_TEXT = Opcode.TEXT.value
_OP_BINARY = Opcode.BINARY.value
_OP_CLOSE = Opcode.CLOSE.value
_OP_PING = Opcode.PING.value
_OP_PONG = Opcode.PONG.value

# The phase of nearly every call: the hot paths test it with ``is`` first.
_OPEN = Phase.OPEN


def _rotate(mask: bytes | bytearray, offset: int) -> bytes:
    """The masking key as seen from ``offset`` bytes into the payload."""
    offset &= 3
    return bytes(mask[offset:] + mask[:offset] if offset else mask)


class Connection:
    """A WebSocket connection after the handshake: bytes in, events out.

    Args:
        side: :attr:`Side.SERVER` or :attr:`Side.CLIENT`.
        max_size: the largest message, in bytes after decompression, that
            may be received; a larger one fails the connection with 1009.
            Each frame of a fragmented message but the last counts at
            least :data:`MIN_FRAGMENT_COST` bytes. ``None`` means no limit.
        deflate: the permessage-deflate codec negotiated in the handshake.
        auto_pong: answer pings with pongs (the RFC requires it; turn it off
            only to answer them yourself with :meth:`send_pong`).
        defer_failure: when the peer breaks the protocol, stop reading but
            hold the failing close frame back until :meth:`commit_failure`,
            so the application can still answer the messages that arrived
            before the bad frame (Autobahn's "strict" behaviour).
    """

    # Slots: thousands of idle connections each save a __dict__.
    __slots__ = (
        "_expect_mask",
        "_frame_done",
        "_frame_text",
        "_in_compressed",
        "_in_decoder",
        "_in_opcode",
        "_in_size",
        "_inflated",
        "_out_compressed",
        "_out_opcode",
        "auto_pong",
        "close_rcvd",
        "close_sent",
        "compression_enabled",
        "defer_failure",
        "deflate",
        "error",
        "events",
        "inflate_paused",
        "large_frame",
        "masking",
        "max_size",
        "output",
        "phase",
        "side",
        "unparsed",
        "__weakref__",
    )

    def __init__(
        self,
        side: Side,
        *,
        max_size: int | None = 2**20,
        deflate: PerMessageDeflate | None = None,
        auto_pong: bool = True,
        defer_failure: bool = False,
    ) -> None:
        self.side = side
        self.max_size = max_size
        self.deflate = deflate
        self.auto_pong = auto_pong
        #: Where the closing handshake is: the one state variable, changed
        #: only by ``_move()`` (see :mod:`wskit.protocol.state`); :attr:`state`
        #: is its public view. The I/O layer may read it (``is Phase.OPEN``
        #: is the cheapest test of "nothing to do").
        self.phase = Phase.OPEN
        # Server frames are unmasked and client frames masked (section 5.1):
        # the bit we require on incoming frames, and what we do when sending.
        #: Whether this end masks the frames it sends (the client does).
        self.masking = side is Side.CLIENT
        self._expect_mask = _MASK if side is Side.SERVER else 0
        #: Received bytes not parsed yet: the start of a frame still arriving.
        #: The I/O layer may test it for emptiness (and then hand over a view).
        self.unparsed = bytearray()
        #: A large binary frame being received in place (see :class:`LargeFrame`):
        #: the I/O layer may read into its ``rest()`` and call :meth:`received_into`.
        self.large_frame: LargeFrame | None = None
        #: Events parsed and not yet taken: what :meth:`events_received`
        #: returns. The I/O layer may take the list in place (and put an
        #: empty one back) instead of calling it.
        self.events: list[Event] = []
        #: Bytes queued for the network and not yet taken: what
        #: :meth:`data_to_send` returns; the I/O layer may test it first.
        self.output: list[bytes] = []
        # Incoming fragmented message: None when between messages.
        self._in_opcode: int | None = None
        self._in_compressed = False
        self._in_size = 0
        self._in_decoder: codecs.IncrementalDecoder | None = None
        self._inflated = 0  # bytes decompressed by this receive_data() call
        #: Whether the last :meth:`receive_data` stopped parsing once it had
        #: decompressed over ``max_size`` (1 MiB without one): a few compressed
        #: bytes can stand for megabytes. The rest waits in :attr:`unparsed`;
        #: the I/O layer goes on with ``receive_data(b"")`` when it has room.
        self.inflate_paused = False
        # A text frame still arriving: bytes of it decoded so far, and the
        # text, in one buffer made when first needed (not a piece per read).
        self._frame_done = 0
        self._frame_text: io.StringIO | None = None
        # Outgoing fragmented message: None when between messages.
        self._out_opcode: int | None = None
        self._out_compressed = False
        #: Whether outgoing messages are compressed (when negotiated); gorilla's
        #: ``EnableWriteCompression``.
        self.compression_enabled = True
        # The outcome: what the close frames and the failure were. Kept for
        # reporting; every decision reads the phase instead.
        #: The close frame received: ``(code, reason)``, or ``None``.
        self.close_rcvd: tuple[int, str] | None = None
        #: The close frame sent: ``(code, reason)``, or ``None``.
        self.close_sent: tuple[int, str] | None = None
        #: The :class:`ProtocolError` that failed the connection, if any.
        self.error: ProtocolError | None = None
        self.defer_failure = defer_failure

    # -- the state ---------------------------------------------------------

    @property
    def state(self) -> State:
        """``OPEN``, ``CLOSING`` or ``CLOSED``: the public view of :attr:`phase`."""
        return PUBLIC_STATE[self.phase]

    @property
    def failure_pending(self) -> bool:
        """Whether a failure was detected but its close frame is held back (``defer_failure``)."""
        return self.phase in FAILURE_HELD

    def _move(self, trigger: Trigger, code: int | None = None, reason: str = "") -> None:
        """Change the phase as :data:`~wskit.protocol.state.TRANSITIONS` says: the only way.

        Entering a phase with our close frame out from one without sends
        the close frame, with ``code`` and ``reason``. Callers make sure
        that the table has the pair (a missing one is a bug: ``KeyError``).
        """
        phase = self.phase
        new = TRANSITIONS[phase, trigger]
        if new in CLOSE_SENT and phase not in CLOSE_SENT:
            self._send_close_frame(code, reason)
        self.phase = new

    def _send_refused(self) -> LocalProtocolError:
        """The error of a send in a phase that sends nothing more."""
        if self.phase in CLOSE_SENT:
            return LocalProtocolError("cannot send after the close frame was sent")
        return LocalProtocolError("cannot send after the connection was lost")

    # -- receiving ---------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the network.

        Afterwards, read :meth:`events_received`, :meth:`data_to_send` and
        :meth:`close_expected`. Data that arrives once the connection has
        failed or the peer's close frame was received is discarded, as
        section 5.5.1 prescribes.
        """
        phase = self.phase
        if phase is not _OPEN and phase not in RECEIVING:
            self.inflate_paused = False  # nothing more will be parsed
            return
        if self._inflated:
            self._inflated = 0
            self.inflate_paused = False
        if self.large_frame is not None:
            rest = self.large_frame.fill(data, self)
            if rest is None:  # the frame is not whole yet
                return
            data = rest
        buf = self.unparsed
        # With nothing buffered (the common case) parse the received bytes in
        # place, even a view of a buffer the I/O layer reuses (nothing parsed
        # keeps a reference to it), and copy only an incomplete tail.
        source: bytes | bytearray | memoryview
        if buf:
            buf += data
            source = buf
        else:
            source = data
        try:
            consumed = self._parse(source)
        except ProtocolError as exc:
            self._fail(exc)
            buf.clear()
            self.inflate_paused = False
            return
        if source is buf:
            if consumed:
                del buf[:consumed]
        elif consumed < len(source):
            buf += source[consumed:]

    def receive_eof(self) -> None:
        """Tell the connection that the peer closed the TCP stream.

        Without a close frame first this is an abnormal closure (1006).
        """
        self._move(Trigger.RECEIVE_EOF)
        self.unparsed.clear()
        self.large_frame = None

    def received_into(self, nbytes: int) -> bool:
        """Take note of ``nbytes`` read into ``large_frame.rest()``.

        Returns whether that made the frame whole: then read the events as
        after :meth:`receive_data`.
        """
        assert self.large_frame is not None, "no large frame is being received"
        return self.large_frame.received(nbytes, self)

    def events_received(self) -> list[Event]:
        """Return, and forget, the events parsed since the last call."""
        events = self.events
        if events:
            self.events = []
        return events

    def _parse(self, buf: bytes | bytearray | memoryview) -> int:
        """Parse every complete frame in ``buf``; return the bytes consumed."""
        pos = 0
        end = len(buf)
        expect_mask = self._expect_mask
        events = self.events
        if _parse_simple is not None and self._in_opcode is None and not self._frame_done:
            # The compiled kernel takes the run of whole-message frames at the
            # start; the loop below takes whatever it stopped at (anything
            # else, incomplete, or wrong, which the loop then reports).
            max_size = self.max_size
            pos = _parse_simple(
                buf, 0, expect_mask, -1 if max_size is None else max_size, events, DataReceived
            )
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = _unpack_H(buf, pos + 2)[0]
                head = 4
                if length < 126:
                    raise ProtocolError("frame length not in its shortest form")
            elif length == 127:
                if end - pos < 10:
                    break
                length = _unpack_Q(buf, pos + 2)[0]
                head = 10
                if length >> 63:
                    raise ProtocolError("frame length has its most significant bit set")
                if length < 65536:
                    raise ProtocolError("frame length not in its shortest form")
            if b1 & _MASK != expect_mask:
                if expect_mask:
                    raise ProtocolError("client frame is not masked")
                raise ProtocolError("server frame is masked")
            opcode = b0 & 0x0F
            # A whole text or binary message in one frame, no extension bits:
            # by far the most common frame, checked here without a call.
            simple = (b0 == 0x81 or b0 == 0x82) and self._in_opcode is None
            if simple:
                max_size = self.max_size
                if max_size is not None and length > max_size:
                    raise PayloadTooBig(f"message over the limit of {max_size} bytes")
            else:
                check_header(
                    b0,
                    length,
                    self._in_opcode,
                    self._in_compressed,
                    self._in_size,
                    self.deflate is not None,
                    self.max_size,
                )
            if expect_mask:
                head += 4
            start = pos + head
            if end - pos < head + length:
                if end > start and self._is_plain_text(b0, opcode):
                    self._decode_partial_text(buf, start, end, expect_mask)
                elif simple and b0 == 0x82 and _LARGE <= length <= 8 * (end - start):
                    # The rest is read in place: nothing of it waits in unparsed.
                    # (Once an eighth has come: a header alone commits no memory.)
                    mask = bytes(buf[start - 4 : start]) if expect_mask else None
                    self.large_frame = LargeFrame(length, mask)
                    with memoryview(buf) as view:
                        self.large_frame.fill(view[start:end], self)
                    return end
                break
            done = self._frame_done
            piece: bytes | bytearray | memoryview
            if length - done < _LARGE:
                piece = buf[start + done : start + length]
            else:
                # A view: the payload is copied once, by the unmasking or bytes().
                piece = memoryview(buf)[start + done : start + length]
            if expect_mask:
                key = bytes(buf[start - 4 : start])
                payload = apply_mask(piece, _rotate(key, done) if done else key)
            else:
                payload = piece if type(piece) is bytes else bytes(piece)
            if type(piece) is memoryview:
                piece.release()  # so that the buffer can be resized again
            pos = start + length
            if simple and not done:
                if b0 == 0x81:
                    try:
                        data: str | bytes = payload.decode()
                    except UnicodeDecodeError:
                        raise InvalidUTF8("text message is not valid UTF-8") from None
                else:
                    data = payload
                events.append(_new_tuple(DataReceived, (data, True)))
                continue
            if opcode >= 8:
                if opcode == _OP_CLOSE:
                    # Whatever follows the close frame is dropped (section 5.5.1).
                    self._receive_close(payload)
                    return end
                self._receive_ping_or_pong(opcode, payload)
            else:
                self._receive_data_frame(b0, opcode, payload)
                if self._inflated > (self.max_size or _INFLATE_BUDGET):
                    self.inflate_paused = True
                    break
        return pos

    def _is_plain_text(self, b0: int, opcode: int) -> bool:
        """Whether a frame carries uncompressed text (then it is decoded as it arrives)."""
        if opcode == _OP_TEXT:
            return not b0 & _RSV1
        return opcode == _OP_CONT and self._in_opcode == _OP_TEXT and not self._in_compressed

    def _decode_partial_text(
        self, buf: bytes | bytearray | memoryview, start: int, end: int, masked: int
    ) -> None:
        """Decode the part of a text frame received so far.

        An invalid UTF-8 sequence then fails the connection as soon as its
        bytes arrive, even in the middle of one large frame (fail fast), and
        no byte of the frame is decoded twice.
        """
        done = self._frame_done
        if start + done >= end:
            return
        chunk = bytes(buf[start + done : end])
        if masked:
            chunk = apply_mask(chunk, _rotate(bytes(buf[start - 4 : start]), done))
        decoder = self._in_decoder
        if decoder is None:
            decoder = self._in_decoder = _new_utf8_decoder()
        try:
            text = decoder.decode(chunk, False)
        except UnicodeDecodeError:
            raise InvalidUTF8("text message is not valid UTF-8") from None
        frame_text = self._frame_text
        if frame_text is None:
            frame_text = self._frame_text = io.StringIO()
        frame_text.write(text)
        self._frame_done = done + len(chunk)

    def _receive_data_frame(self, b0: int, opcode: int, payload: bytes) -> None:
        fin = bool(b0 & _FIN)
        if opcode == _OP_CONT:
            opcode = self._in_opcode  # type: ignore[assignment]  # checked in the header
            compressed = self._in_compressed
            size = self._in_size
        else:
            compressed = bool(b0 & _RSV1)
            size = 0
        max_size = self.max_size
        if compressed:
            assert self.deflate is not None
            remaining = None if max_size is None else max_size - size
            payload = self.deflate.decode(payload, fin, remaining)
            self._inflated += len(payload)
        grown = len(payload) + self._frame_done
        if grown < MIN_FRAGMENT_COST and not fin:
            grown = MIN_FRAGMENT_COST  # a fragment but the last: see the module's docstring
        size += grown
        if max_size is not None and size > max_size:
            raise PayloadTooBig(f"message over the limit of {max_size} bytes")
        data: str | bytes
        if opcode == _OP_TEXT:
            decoder = self._in_decoder
            if decoder is None and fin:
                # Whole message in one frame: one C call validates and decodes.
                try:
                    data = payload.decode()
                except UnicodeDecodeError:
                    raise InvalidUTF8("text message is not valid UTF-8") from None
            else:
                if decoder is None:
                    decoder = self._in_decoder = _new_utf8_decoder()
                try:
                    data = decoder.decode(payload, fin)
                except UnicodeDecodeError:
                    raise InvalidUTF8("text message is not valid UTF-8") from None
            frame_text = self._frame_text
            if frame_text is not None:
                # The frame's beginning was decoded as it arrived.
                frame_text.write(data)
                data = frame_text.getvalue()
                self._frame_text = None
                self._frame_done = 0
        else:
            data = payload
        if fin:
            self._in_opcode = None
            self._in_decoder = None
            self._in_size = 0
        else:
            self._in_opcode = opcode
            self._in_compressed = compressed
            self._in_size = size
        self.events.append(DataReceived(data, fin))

    def _receive_ping_or_pong(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_PING:
            self.events.append(PingReceived(payload))
            if self.auto_pong and self.phase in SENDING:
                self.output.append(encode_frame(_OP_PONG, payload, mask=self.masking))
        else:
            self.events.append(PongReceived(payload))

    def _receive_close(self, payload: bytes) -> None:
        code, reason = parse_close_payload(payload)
        self.close_rcvd = (code, reason)
        self.events.append(CloseReceived(code, reason))
        # In OPEN the move echoes the peer's code and reason (section 5.5.1),
        # so that it sees its own close reflected; 1005 means it sent no code.
        if code == CloseCode.NO_STATUS_RCVD:
            self._move(Trigger.RECEIVE_CLOSE)
        else:
            self._move(Trigger.RECEIVE_CLOSE, code, reason)
        self.unparsed.clear()

    def _fail(self, exc: ProtocolError) -> None:
        """Fail the connection (section 7.1.7): close frame, then drop TCP.

        With ``defer_failure`` the close frame is held back until
        :meth:`commit_failure`, unless ours is out already.
        """
        self.error = exc
        trigger = Trigger.FAIL_DEFERRED if self.defer_failure else Trigger.FAIL
        self._move(trigger, *self._failure_close())

    def _failure_close(self) -> tuple[int, str]:
        """The code and reason of the close frame that fails the connection."""
        exc = self.error
        assert exc is not None
        return exc.code, fit_close_reason(exc.reason)

    def commit_failure(self) -> None:
        """Send the close frame of a failure held back; see ``defer_failure``.

        Does nothing when no failure is held back.
        """
        if self.phase in FAILURE_HELD:
            self._move(Trigger.COMMIT_FAILURE, *self._failure_close())

    # -- sending -----------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """Return, and forget, the bytes to write to the network, in order."""
        output = self.output
        if output:
            self.output = []
        return output

    def close_expected(self) -> bool:
        """Tell whether the I/O layer should close the TCP connection now.

        True after the connection failed, and on the server once both close
        frames crossed (the server closes TCP first, section 7.1.1). A
        client waits for the server's EOF, with a timeout of its own.
        """
        phase = self.phase
        return phase in CLOSE_TCP_NOW or (
            phase is Phase.CLOSE_EXCHANGED and self.side is Side.SERVER
        )

    def _check_can_send(self) -> None:
        phase = self.phase
        if phase is not _OPEN and phase not in SENDING:
            raise self._send_refused()

    def _compress_new_message(self, size: int, compress: bool | None) -> bool:
        deflate = self.deflate
        if deflate is None:
            if compress:
                raise LocalProtocolError("compression was not negotiated")
            return False
        if compress is None:
            return self.compression_enabled and deflate.should_compress(size)
        return compress

    def _send_data(self, opcode: int, data: bytes, fin: bool, compress: bool | None) -> None:
        if self.phase is not _OPEN:
            self._check_can_send()
        if self._out_opcode is not None:
            raise LocalProtocolError("a fragmented message is still being sent")
        if self.deflate is None and not compress:
            # Uncompressed: skip the compression decision entirely.
            if len(data) < _LARGE:
                self.output.append(encode_frame(opcode, data, fin=fin, mask=self.masking))
            else:
                # Header and payload as two pieces: no copy of a large payload.
                self.output.extend(encode_frame_parts(opcode, data, fin=fin, mask=self.masking))
            if not fin:
                self._out_opcode = opcode
                self._out_compressed = False
            return
        compressed = self._compress_new_message(len(data), compress)
        if compressed:
            assert self.deflate is not None
            data = self.deflate.encode(data, fin)
        self.output.append(encode_frame(opcode, data, fin=fin, rsv1=compressed, mask=self.masking))
        if not fin:
            self._out_opcode = opcode
            self._out_compressed = compressed

    def send_text(
        self, data: str | bytes, fin: bool = True, *, compress: bool | None = None
    ) -> None:
        """Send a text message, or the first frame of one with ``fin=False``.

        ``data`` may be ``bytes`` already encoded as UTF-8 (it is not checked).
        ``compress`` forces compression on or off for this message; ``None``
        compresses when negotiated, enabled and over the size threshold.
        """
        payload = data.encode() if isinstance(data, str) else data
        self._send_data(_OP_TEXT, payload, fin, compress)

    def send_binary(
        self,
        data: bytes | bytearray | memoryview,
        fin: bool = True,
        *,
        compress: bool | None = None,
    ) -> None:
        """Send a binary message, or the first frame of one with ``fin=False``."""
        self._send_data(_OP_BINARY, bytes(data), fin, compress)

    def send_continuation(self, data: str | bytes | bytearray | memoryview, fin: bool) -> None:
        """Send the next frame of the fragmented message started with ``fin=False``."""
        self._check_can_send()
        if self._out_opcode is None:
            raise LocalProtocolError("no fragmented message to continue")
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if self._out_compressed:
            assert self.deflate is not None
            payload = self.deflate.encode(payload, fin)
        self.output.append(encode_frame(_OP_CONT, payload, fin=fin, mask=self.masking))
        if fin:
            self._out_opcode = None

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping; the peer answers with a pong carrying the same data."""
        self._send_control(_OP_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        """Send a pong (unsolicited pongs serve as a unidirectional heartbeat)."""
        self._send_control(_OP_PONG, data)

    def _send_control(self, opcode: int, data: bytes) -> None:
        self._check_can_send()
        if len(data) > MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError("control frame payload over 125 bytes")
        self.output.append(encode_frame(opcode, data, mask=self.masking))

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (section 7.1.2).

        ``code=None`` sends a close frame without a status code. Nothing can
        be sent afterwards; received data is still reported until the peer's
        close frame arrives.
        """
        if self.phase in FAILURE_HELD:
            # The peer broke the protocol: its error code wins over ours.
            code, reason = self._failure_close()
        elif (self.phase, Trigger.SEND_CLOSE) not in TRANSITIONS:
            raise self._send_refused()
        self._move(Trigger.SEND_CLOSE, code, reason)

    def _send_close_frame(self, code: int | None, reason: str) -> None:
        payload = encode_close_payload(code, reason)
        self.output.append(encode_frame(_OP_CLOSE, payload, mask=self.masking))
        self.close_sent = (CloseCode.NO_STATUS_RCVD if code is None else code, reason)

    def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared once for many connections."""
        self._check_can_send()
        if self._out_opcode is not None:
            raise LocalProtocolError("a fragmented message is still being sent")
        self.output.append(message.frame_for(self))

    # -- the outcome -------------------------------------------------------

    @property
    def close_code(self) -> int:
        """The code of the close frame received: 1005 without code, 1006 without frame."""
        if self.close_rcvd is not None:
            return self.close_rcvd[0]
        return CloseCode.ABNORMAL_CLOSURE

    @property
    def close_reason(self) -> str:
        """The reason of the close frame received, or ``""``."""
        return self.close_rcvd[1] if self.close_rcvd is not None else ""

    def closed_exception(self) -> ConnectionClosed:
        """Build the exception that reads and writes raise once closed."""
        sent_code, sent_reason = self.close_sent if self.close_sent else (None, "")
        return closed_exception(self.close_code, self.close_reason, sent_code, sent_reason)
