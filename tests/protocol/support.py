"""Helpers of the protocol tests: client and server pairs in memory, frames read back.

Imported by the test modules as ``protocol.support`` (``tests`` is on
``sys.path``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wskit.protocol.connection import Connection, Side
from wskit.protocol.deflate import PerMessageDeflate
from wskit.protocol.events import DataReceived, Event
from wskit.protocol.frames import apply_mask


def deflate_pair(
    *,
    server_no_context_takeover: bool = False,
    client_no_context_takeover: bool = False,
    server_max_window_bits: int = 15,
    client_max_window_bits: int = 15,
    threshold: int = 0,
) -> tuple[PerMessageDeflate, PerMessageDeflate]:
    """The client's and the server's codec for one agreement."""
    codecs = [
        PerMessageDeflate(
            is_client=is_client,
            server_no_context_takeover=server_no_context_takeover,
            client_no_context_takeover=client_no_context_takeover,
            server_max_window_bits=server_max_window_bits,
            client_max_window_bits=client_max_window_bits,
            threshold=threshold,
        )
        for is_client in (True, False)
    ]
    return codecs[0], codecs[1]


def make_pair(
    deflate: dict[str, object] | None = None, **kwargs: object
) -> tuple[Connection, Connection]:
    """A connected ``(client, server)`` pair."""
    if deflate is None:
        return Connection(Side.CLIENT, **kwargs), Connection(Side.SERVER, **kwargs)  # type: ignore[arg-type]
    c, s = deflate_pair(**deflate)  # type: ignore[arg-type]
    return (
        Connection(Side.CLIENT, deflate=c, **kwargs),  # type: ignore[arg-type]
        Connection(Side.SERVER, deflate=s, **kwargs),  # type: ignore[arg-type]
    )


@dataclass
class Frame:
    fin: bool
    rsv1: bool
    rsv23: int
    opcode: int
    masked: bool
    payload: bytes


def parse_frames(data: bytes) -> list[Frame]:
    """A minimal independent frame parser for checking what was sent."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        masked = bool(b1 & 0x80)
        if masked:
            key = data[pos : pos + 4]
            pos += 4
            payload = apply_mask(data[pos : pos + length], key)
        else:
            payload = data[pos : pos + length]
        pos += length
        assert len(payload) == length, "truncated frame"
        frames.append(
            Frame(bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x30, b0 & 0x0F, masked, payload)
        )
    return frames


def reassemble(events: list[Event]) -> list[str | bytes]:
    """Messages from DataReceived events (fragments joined)."""
    messages: list[str | bytes] = []
    parts: list[str | bytes] = []
    for event in events:
        if isinstance(event, DataReceived):
            parts.append(event.data)
            if event.fin:
                first = parts[0]
                joined = "".join(parts) if isinstance(first, str) else b"".join(parts)  # type: ignore[arg-type]
                messages.append(joined)
                parts = []
    assert not parts, "unfinished message"
    return messages
