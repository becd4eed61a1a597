"""Messages encoded once and written to many connections (broadcast, the hub's rooms)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .frames import Opcode, encode_frame

if TYPE_CHECKING:
    from .deflate import PerMessageDeflate

__all__ = ["PreparedMessage", "Sender"]

_OP_TEXT = Opcode.TEXT.value
_OP_BINARY = Opcode.BINARY.value


class Sender(Protocol):
    """What a frame depends on of the connection it goes to (a ``Connection`` is one)."""

    #: The permessage-deflate codec negotiated, or ``None``.
    deflate: PerMessageDeflate | None
    #: Whether outgoing messages are compressed (when negotiated).
    compression_enabled: bool
    #: Whether this end masks its frames (a client, RFC 6455 section 5.1).
    masking: bool


class PreparedMessage:
    """A message encoded once and written to many connections.

    The frame is built lazily for each kind of connection and cached:
    one uncompressed server frame serves every connection that does not
    compress; one compressed frame serves every connection whose deflate
    parameters match and that does not keep context between messages.
    Connections that keep context, and clients (whose frames are masked
    with a fresh key each), get a frame of their own.
    """

    __slots__ = ("data", "opcode", "plain", "_compressed")

    def __init__(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.opcode = _OP_TEXT
            self.data = data.encode()
        else:
            self.opcode = _OP_BINARY
            self.data = bytes(data)
        #: The plain frame once :meth:`plain_frame` has built it, else ``None``:
        #: the fan-out reads it here, without a call, once per receiver.
        self.plain: bytes | None = None
        self._compressed: dict[tuple[object, ...], bytes] = {}

    def plain_frame(self) -> bytes:
        """The unmasked, uncompressed frame (what a server sends without deflate)."""
        frame = self.plain
        if frame is None:
            frame = self.plain = encode_frame(self.opcode, self.data)
        return frame

    def frame_for(self, conn: Sender) -> bytes:
        """The bytes to write on ``conn``; may update ``conn``'s compressor."""
        deflate = conn.deflate
        compress = deflate is not None and conn.compression_enabled
        if compress:
            assert deflate is not None
            compress = deflate.should_compress(len(self.data))
        private = compress and deflate is not None and deflate.shared_key is None
        if conn.masking or private:
            if compress:
                assert deflate is not None
                payload = deflate.encode(self.data, True)
                return encode_frame(self.opcode, payload, rsv1=True, mask=conn.masking)
            return encode_frame(self.opcode, self.data, mask=conn.masking)
        if not compress:
            return self.plain_frame()
        assert deflate is not None and deflate.shared_key is not None
        key = deflate.shared_key
        frame = self._compressed.get(key)
        if frame is None:
            payload = deflate.encode(self.data, True)
            frame = self._compressed[key] = encode_frame(self.opcode, payload, rsv1=True)
        return frame
