"""Payloads the conformance tests send: valid UTF-8, random binary, compressible text."""

from __future__ import annotations

import functools
import random

from conformance.rawclient import OP_TEXT

__all__ = ["binary_payload", "compressible", "payload", "text_payload"]


def text_payload(n: int) -> bytes:
    """Valid UTF-8 of exactly ``n`` bytes, with characters of every width."""
    unit = "aκ€😀".encode()  # 1 + 2 + 3 + 4 bytes
    full, rest = divmod(n, len(unit))
    return unit * full + b"z" * rest


@functools.lru_cache(maxsize=64)
def binary_payload(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def payload(opcode: int, n: int) -> bytes:
    return text_payload(n) if opcode == OP_TEXT else binary_payload(n)


_WORDS = [
    bytes(random.Random(i).choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(2 + i % 9))
    for i in range(400)
]


@functools.lru_cache(maxsize=64)
def compressible(n: int, binary: bool = False, seed: int = 0) -> bytes:
    """``n`` bytes that deflate well, with repeats at every distance.

    Over 96 KiB the first 96 KiB repeat: that is beyond any deflate window,
    so it changes nothing for compression and saves generating megabytes.
    """
    if n > 98304:
        base = compressible(98304, binary, seed)
        return (base * (n // len(base) + 1))[:n]
    rnd = random.Random(n * 31 + seed)
    parts: list[bytes] = []
    size = 0
    while size < n:
        word = rnd.choice(_WORDS)
        if binary:
            word = word + bytes([rnd.randrange(256)])
        parts.append(word + b" ")
        size += len(word) + 1
    return b"".join(parts)[:n]
