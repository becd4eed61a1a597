"""The permessage-deflate extension (RFC 7692), sans I/O.

Three layers, each usable on its own:

* :class:`DeflateOptions` is what the application is willing to negotiate.
* :func:`client_offer`, :func:`client_accept` and :func:`server_negotiate`
  turn options and ``Sec-WebSocket-Extensions`` elements into an agreement
  (RFC 7692 sections 5 and 7.1).
* :class:`PerMessageDeflate` is the agreed codec of one connection: it
  compresses outgoing frame payloads and inflates incoming ones (section 7.2).
  :func:`compress_once` compresses a whole message without any connection, so
  that a broadcast can compress once for every connection with the same
  :attr:`PerMessageDeflate.shared_key`.

Two limitations of zlib shape the code:

* ``zlib.compressobj`` refuses a raw deflate window of 8 bits (256 bytes).
  A peer may still ask us for one, so in that case we compress with a 9-bit
  window but feed zlib at most 256 bytes between ``Z_FULL_FLUSH`` calls.
  A full flush forgets the history, so no back-reference can reach further
  than 256 bytes and any RFC-compliant 256-byte inflater can decode it.
  Decompressing with an 8-bit window works with zlib as is.
* A compressor costs about 256 KiB with the defaults and a decompressor about
  40 KiB, so both are created on first use and dropped whenever the agreement
  says their history will not be used again.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from wskit.exceptions import InvalidResponse, PayloadTooBig, ProtocolError
from wskit.protocol.headers import ExtensionOffer, ExtensionParams

__all__ = [
    "EXTENSION_NAME",
    "DeflateOptions",
    "PerMessageDeflate",
    "compress_once",
    "client_offer",
    "client_accept",
    "server_negotiate",
]

EXTENSION_NAME = "permessage-deflate"
"""The extension token in ``Sec-WebSocket-Extensions``."""

# The empty non-final stored block that Z_SYNC_FLUSH ends with; RFC 7692
# section 7.2.1 strips it from each message and section 7.2.2 puts it back.
_TAIL = b"\x00\x00\xff\xff"

# Below this size, copying the final frame to append _TAIL is cheaper than a
# second call into zlib (one small copy against one more C call round trip).
_CONCAT_TAIL_BELOW = 2048

# RFC 7692 section 7.1.2.1 ABNF: a decimal integer 8..15 without leading zeros.
_WINDOW_BITS_VALUES = {str(bits): bits for bits in range(8, 16)}

# How much input the window-8 emulation gives zlib between full flushes.
_WINDOW8_PIECE = 256

_Buffer = bytes | bytearray | memoryview

_SERVER_NCT = "server_no_context_takeover"
_CLIENT_NCT = "client_no_context_takeover"
_SERVER_MWB = "server_max_window_bits"
_CLIENT_MWB = "client_max_window_bits"


def _check_window_bits(name: str, bits: int | None, *, optional: bool) -> None:
    if bits is None and optional:
        return
    if not isinstance(bits, int) or isinstance(bits, bool) or not 8 <= bits <= 15:
        raise ValueError(f"{name} must be an integer from 8 to 15, not {bits!r}")


def _check_zlib_settings(compress_level: int, mem_level: int) -> None:
    if not -1 <= compress_level <= 9:
        raise ValueError(f"compress_level must be from -1 to 9, not {compress_level!r}")
    if not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be from 1 to 9, not {mem_level!r}")


@dataclass(frozen=True)
class DeflateOptions:
    """What one side is willing to negotiate (user configuration).

    The same options serve a client (which puts them in its offer) and a
    server (which applies them to the client's offer). Window sizes are in
    bits, 8 to 15 (256 bytes to 32 KiB); ``None`` leaves the RFC default of 15
    and sends nothing.
    """

    server_no_context_takeover: bool = False
    """Ask for (client) or impose (server) a server compressor reset per message."""
    client_no_context_takeover: bool = False
    """Ask for (client) or impose (server) a client compressor reset per message."""
    server_max_window_bits: int | None = None
    """Limit the server's compression window."""
    client_max_window_bits: int | None = None
    """Limit the client's compression window."""
    compress_level: int = 6
    """zlib compression level, -1 to 9 (0 stores, 1 is fastest, 9 smallest)."""
    mem_level: int = 8
    """zlib memLevel, 1 to 9: lower uses less memory per connection."""
    threshold: int = 128
    """Messages shorter than this many bytes are sent uncompressed."""
    max_decompressed: int | None = None
    """Not used by negotiation; the connection passes its limit to ``decode``."""

    def __post_init__(self) -> None:
        _check_window_bits("server_max_window_bits", self.server_max_window_bits, optional=True)
        _check_window_bits("client_max_window_bits", self.client_max_window_bits, optional=True)
        _check_zlib_settings(self.compress_level, self.mem_level)
        if self.threshold < 0:
            raise ValueError(f"threshold must not be negative, not {self.threshold!r}")
        if self.max_decompressed is not None and self.max_decompressed < 0:
            raise ValueError(f"max_decompressed must not be negative: {self.max_decompressed!r}")


def _new_compressor(window_bits: int, level: int, mem_level: int) -> zlib._Compress:
    # zlib rejects raw 8-bit windows; see _deflate_message for how 9 stays safe.
    return zlib.compressobj(level, zlib.DEFLATED, -max(window_bits, 9), mem_level)


def _deflate(compressor: zlib._Compress, data: _Buffer, fin: bool, window8: bool) -> bytes:
    """Compress one frame's worth of ``data`` and flush it to a byte boundary."""
    if window8:
        view = memoryview(data)
        # range() yields nothing for empty input, but the flush must still
        # happen so that an empty message is encoded as a valid block.
        pieces = [
            compressor.compress(view[i : i + _WINDOW8_PIECE]) + compressor.flush(zlib.Z_FULL_FLUSH)
            for i in range(0, len(view), _WINDOW8_PIECE)
        ] or [compressor.compress(b"") + compressor.flush(zlib.Z_FULL_FLUSH)]
        out = b"".join(pieces)
    else:
        # compress(b"") also matters: it tells zlib that a new flush is due,
        # so even an empty frame gets its own empty stored block.
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if fin and out.endswith(_TAIL):
        out = out[:-4]
    return out


def compress_once(data: bytes, *, window_bits: int, level: int, mem_level: int) -> bytes:
    """Compress a whole message without keeping any state.

    The result is byte for byte what a fresh :class:`PerMessageDeflate` with
    the same ``local_max_window_bits``, ``compress_level`` and ``mem_level``
    and no local context takeover returns from ``encode(data, fin=True)``, so
    one call can serve every connection with that
    :attr:`~PerMessageDeflate.shared_key`.
    """
    _check_window_bits("window_bits", window_bits, optional=False)
    _check_zlib_settings(level, mem_level)
    compressor = _new_compressor(window_bits, level, mem_level)
    return _deflate(compressor, data, True, window_bits == 8)


class PerMessageDeflate:
    """The negotiated codec of one connection (one direction each way).

    "Local" is the side this object runs on: with ``is_client=True`` the
    client parameters of the agreement govern :meth:`encode` and the server
    parameters govern :meth:`decode`, and the other way round for a server.

    The connection decides which messages to compress (:meth:`should_compress`)
    and sets or checks RSV1 on the first frame; this class only transforms
    payloads. It is not safe to interleave two messages in one direction.
    """

    __slots__ = (
        "is_client",
        "local_no_context_takeover",
        "remote_no_context_takeover",
        "local_max_window_bits",
        "remote_max_window_bits",
        "compress_level",
        "mem_level",
        "threshold",
        "_window8",
        "_fresh_each_message",
        "_compressor",
        "_decompressor",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        server_no_context_takeover: bool,
        client_no_context_takeover: bool,
        server_max_window_bits: int,
        client_max_window_bits: int,
        compress_level: int = 6,
        mem_level: int = 8,
        threshold: int = 128,
    ) -> None:
        _check_window_bits("server_max_window_bits", server_max_window_bits, optional=False)
        _check_window_bits("client_max_window_bits", client_max_window_bits, optional=False)
        _check_zlib_settings(compress_level, mem_level)
        self.is_client = is_client
        if is_client:
            self.local_no_context_takeover = client_no_context_takeover
            self.remote_no_context_takeover = server_no_context_takeover
            self.local_max_window_bits = client_max_window_bits
            self.remote_max_window_bits = server_max_window_bits
        else:
            self.local_no_context_takeover = server_no_context_takeover
            self.remote_no_context_takeover = client_no_context_takeover
            self.local_max_window_bits = server_max_window_bits
            self.remote_max_window_bits = client_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        self.threshold = threshold
        self._window8 = self.local_max_window_bits == 8
        # The window-8 emulation full-flushes, which forgets all history, so
        # carrying the compressor over would only keep memory for nothing.
        self._fresh_each_message = self.local_no_context_takeover or self._window8
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(is_client={self.is_client}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits})"
        )

    def should_compress(self, size: int) -> bool:
        """Tell whether a message of ``size`` bytes is worth compressing."""
        return size >= self.threshold

    @property
    def shared_key(self) -> tuple[int, int, int] | None:
        """A key under which compressed messages can be shared between connections.

        Two codecs with the same non-``None`` key turn the same message into
        the same bytes, namely ``compress_once(data, window_bits=key[0],
        level=key[1], mem_level=key[2])``. The key is ``None`` when this side
        keeps its compression context between messages, because the output
        then depends on what was sent before. (A local window of 8 bits never
        keeps context, whatever was negotiated, so it always has a key.)
        """
        if not self._fresh_each_message:
            return None
        return (self.local_max_window_bits, self.compress_level, self.mem_level)

    def encode(self, data: _Buffer, fin: bool) -> bytes:
        """Compress one outgoing frame's payload.

        Call it for every frame of a compressed message, in order, with
        ``fin=True`` on the last one. Every frame ends flushed, so a fragment
        can go out at once; the final one has its trailing ``00 00 ff ff``
        removed as RFC 7692 section 7.2.1 requires.
        """
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = _new_compressor(
                self.local_max_window_bits, self.compress_level, self.mem_level
            )
        out = _deflate(compressor, data, fin, self._window8)
        if fin and self._fresh_each_message:
            self._compressor = None
        return out

    def decode(self, data: _Buffer, fin: bool, max_length: int | None) -> bytes:
        """Decompress one frame's payload of a compressed message.

        Call it for every frame of a message whose first frame had RSV1, in
        order, with ``fin=True`` on the last one. ``max_length`` is how many
        more bytes the message may still grow by (``None`` for no limit).

        Raises:
            PayloadTooBig: the output would exceed ``max_length``; zlib is
                stopped right after the limit, so a small "decompression bomb"
                never gets to allocate its full size.
            ProtocolError: the payload is not valid deflate data (close code
                1002, see below).
        """
        if max_length is not None and max_length < 0:
            # Already over the limit: still allow frames that add nothing.
            max_length = 0
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self.remote_max_window_bits)
        try:
            if fin and len(data) < _CONCAT_TAIL_BELOW:
                out = self._inflate(decompressor, bytes(data) + _TAIL, max_length)
            else:
                out = self._inflate(decompressor, data, max_length)
                if fin:
                    rest = None if max_length is None else max_length - len(out)
                    # The tail is an empty stored block and normally inflates
                    # to nothing; a peer that stopped mid-block might make it
                    # inflate to something, so it stays under the limit too.
                    more = self._inflate(decompressor, _TAIL, rest)
                    if more:
                        out += more
            if decompressor.eof and decompressor.unused_data not in (b"", _TAIL):
                # Section 7.2.3.4 lets a sender end a message with a BFINAL
                # block; then our appended tail is left over, but nothing else
                # may follow the end of the deflate stream.
                raise ProtocolError("data after the end of the compressed message")
        except ProtocolError:
            # The half-inflated state is useless; the connection is failing.
            self._decompressor = None
            raise
        # After a BFINAL block the peer's compressor ended too, so its next
        # message starts from an empty window whatever was negotiated.
        if fin and (self.remote_no_context_takeover or decompressor.eof):
            self._decompressor = None
        return out

    @staticmethod
    def _inflate(decompressor: zlib._Decompress, data: _Buffer, max_length: int | None) -> bytes:
        try:
            if max_length is None:
                return decompressor.decompress(data)
            # Asking for one byte more than allowed tells "exactly at the
            # limit" from "over it" without inflating any further.
            out = decompressor.decompress(data, max_length + 1)
        except zlib.error as exc:
            # Corrupt deflate data breaks the extension's framing rather than
            # carrying a bad value of the right type, so this is 1002
            # (protocol error), like the websockets library, not 1007 (which
            # RFC 6455 keeps for data inconsistent with the message type,
            # such as bad UTF-8). RFC 7692 only says to fail the connection,
            # and the Autobahn testsuite accepts any failure here.
            raise ProtocolError(f"invalid compressed data: {exc}") from exc
        if len(out) > max_length:
            raise PayloadTooBig(
                f"decompressed message exceeds the limit ({max_length} more bytes allowed)"
            )
        return out

    def reset(self) -> None:
        """Drop both zlib objects to free their memory.

        Only call it between messages, and only when the peer cannot be
        relying on context takeover (or the connection is closing): the next
        message in either direction starts from an empty window.
        """
        self._compressor = None
        self._decompressor = None


