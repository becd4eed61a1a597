"""Tests for wskit.protocol.deflate (RFC 7692 permessage-deflate)."""

from __future__ import annotations

import itertools
import os
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate as WsDeflate
from websockets.frames import Frame, Opcode

from wskit.exceptions import InvalidResponse, PayloadTooBig, ProtocolError
from wskit.protocol.deflate import (
    DeflateOptions,
    PerMessageDeflate,
    client_accept,
    client_offer,
    compress_once,
    server_negotiate,
)
from wskit.protocol.headers import parse_extension_list, serialize_extension_list

TAIL = b"\x00\x00\xff\xff"
MiB = 1 << 20
WINDOW_BITS = range(8, 16)


def make_pair(
    *,
    snct: bool = False,
    cnct: bool = False,
    sbits: int = 15,
    cbits: int = 15,
    level: int = 6,
    mem_level: int = 8,
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """A client codec and a server codec built from the same agreement."""

    def codec(is_client: bool) -> PerMessageDeflate:
        return PerMessageDeflate(
            is_client=is_client,
            server_no_context_takeover=snct,
            client_no_context_takeover=cnct,
            server_max_window_bits=sbits,
            client_max_window_bits=cbits,
            compress_level=level,
            mem_level=mem_level,
        )

    client, server = codec(True), codec(False)
    return client, server


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (clamped, sorted) into fragments."""
    points = sorted({min(c, len(data)) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def send(
    sender: PerMessageDeflate,
    receiver: PerMessageDeflate,
    data: bytes,
    cuts: list[int] | None = None,
    max_size: int | None = None,
) -> tuple[list[bytes], bytes]:
    """Encode ``data`` as one message, fragmented at ``cuts``, and decode it
    frame by frame the way the connection does (shrinking ``max_length``)."""
    pieces = split(data, cuts or [])
    frames = [sender.encode(p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)]
    out = bytearray()
    for i, frame in enumerate(frames):
        left = None if max_size is None else max_size - len(out)
        out += receiver.decode(frame, fin=i == len(frames) - 1, max_length=left)
    return frames, bytes(out)


def strict_inflate(payload: bytes, window_bits: int) -> bytes:
    """Inflate a message so that zlib checks every distance against the window.

    Output is requested one byte at a time: with a big output buffer zlib's
    fast path copies matches from the bytes it just produced without looking
    at the window size, whereas its byte-at-a-time path refuses any distance
    beyond the ``2**window_bits`` bytes it keeps ("invalid distance too far
    back").
    """
    inflater = zlib.decompressobj(-window_bits)
    out = bytearray()
    data = payload + TAIL
    while True:
        chunk = inflater.decompress(data, 1)
        data = inflater.unconsumed_tail
        if not chunk and not data:
            return bytes(out)
        out += chunk


# Text-like data that compresses, and 200 random bytes repeated at a
# distance of 300: fine for window 9 and up, out of reach for a 256-byte window.
TEXT = b" ".join(b"lorem ipsum dolor sit amet %d consectetur" % (i % 37) for i in range(400))
FAR_REPEATS = os.urandom(300) * 20


# --- options and construction -----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": True},
        {"compress_level": 10},
        {"compress_level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"threshold": -1},
        {"max_decompressed": -1},
    ],
)
def test_options_reject_invalid_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DeflateOptions(**kwargs)  # type: ignore[arg-type]


def test_options_defaults() -> None:
    options = DeflateOptions()
    assert options.server_max_window_bits is None
    assert options.client_max_window_bits is None
    assert (options.compress_level, options.mem_level, options.threshold) == (6, 8, 128)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"compress_level": 11},
        {"mem_level": 0},
    ],
)
def test_codec_rejects_invalid_values(kwargs: dict[str, int]) -> None:
    agreement: dict[str, int | bool] = {
        "server_no_context_takeover": False,
        "client_no_context_takeover": False,
        "server_max_window_bits": 15,
        "client_max_window_bits": 15,
    }
    agreement.update(kwargs)
    with pytest.raises(ValueError):
        PerMessageDeflate(is_client=True, **agreement)  # type: ignore[arg-type]


def test_roles_map_to_local_and_remote() -> None:
    client, server = make_pair(snct=True, cnct=False, sbits=10, cbits=12)
    assert client.local_no_context_takeover is False
    assert client.remote_no_context_takeover is True
    assert (client.local_max_window_bits, client.remote_max_window_bits) == (12, 10)
    assert server.local_no_context_takeover is True
    assert server.remote_no_context_takeover is False
    assert (server.local_max_window_bits, server.remote_max_window_bits) == (10, 12)


def test_should_compress_uses_threshold() -> None:
    codec = PerMessageDeflate(
        is_client=True,
        server_no_context_takeover=False,
        client_no_context_takeover=False,
        server_max_window_bits=15,
        client_max_window_bits=15,
        threshold=100,
    )
    assert not codec.should_compress(0)
    assert not codec.should_compress(99)
    assert codec.should_compress(100)
    assert codec.should_compress(10_000)


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits", WINDOW_BITS)
@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_round_trip_both_ways_every_window(bits: int, no_context_takeover: bool) -> None:
    client, server = make_pair(
        snct=no_context_takeover, cnct=no_context_takeover, sbits=bits, cbits=bits
    )
    messages = [TEXT, b"", FAR_REPEATS, TEXT[:100], os.urandom(5000), TEXT, b"x"]
    for _ in range(3):
        for message in messages:
            assert send(client, server, message)[1] == message
            assert send(server, client, message)[1] == message


@pytest.mark.parametrize("bits", WINDOW_BITS)
def test_context_takeover_shrinks_repeated_message(bits: int) -> None:
    # 200 random bytes do not compress on their own, but the second copy can
    # refer to the first one when the window keeps it (any window >= 512).
    message = os.urandom(200)
    for sender, receiver in zip(
        make_pair(sbits=bits, cbits=bits), reversed(make_pair(sbits=bits, cbits=bits)), strict=True
    ):
        first, _ = send(sender, receiver, message)
        second, decoded = send(sender, receiver, message)
        assert decoded == message
        if bits == 8:
            # The window-8 emulation never keeps context: same bytes again.
            assert second == first
        else:
            assert len(second[0]) < 20 < len(first[0])


@pytest.mark.parametrize("bits", WINDOW_BITS)
def test_no_context_takeover_repeats_output(bits: int) -> None:
    client, server = make_pair(snct=True, cnct=True, sbits=bits, cbits=bits)
    message = TEXT[:700]
    first, _ = send(client, server, message)
    second, decoded = send(client, server, message)
    assert decoded == message
    assert second == first


def test_context_takeover_in_one_direction_only() -> None:
    # Server resets, client keeps its context: each side must apply the
    # right rule to the right direction.
    client, server = make_pair(snct=True, cnct=False)
    message = os.urandom(300)
    c1, _ = send(client, server, message)
    c2, _ = send(client, server, message)
    s1, _ = send(server, client, message)
    s2, _ = send(server, client, message)
    assert len(c2[0]) < len(c1[0]) / 4
    assert s2 == s1


def test_empty_messages() -> None:
    client, server = make_pair()
    frames, decoded = send(client, server, b"")
    assert decoded == b""
    # RFC 7692 section 7.2.3.6: an empty message still carries one block.
    assert frames == [b"\x00"]
    assert send(client, server, TEXT)[1] == TEXT
    # Empty fragments in the middle of a message.
    pieces = [
        client.encode(b"", fin=False),
        client.encode(TEXT, fin=False),
        client.encode(b"", fin=True),
    ]
    out = b"".join(server.decode(p, fin=i == 2, max_length=None) for i, p in enumerate(pieces))
    assert out == TEXT


def test_fragmented_encode_decoded_frame_by_frame() -> None:
    client, server = make_pair()
    message = TEXT * 3
    pieces = split(message, [10, 1000, 1001, 5000, 9000])
    frames = [client.encode(p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)]
    # Every non-final frame is flushed: it inflates to exactly its own input
    # as soon as it arrives, without waiting for the rest of the message.
    for i, (piece, frame) in enumerate(zip(pieces, frames, strict=True)):
        fin = i == len(frames) - 1
        if not fin:
            assert frame.endswith(TAIL)
        assert server.decode(frame, fin=fin, max_length=None) == piece
    assert not frames[-1].endswith(TAIL)


@settings(deadline=None)
@given(
    messages=st.lists(
        st.binary(max_size=3000) | st.text(max_size=1000).map(str.encode), max_size=6
    ),
    cuts=st.lists(st.integers(0, 3000), max_size=4),
    bits=st.tuples(st.integers(8, 15), st.integers(8, 15)),
    nct=st.tuples(st.booleans(), st.booleans()),
    level=st.integers(-1, 9),
    mem_level=st.integers(1, 9),
)
def test_round_trip_property(
    messages: list[bytes],
    cuts: list[int],
    bits: tuple[int, int],
    nct: tuple[bool, bool],
    level: int,
    mem_level: int,
) -> None:
    client, server = make_pair(
        snct=nct[0], cnct=nct[1], sbits=bits[0], cbits=bits[1], level=level, mem_level=mem_level
    )
    for message in messages:
        assert send(client, server, message, cuts)[1] == message
        assert send(server, client, message, cuts, max_size=len(message))[1] == message


# --- the 256-byte window ------------------------------------------------------------------


def test_strict_inflate_catches_long_distances() -> None:
    # The check below must be able to fail: a 1 KiB-window stream reuses the
    # data 300 bytes back, which a 256-byte inflater must refuse.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -10)
    too_far = compressor.compress(FAR_REPEATS) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert strict_inflate(too_far[:-4], 10) == FAR_REPEATS
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(too_far[:-4], 8)


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_window_8_output_decodes_with_strict_window_8(no_context_takeover: bool) -> None:
    client, server = make_pair(snct=no_context_takeover, sbits=8)
    assert server.local_max_window_bits == 8
    for message in (FAR_REPEATS, TEXT, bytes(5000), FAR_REPEATS):
        payload = server.encode(message, fin=True)
        assert strict_inflate(payload, 8) == message
        assert client.decode(payload, fin=True, max_length=None) == message


@settings(deadline=None, max_examples=50)
@given(
    chunk=st.binary(min_size=1, max_size=400),
    repeat=st.integers(1, 8),
    cuts=st.lists(st.integers(0, 3200), max_size=3),
)
def test_window_8_property(chunk: bytes, repeat: int, cuts: list[int]) -> None:
    _, server = make_pair(sbits=8)
    message = chunk * repeat
    pieces = split(message, cuts)
    frames = [server.encode(p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)]
    assert strict_inflate(b"".join(frames), 8) == message
    assert compress_once(message, window_bits=8, level=6, mem_level=8) == server.encode(
        message, fin=True
    )


# --- limits and corrupt input ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 100 KB that inflate to 100 MiB of zeros (deflate tops out near 1:1032)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(100)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


@pytest.mark.usefixtures("traced")
def test_tracemalloc_sees_zlib_output() -> None:
    # Control for the bomb test: without a limit the output is allocated and
    # measured, so a low peak there really means nothing big was allocated.
    _, server = make_pair()
    payload = compress_once(bytes(16 * MiB), window_bits=15, level=9, mem_level=8)
    tracemalloc.reset_peak()
    assert len(server.decode(payload, fin=True, max_length=None)) == 16 * MiB
    assert tracemalloc.get_traced_memory()[1] > 16 * MiB


@pytest.mark.usefixtures("traced")
def test_decompression_bomb_single_frame(bomb: bytes) -> None:
    assert len(bomb) < 128 * 1024
    _, server = make_pair()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    with pytest.raises(PayloadTooBig) as excinfo:
        server.decode(bomb, fin=True, max_length=MiB)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    assert excinfo.value.code == 1009
    assert elapsed < 1.0
    assert peak < 4 * MiB


@pytest.mark.usefixtures("traced")
def test_decompression_bomb_fragmented(bomb: bytes) -> None:
    _, server = make_pair()
    tracemalloc.reset_peak()
    total = 0
    with pytest.raises(PayloadTooBig):
        for start in range(0, len(bomb), 4096):
            frame = bomb[start : start + 4096]
            fin = start + 4096 >= len(bomb)
            total += len(server.decode(frame, fin=fin, max_length=MiB - total))
    assert total <= MiB
    assert tracemalloc.get_traced_memory()[1] < 4 * MiB


@pytest.mark.parametrize("size", [0, 1, 1000, 100_000])
def test_max_length_is_inclusive(size: int) -> None:
    client, server = make_pair()
    message = os.urandom(size // 2) + bytes(size - size // 2)
    payload = client.encode(message, fin=True)
    assert server.decode(payload, fin=True, max_length=size) == message
    client, server = make_pair()
    payload = client.encode(message + b"!", fin=True)
    with pytest.raises(PayloadTooBig):
        server.decode(payload, fin=True, max_length=size)


def test_negative_max_length_counts_as_zero() -> None:
    client, server = make_pair()
    assert server.decode(client.encode(b"", fin=True), fin=True, max_length=-5) == b""
    with pytest.raises(PayloadTooBig):
        server.decode(client.encode(b"x", fin=True), fin=True, max_length=-5)


def test_buffer_types_accepted() -> None:
    # No context takeover, so every round compresses the same way.
    client, server = make_pair(snct=True, cnct=True)
    noise = os.urandom(5000)  # big enough for the separate-tail path
    for wrap in (bytes, bytearray, memoryview):
        payload = client.encode(wrap(TEXT), fin=True)
        assert server.decode(wrap(payload), fin=True, max_length=None) == TEXT
        big = client.encode(wrap(noise), fin=True)
        assert len(big) > 2048
        assert server.decode(wrap(big), fin=True, max_length=None) == noise


def test_max_length_on_large_final_frame() -> None:
    # Above the size where the tail is inflated by a second zlib call.
    client, server = make_pair()
    message = os.urandom(5000)
    payload = client.encode(message, fin=True)
    assert len(payload) > 2048
    assert server.decode(payload, fin=True, max_length=5000) == message
    client, server = make_pair()
    with pytest.raises(PayloadTooBig):
        server.decode(client.encode(message, fin=True), fin=True, max_length=4999)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # reserved block type 3
        b"\x07\x00",  # fixed-Huffman block with an invalid code
        b"\x00\x05\x00\x00\x00",  # stored block whose LEN and NLEN disagree
        b"\x04\xc0\x81\x08\x00\x00",  # dynamic block with a broken code table
    ],
)
def test_corrupt_data_raises_protocol_error(payload: bytes) -> None:
    _, server = make_pair()
    with pytest.raises(ProtocolError) as excinfo:
        server.decode(payload, fin=True, max_length=MiB)
    assert not isinstance(excinfo.value, PayloadTooBig)
    assert excinfo.value.code == 1002


def test_corrupt_data_raises_with_large_frame() -> None:
    _, server = make_pair()
    with pytest.raises(ProtocolError):
        server.decode(b"\xff" * 5000, fin=True, max_length=None)


@settings(deadline=None)
@given(payload=st.binary(max_size=200), fin=st.booleans(), limit=st.none() | st.integers(0, 1000))
def test_garbage_only_raises_protocol_error(payload: bytes, fin: bool, limit: int | None) -> None:
    _, server = make_pair()
    try:
        out = server.decode(payload, fin=fin, max_length=limit)
    except ProtocolError:
        return
    assert limit is None or len(out) <= limit


def test_bfinal_block_is_accepted_and_resets_context() -> None:
    # RFC 7692 section 7.2.3.4: a sender may end a message with BFINAL set;
    # its next message then starts a new deflate stream.
    _, server = make_pair()
    for message in (TEXT, TEXT):
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = compressor.compress(message) + compressor.flush(zlib.Z_FINISH)
        assert server.decode(payload, fin=True, max_length=None) == message


def test_data_after_bfinal_block_is_rejected() -> None:
    _, server = make_pair()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(TEXT) + compressor.flush(zlib.Z_FINISH)
    assert server.decode(payload, fin=False, max_length=None) == TEXT
    with pytest.raises(ProtocolError, match="after the end"):
        server.decode(b"\x4a\x04\x00", fin=True, max_length=None)


def test_decoder_recovers_state_after_error() -> None:
    # After a failure the half-used inflater is dropped (the connection is
    # failing anyway), so a later decode does not trip over stale state.
    client, server = make_pair(cnct=True)
    with pytest.raises(ProtocolError):
        server.decode(b"\xff\xff", fin=True, max_length=None)
    assert server.decode(client.encode(TEXT, fin=True), fin=True, max_length=None) == TEXT


# --- memory: lazy zlib objects -------------------------------------------------------------


def zlib_state(codec: PerMessageDeflate) -> tuple[bool, bool]:
    """Whether the codec holds a compressor and a decompressor right now."""
    return codec._compressor is not None, codec._decompressor is not None


def test_zlib_objects_are_created_lazily_and_dropped() -> None:
    client, server = make_pair(snct=True, cnct=False)
    assert zlib_state(client) == zlib_state(server) == (False, False)

    send(client, server, TEXT)
    # The client keeps its compressor (context takeover); the server, told
    # the client keeps context, keeps its decompressor.
    assert zlib_state(client) == (True, False)
    assert zlib_state(server) == (False, True)
    send(server, client, TEXT)
    # The server resets after each message and the client knows it.
    assert zlib_state(client) == (True, False)
    assert zlib_state(server) == (False, True)

    # Mid-message state survives until the final frame.
    server.encode(TEXT, fin=False)
    assert zlib_state(server) == (True, True)
    server.encode(b"", fin=True)
    assert zlib_state(server) == (False, True)

    client.reset()
    server.reset()
    assert zlib_state(client) == zlib_state(server) == (False, False)


# --- compress_once and shared_key ------------------------------------------------------------


@settings(deadline=None)
@given(
    data=st.binary(max_size=5000) | st.sampled_from([TEXT, FAR_REPEATS, b""]),
    bits=st.integers(8, 15),
    level=st.integers(-1, 9),
    mem_level=st.integers(1, 9),
)
def test_compress_once_matches_encode(data: bytes, bits: int, level: int, mem_level: int) -> None:
    client, server = make_pair(
        snct=True, cnct=True, sbits=bits, cbits=bits, level=level, mem_level=mem_level
    )
    once = compress_once(data, window_bits=bits, level=level, mem_level=mem_level)
    # Also after other traffic: the codec must not leak state into the next message.
    client.encode(TEXT, fin=True)
    assert client.encode(data, fin=True) == once
    assert server.encode(data, fin=True) == once
    assert server.decode(once, fin=True, max_length=None) == data


def test_compress_once_validates_arguments() -> None:
    with pytest.raises(ValueError):
        compress_once(b"x", window_bits=7, level=6, mem_level=8)
    with pytest.raises(ValueError):
        compress_once(b"x", window_bits=15, level=6, mem_level=10)


def test_shared_key() -> None:
    client, server = make_pair(snct=True, cnct=False, sbits=12, level=3, mem_level=5)
    assert server.shared_key == (12, 3, 5)
    assert client.shared_key is None
    # Window 8 never keeps context, so it can always share.
    _, server8 = make_pair(snct=False, sbits=8)
    assert server8.shared_key == (8, 6, 8)
    # Equal keys mean equal bytes.
    _, other = make_pair(snct=True, sbits=12, level=3, mem_level=5)
    assert other.shared_key == server.shared_key
    assert other.encode(TEXT, fin=True) == server.encode(TEXT, fin=True)
    key = server.shared_key
    assert key is not None
    assert compress_once(TEXT, window_bits=key[0], level=key[1], mem_level=key[2]) == (
        server.encode(TEXT, fin=True)
    )
    hash(server.shared_key)


# --- interoperability with the websockets library --------------------------------------------


def ws_pair_for(ours: PerMessageDeflate) -> WsDeflate:
    """A websockets codec for the peer of ``ours``."""
    return WsDeflate(
        remote_no_context_takeover=ours.local_no_context_takeover,
        local_no_context_takeover=ours.remote_no_context_takeover,
        remote_max_window_bits=ours.local_max_window_bits,
        local_max_window_bits=ours.remote_max_window_bits,
    )


def ws_encode(ws: WsDeflate, pieces: list[bytes]) -> list[bytes]:
    frames = []
    for i, piece in enumerate(pieces):
        opcode = Opcode.BINARY if i == 0 else Opcode.CONT
        frame = ws.encode(Frame(opcode, piece, fin=i == len(pieces) - 1))
        assert frame.rsv1 == (i == 0)
        frames.append(bytes(frame.data))
    return frames


def ws_decode(ws: WsDeflate, frames: list[bytes], max_size: int | None = None) -> bytes:
    out = b""
    for i, payload in enumerate(frames):
        opcode = Opcode.BINARY if i == 0 else Opcode.CONT
        frame = Frame(opcode, payload, fin=i == len(frames) - 1, rsv1=i == 0)
        out += bytes(ws.decode(frame, max_size=max_size).data)
    return out


@settings(deadline=None, max_examples=60)
@given(
    messages=st.lists(
        st.binary(max_size=2000) | st.sampled_from([TEXT, FAR_REPEATS]), min_size=1, max_size=5
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=3),
    is_client=st.booleans(),
    nct=st.tuples(st.booleans(), st.booleans()),
    # websockets cannot compress with a window of 8, so its side stays >= 9.
    local_bits=st.integers(8, 15),
    remote_bits=st.integers(9, 15),
)
def test_interop_with_websockets(
    messages: list[bytes],
    cuts: list[int],
    is_client: bool,
    nct: tuple[bool, bool],
    local_bits: int,
    remote_bits: int,
) -> None:
    if is_client:
        kwargs = {"client_max_window_bits": local_bits, "server_max_window_bits": remote_bits}
    else:
        kwargs = {"server_max_window_bits": local_bits, "client_max_window_bits": remote_bits}
    ours = PerMessageDeflate(
        is_client=is_client,
        server_no_context_takeover=nct[0],
        client_no_context_takeover=nct[1],
        **kwargs,
    )
    theirs = ws_pair_for(ours)
    for message in messages:
        pieces = split(message, cuts)
        # ours -> websockets
        frames = [ours.encode(p, fin=i == len(pieces) - 1) for i, p in enumerate(pieces)]
        assert ws_decode(theirs, frames) == message
        # websockets -> ours
        frames = ws_encode(theirs, pieces)
        out = b"".join(
            ours.decode(f, fin=i == len(frames) - 1, max_length=len(message))
            for i, f in enumerate(frames)
        )
        assert out == message


def test_interop_context_takeover_with_websockets() -> None:
    # Context carried over several messages in both directions must stay in step.
    ours, _ = make_pair()
    theirs = ws_pair_for(ours)
    for message in [TEXT, TEXT, FAR_REPEATS, TEXT[:500], TEXT]:
        assert ws_decode(theirs, [ours.encode(message, fin=True)]) == message
        (payload,) = ws_encode(theirs, [message])
        assert ours.decode(payload, fin=True, max_length=None) == message
    # ... and the context really was carried over.
    fresh = compress_once(TEXT, window_bits=15, level=6, mem_level=8)
    assert len(ours.encode(TEXT, fin=True)) < len(fresh) / 2


def test_websockets_bomb_limit_agrees() -> None:
    # Same limit semantics as the independent implementation.
    payload = compress_once(bytes(10_000), window_bits=15, level=9, mem_level=8)
    ours, _ = make_pair()
    theirs = ws_pair_for(ours)
    assert ours.decode(payload, fin=True, max_length=10_000) == bytes(10_000)
    assert ws_decode(theirs, [payload], max_size=10_000) == bytes(10_000)


# --- negotiation: server side ---------------------------------------------------------------

CHROMIUM = "permessage-deflate; client_max_window_bits"  # also Node ws and websockets
FIREFOX = "permessage-deflate"  # also Safari
OLD_CHROME = "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"
EVERYTHING = (
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
    "server_max_window_bits=10; client_max_window_bits=12"
)

SERVER_CASES: list[tuple[str, str, DeflateOptions, str | None]] = [
    ("chromium", CHROMIUM, DeflateOptions(), "permessage-deflate"),
    (
        "chromium, client window limited",
        CHROMIUM,
        DeflateOptions(client_max_window_bits=10),
        "permessage-deflate; client_max_window_bits=10",
    ),
    ("firefox", FIREFOX, DeflateOptions(), "permessage-deflate"),
    # RFC 7692 section 7.1.2.2: cannot answer client_max_window_bits unasked.
    (
        "firefox, client window wanted",
        FIREFOX,
        DeflateOptions(client_max_window_bits=10),
        "permessage-deflate",
    ),
    ("old chrome", OLD_CHROME, DeflateOptions(), "permessage-deflate"),
    (
        "node ws with context takeover off",
        "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        DeflateOptions(),
        "permessage-deflate; server_no_context_takeover",
    ),
    (
        "every parameter echoed",
        EVERYTHING,
        DeflateOptions(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=12",
    ),
    (
        "every parameter, server lowers both windows",
        EVERYTHING,
        DeflateOptions(server_max_window_bits=9, client_max_window_bits=11),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=11",
    ),
    (
        "server limits larger than offered",
        EVERYTHING,
        DeflateOptions(server_max_window_bits=14, client_max_window_bits=14),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=12",
    ),
    (
        "server window announced unasked",
        FIREFOX,
        DeflateOptions(server_max_window_bits=12),
        "permessage-deflate; server_max_window_bits=12",
    ),
    (
        "server imposes no context takeover both ways",
        CHROMIUM,
        DeflateOptions(server_no_context_takeover=True, client_no_context_takeover=True),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ),
    (
        "window 8 requested of the server",
        "permessage-deflate; server_max_window_bits=8",
        DeflateOptions(),
        "permessage-deflate; server_max_window_bits=8",
    ),
    (
        "window 8 for the client",
        CHROMIUM,
        DeflateOptions(client_max_window_bits=8),
        "permessage-deflate; client_max_window_bits=8",
    ),
    (
        "quoted value",
        'permessage-deflate; client_max_window_bits="10"',
        DeflateOptions(),
        "permessage-deflate; client_max_window_bits=10",
    ),
    (
        "names are case-insensitive",
        "Permessage-Deflate; Server_No_Context_Takeover",
        DeflateOptions(),
        "permessage-deflate; server_no_context_takeover",
    ),
    ("no offers", "", DeflateOptions(), None),
    ("other extension only", "x-webkit-deflate-frame", DeflateOptions(), None),
    # Invalid offers are declined (RFC 7692 section 5.1), not handshake errors.
    ("window 7", "permessage-deflate; client_max_window_bits=7", DeflateOptions(), None),
    ("window 16", "permessage-deflate; client_max_window_bits=16", DeflateOptions(), None),
    ("window abc", "permessage-deflate; server_max_window_bits=abc", DeflateOptions(), None),
    ("leading zero", "permessage-deflate; server_max_window_bits=09", DeflateOptions(), None),
    ("bare server window", "permessage-deflate; server_max_window_bits", DeflateOptions(), None),
    ("value on flag", "permessage-deflate; server_no_context_takeover=1", DeflateOptions(), None),
    (
        "value on client flag",
        'permessage-deflate; client_no_context_takeover="x"',
        DeflateOptions(),
        None,
    ),
    ("unknown parameter", "permessage-deflate; foo", DeflateOptions(), None),
    (
        "duplicate flag",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        DeflateOptions(),
        None,
    ),
    (
        "duplicate window, bare and valued",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        DeflateOptions(),
        None,
    ),
    (
        "first offer invalid, second accepted",
        "permessage-deflate; client_max_window_bits=16, "
        "permessage-deflate; client_max_window_bits=10",
        DeflateOptions(),
        "permessage-deflate; client_max_window_bits=10",
    ),
    (
        "first valid offer wins",
        "permessage-deflate; server_max_window_bits=10, permessage-deflate",
        DeflateOptions(),
        "permessage-deflate; server_max_window_bits=10",
    ),
    (
        "other extension first",
        "x-webkit-deflate-frame; no_context_takeover, permessage-deflate",
        DeflateOptions(),
        "permessage-deflate",
    ),
    (
        "every offer invalid",
        "permessage-deflate; foo, permessage-deflate; server_max_window_bits=1",
        DeflateOptions(),
        None,
    ),
]


@pytest.mark.parametrize(
    ("header", "options", "expected"),
    [case[1:] for case in SERVER_CASES],
    ids=[case[0] for case in SERVER_CASES],
)
def test_server_negotiate(header: str, options: DeflateOptions, expected: str | None) -> None:
    result = server_negotiate(parse_extension_list(header), options)
    if expected is None:
        assert result is None
        return
    assert result is not None
    response, codec = result
    assert serialize_extension_list([response]) == expected
    assert codec.is_client is False
    # The codec follows exactly what the response says.
    agreed = dict(response[1])
    assert codec.local_no_context_takeover == ("server_no_context_takeover" in agreed)
    assert codec.remote_no_context_takeover == ("client_no_context_takeover" in agreed)
    assert codec.local_max_window_bits == int(agreed.get("server_max_window_bits") or 15)
    assert codec.remote_max_window_bits == int(agreed.get("client_max_window_bits") or 15)


def test_server_codec_uses_option_settings() -> None:
    options = DeflateOptions(compress_level=1, mem_level=4, threshold=7)
    result = server_negotiate(parse_extension_list(FIREFOX), options)
    assert result is not None
    codec = result[1]
    assert (codec.compress_level, codec.mem_level, codec.threshold) == (1, 4, 7)


# --- negotiation: client side ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (DeflateOptions(), "permessage-deflate; client_max_window_bits"),
        (
            DeflateOptions(client_max_window_bits=10),
            "permessage-deflate; client_max_window_bits=10",
        ),
        (
            DeflateOptions(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=9,
                client_max_window_bits=8,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=8",
        ),
    ],
)
def test_client_offer(options: DeflateOptions, expected: str) -> None:
    offer = client_offer(options)
    assert serialize_extension_list([offer]) == expected
    # What we send must be something we would accept ourselves.
    assert server_negotiate(parse_extension_list(expected), DeflateOptions()) is not None


CLIENT_ACCEPT_CASES: list[tuple[str, DeflateOptions, str, tuple[bool, bool, int, int] | None]] = [
    # (id, options, response header, (local nct, remote nct, local bits, remote bits))
    ("declined", DeflateOptions(), "", None),
    ("plain", DeflateOptions(), "permessage-deflate", (False, False, 15, 15)),
    (
        "server resets",
        DeflateOptions(),
        "permessage-deflate; server_no_context_takeover",
        (False, True, 15, 15),
    ),
    (
        "client told to reset",
        DeflateOptions(),
        "permessage-deflate; client_no_context_takeover",
        (True, False, 15, 15),
    ),
    (
        "client window set by server",
        DeflateOptions(),
        "permessage-deflate; client_max_window_bits=9",
        (False, False, 9, 15),
    ),
    (
        "client window 8",
        DeflateOptions(),
        "permessage-deflate; client_max_window_bits=8",
        (False, False, 8, 15),
    ),
    (
        "server window announced unasked",
        DeflateOptions(),
        "permessage-deflate; server_max_window_bits=10",
        (False, False, 15, 10),
    ),
    (
        "our limit applies when not echoed",
        DeflateOptions(client_max_window_bits=10),
        "permessage-deflate",
        (False, False, 10, 15),
    ),
    (
        "server lowers our limit",
        DeflateOptions(client_max_window_bits=10),
        "permessage-deflate; client_max_window_bits=9",
        (False, False, 9, 15),
    ),
    (
        "server window as asked",
        DeflateOptions(server_max_window_bits=10),
        "permessage-deflate; server_max_window_bits=10",
        (False, False, 15, 10),
    ),
    (
        "server window smaller than asked",
        DeflateOptions(server_max_window_bits=10),
        "permessage-deflate; server_max_window_bits=8",
        (False, False, 15, 8),
    ),
    (
        "server reset as asked",
        DeflateOptions(server_no_context_takeover=True),
        "permessage-deflate; server_no_context_takeover",
        (False, True, 15, 15),
    ),
    (
        "our own reset kept when not echoed",
        DeflateOptions(client_no_context_takeover=True),
        "permessage-deflate",
        (True, False, 15, 15),
    ),
    (
        "everything",
        DeflateOptions(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=12,
            client_max_window_bits=11,
        ),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=11",
        (True, True, 11, 12),
    ),
    (
        "case-insensitive names",
        DeflateOptions(),
        "PerMessage-Deflate; Client_Max_Window_Bits=12",
        (False, False, 12, 15),
    ),
]


@pytest.mark.parametrize(
    ("options", "header", "expected"),
    [case[1:] for case in CLIENT_ACCEPT_CASES],
    ids=[case[0] for case in CLIENT_ACCEPT_CASES],
)
def test_client_accept(
    options: DeflateOptions, header: str, expected: tuple[bool, bool, int, int] | None
) -> None:
    codec = client_accept(parse_extension_list(header), options)
    if expected is None:
        assert codec is None
        return
    assert codec is not None
    assert codec.is_client is True
    assert (
        codec.local_no_context_takeover,
        codec.remote_no_context_takeover,
        codec.local_max_window_bits,
        codec.remote_max_window_bits,
    ) == expected


CLIENT_REJECT_CASES: list[tuple[str, DeflateOptions, str]] = [
    ("extension not offered", DeflateOptions(), "x-webkit-deflate-frame"),
    ("not offered after ours", DeflateOptions(), "permessage-deflate, foo"),
    ("accepted twice", DeflateOptions(), "permessage-deflate, permessage-deflate"),
    ("unknown parameter", DeflateOptions(), "permessage-deflate; foo"),
    ("unknown parameter with value", DeflateOptions(), "permessage-deflate; foo=1"),
    (
        "duplicate parameter",
        DeflateOptions(),
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ),
    (
        "duplicate window",
        DeflateOptions(),
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
    ),
    ("bare client window", DeflateOptions(), "permessage-deflate; client_max_window_bits"),
    ("bare server window", DeflateOptions(), "permessage-deflate; server_max_window_bits"),
    ("client window 7", DeflateOptions(), "permessage-deflate; client_max_window_bits=7"),
    ("client window 16", DeflateOptions(), "permessage-deflate; client_max_window_bits=16"),
    ("server window 16", DeflateOptions(), "permessage-deflate; server_max_window_bits=16"),
    ("server window abc", DeflateOptions(), "permessage-deflate; server_max_window_bits=abc"),
    ("value on flag", DeflateOptions(), "permessage-deflate; client_no_context_takeover=yes"),
    (
        "client window larger than offered",
        DeflateOptions(client_max_window_bits=10),
        "permessage-deflate; client_max_window_bits=11",
    ),
    (
        "server reset not honoured",
        DeflateOptions(server_no_context_takeover=True),
        "permessage-deflate",
    ),
    (
        "server window larger than asked",
        DeflateOptions(server_max_window_bits=10),
        "permessage-deflate; server_max_window_bits=11",
    ),
    (
        "server window not acknowledged",
        DeflateOptions(server_max_window_bits=10),
        "permessage-deflate",
    ),
]


@pytest.mark.parametrize(
    ("options", "header"),
    [case[1:] for case in CLIENT_REJECT_CASES],
    ids=[case[0] for case in CLIENT_REJECT_CASES],
)
def test_client_accept_rejects(options: DeflateOptions, header: str) -> None:
    with pytest.raises(InvalidResponse):
        client_accept(parse_extension_list(header), options)


# --- whole handshake ----------------------------------------------------------------------------

options_strategy = st.builds(
    DeflateOptions,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(8, 15),
    client_max_window_bits=st.none() | st.integers(8, 15),
)


@settings(deadline=None)
@given(client_options=options_strategy, server_options=options_strategy)
def test_offer_negotiate_accept(
    client_options: DeflateOptions, server_options: DeflateOptions
) -> None:
    header = serialize_extension_list([client_offer(client_options)])
    result = server_negotiate(parse_extension_list(header), server_options)
    assert result is not None  # every offer we make is acceptable
    response, server = result
    client = client_accept(
        parse_extension_list(serialize_extension_list([response])), client_options
    )
    assert client is not None
    # Both ends agree on every direction.
    assert client.local_no_context_takeover == server.remote_no_context_takeover
    assert client.remote_no_context_takeover == server.local_no_context_takeover
    assert client.local_max_window_bits == server.remote_max_window_bits
    assert client.remote_max_window_bits == server.local_max_window_bits
    # Each side got at least what it asked for.
    for options in (client_options, server_options):
        assert server.local_no_context_takeover >= options.server_no_context_takeover
        assert server.local_max_window_bits <= (options.server_max_window_bits or 15)
    for options in (client_options, server_options):
        assert client.local_no_context_takeover >= options.client_no_context_takeover
        assert client.local_max_window_bits <= (options.client_max_window_bits or 15)
    for message in (TEXT, FAR_REPEATS, TEXT):
        assert send(client, server, message)[1] == message
        assert send(server, client, message)[1] == message