@dataclass
class _Params:
    """The permessage-deflate parameters of one offer or response, validated."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    # client_max_window_bits without a value: only valid in an offer, where it
    # means "you may tell me a window size" (section 7.1.2.2).
    client_max_window_bits_bare: bool = False


class _InvalidParams(ValueError):
    pass


def _parse_params(params: ExtensionParams, *, in_offer: bool) -> _Params:
    result = _Params()
    seen: set[str] = set()
    for raw_name, value in params:
        # Parameter names are tokens; compare them case-insensitively like the
        # extension name, since no RFC asks for exact case.
        name = raw_name.lower()
        if name in seen:
            raise _InvalidParams(f"duplicate parameter {raw_name}")
        seen.add(name)
        if name in (_SERVER_NCT, _CLIENT_NCT):
            if value is not None:
                raise _InvalidParams(f"{raw_name} takes no value, got {value!r}")
            if name == _SERVER_NCT:
                result.server_no_context_takeover = True
            else:
                result.client_no_context_takeover = True
        elif name in (_SERVER_MWB, _CLIENT_MWB):
            if value is None:
                if name == _CLIENT_MWB and in_offer:
                    result.client_max_window_bits_bare = True
                    continue
                raise _InvalidParams(f"{raw_name} needs a value")
            bits = _WINDOW_BITS_VALUES.get(value)
            if bits is None:
                raise _InvalidParams(f"invalid {raw_name} value {value!r}")
            if name == _SERVER_MWB:
                result.server_max_window_bits = bits
            else:
                result.client_max_window_bits = bits
        else:
            raise _InvalidParams(f"unknown parameter {raw_name}")
    return result


def _build_params(
    *,
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: int | None,
    client_max_window_bits: int | None,
    bare_client_max_window_bits: bool = False,
) -> ExtensionParams:
    params: ExtensionParams = []
    if server_no_context_takeover:
        params.append((_SERVER_NCT, None))
    if client_no_context_takeover:
        params.append((_CLIENT_NCT, None))
    if server_max_window_bits is not None:
        params.append((_SERVER_MWB, str(server_max_window_bits)))
    if client_max_window_bits is not None:
        params.append((_CLIENT_MWB, str(client_max_window_bits)))
    elif bare_client_max_window_bits:
        params.append((_CLIENT_MWB, None))
    return params


def client_offer(options: DeflateOptions) -> ExtensionOffer:
    """Build the ``permessage-deflate`` element of a client's request.

    ``client_max_window_bits`` is always present, bare when no limit is set
    (as browsers send it), because it costs nothing and lets a server that
    wants to limit our window do so instead of declining.
    """
    return (
        EXTENSION_NAME,
        _build_params(
            server_no_context_takeover=options.server_no_context_takeover,
            client_no_context_takeover=options.client_no_context_takeover,
            server_max_window_bits=options.server_max_window_bits,
            client_max_window_bits=options.client_max_window_bits,
            bare_client_max_window_bits=True,
        ),
    )


def client_accept(
    response: list[ExtensionOffer], options: DeflateOptions
) -> PerMessageDeflate | None:
    """Check the server's ``Sec-WebSocket-Extensions`` against our offer.

    ``response`` is the parsed header (possibly empty) and ``options`` those
    that :func:`client_offer` was given. Returns the client codec, or ``None``
    when the server did not accept compression.

    Raises:
        InvalidResponse: the server answered with something we did not offer
            or that breaks RFC 7692 section 7.1, so the client must fail the
            connection (section 5.1).
    """
    codec: PerMessageDeflate | None = None
    for name, params in response:
        if name.lower() != EXTENSION_NAME:
            raise InvalidResponse(f"server accepted extension {name!r}, which was not offered")
        if codec is not None:
            raise InvalidResponse(f"server accepted {EXTENSION_NAME} twice")
        try:
            agreed = _parse_params(params, in_offer=False)
        except _InvalidParams as exc:
            raise InvalidResponse(f"invalid {EXTENSION_NAME} response: {exc}") from None

        # Section 7.1.1.1: the server may add server_no_context_takeover on
        # its own, but must not drop it when asked.
        if options.server_no_context_takeover and not agreed.server_no_context_takeover:
            raise InvalidResponse(f"server did not accept {_SERVER_NCT}")

        # Section 7.1.2.1: when asked, the server must answer with the same
        # or a smaller window; unasked, it may announce any window.
        asked_server = options.server_max_window_bits
        if asked_server is not None:
            if agreed.server_max_window_bits is None:
                raise InvalidResponse(f"server did not accept {_SERVER_MWB}={asked_server}")
            if agreed.server_max_window_bits > asked_server:
                raise InvalidResponse(
                    f"server answered {_SERVER_MWB}={agreed.server_max_window_bits}, "
                    f"more than the {asked_server} offered"
                )

        # Section 7.1.2.2: our offer always carries client_max_window_bits.
        # With a value, it is our limit even if the server says nothing, and
        # the server may only lower it.
        client_bits = agreed.client_max_window_bits
        limit = options.client_max_window_bits
        if limit is not None:
            if client_bits is None:
                client_bits = limit
            elif client_bits > limit:
                raise InvalidResponse(
                    f"server answered {_CLIENT_MWB}={client_bits}, more than the {limit} offered"
                )

        codec = PerMessageDeflate(
            is_client=True,
            server_no_context_takeover=agreed.server_no_context_takeover,
            # Section 7.1.1.2: offering it is a promise we keep either way.
            client_no_context_takeover=(
                agreed.client_no_context_takeover or options.client_no_context_takeover
            ),
            server_max_window_bits=agreed.server_max_window_bits or 15,
            client_max_window_bits=client_bits or 15,
            compress_level=options.compress_level,
            mem_level=options.mem_level,
            threshold=options.threshold,
        )
    return codec


def _accept_offer(
    offer: _Params, options: DeflateOptions
) -> tuple[ExtensionOffer, PerMessageDeflate]:
    # Section 7.1.1.1: an offered server_no_context_takeover must be honoured;
    # the server may also choose it for itself.
    server_nct = offer.server_no_context_takeover or options.server_no_context_takeover
    # Section 7.1.1.2: echoing an offered client_no_context_takeover is
    # optional, but doing so lets our decoder drop its window between
    # messages, and it is the one way to impose it when configured.
    client_nct = offer.client_no_context_takeover or options.client_no_context_takeover

    # Section 7.1.2.1: answer an offered limit with the same or a smaller
    # window; without one, the server may still announce a limit of its own.
    server_bits = offer.server_max_window_bits
    if options.server_max_window_bits is not None:
        server_bits = min(server_bits or 15, options.server_max_window_bits)

    # Section 7.1.2.2: client_max_window_bits may only appear in the response
    # if the offer had it. An offered value is a promise by the client, which
    # we echo (or lower) so that our inflater can use the smaller window; a
    # bare one lets us pick. Without it we cannot limit the client at all and
    # simply accept its 32 KiB window.
    client_bits: int | None = None
    if offer.client_max_window_bits is not None:
        client_bits = offer.client_max_window_bits
        if options.client_max_window_bits is not None:
            client_bits = min(client_bits, options.client_max_window_bits)
    elif offer.client_max_window_bits_bare:
        client_bits = options.client_max_window_bits

    response = (
        EXTENSION_NAME,
        _build_params(
            server_no_context_takeover=server_nct,
            client_no_context_takeover=client_nct,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
        ),
    )
    codec = PerMessageDeflate(
        is_client=False,
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_max_window_bits=server_bits or 15,
        client_max_window_bits=client_bits or 15,
        compress_level=options.compress_level,
        mem_level=options.mem_level,
        threshold=options.threshold,
    )
    return response, codec


def server_negotiate(
    offers: list[ExtensionOffer], options: DeflateOptions
) -> tuple[ExtensionOffer, PerMessageDeflate] | None:
    """Pick the client's first acceptable ``permessage-deflate`` offer.

    ``offers`` is the parsed ``Sec-WebSocket-Extensions`` request header, in
    the client's order of preference. Returns the element to put in the
    response header and the server codec, or ``None`` to run uncompressed.

    An offer with unknown or repeated parameters or invalid values is
    declined and the next one considered (RFC 7692 section 5.1): that is not
    a reason to refuse the handshake. Every valid offer can be satisfied,
    since a 256-byte window is emulated on top of zlib.
    """
    for name, params in offers:
        if name.lower() != EXTENSION_NAME:
            continue
        try:
            offer = _parse_params(params, in_offer=True)
        except _InvalidParams:
            continue
        return _accept_offer(offer, options)
    return None
