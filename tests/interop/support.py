"""Helpers for the interop tests: payloads and Node.js peer processes.

Imported by the test modules as ``interop.support`` (``tests`` is on
``sys.path``); the ``node_peer`` fixture is re-exported by ``conftest.py``.

Node peers live in ``tests/peers/*.mjs``. They talk to the test over stdio
with one JSON object per line: the test writes commands to stdin, the peer
prints events (``open``, ``message``, ``ping``, ``close``...) to stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, overload

import pytest

import wskit
from conftest import NodeRuntime

PEERS = Path(__file__).resolve().parent.parent / "peers"

MIB = 2**20

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# 64 KiB of bytes with a long period; tests/peers/*.mjs build the same block.
_BLOCK = bytes(((i * 7) + (i >> 8)) & 0xFF for i in range(65536))
_TEXT_BLOCK = bytes(_ALPHABET[b & 63] for b in _BLOCK).decode("ascii")


@overload
def pattern(size: int, *, binary: Literal[True]) -> bytes: ...
@overload
def pattern(size: int, *, binary: Literal[False]) -> str: ...
def pattern(size: int, *, binary: bool) -> bytes | str:
    """The deterministic payload the node peers send for ``sendPattern``."""
    repeats = size // len(_BLOCK) + 1
    if binary:
        return (_BLOCK * repeats)[:size]
    return (_TEXT_BLOCK * repeats)[:size]


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class NodePeer:
    """A running ``tests/peers/*.mjs`` script, driven by JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.seen: list[dict[str, Any]] = []
        self._buffer: list[dict[str, Any]] = []

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            stderr = await self.stderr()
            raise AssertionError(f"{self.name} exited early; stderr:\n{stderr}")
        event: dict[str, Any] = json.loads(line)
        self.seen.append(event)
        return event

    async def event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """Return the next event named ``kind``; other events are kept for later."""
        for i, event in enumerate(self._buffer):
            if event["event"] == kind:
                del self._buffer[i]
                return event
        while True:
            event = await self._read(timeout)
            if event["event"] == kind:
                return event
            if event["event"] == "error":
                raise AssertionError(f"{self.name} reported an error: {event}")
            self._buffer.append(event)

    def send(self, op: str, **fields: Any) -> None:
        """Write one command to the peer's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())

    async def stderr(self) -> str:
        if self.proc.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            return (await asyncio.wait_for(self.proc.stderr.read(), 2)).decode(errors="replace")
        return ""

    async def wait(self, timeout: float = 10.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


NodePeerFactory = Callable[..., Awaitable[NodePeer]]


@pytest.fixture
async def node_peer(node: NodeRuntime) -> AsyncIterator[NodePeerFactory]:
    """Start ``tests/peers/<script>`` with arguments; killed at teardown."""
    started: list[NodePeer] = []

    async def start(script: str, *args: str) -> NodePeer:
        proc = await asyncio.create_subprocess_exec(
            *node.command(PEERS / script, *args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**22,
            **node.subprocess_kwargs(),
        )
        peer = NodePeer(proc, script)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop()


class _ConnCounter:
    """``counter[0]``: the bytes a wskit ``Conn`` received since the counter was made."""

    def __init__(self, conn: wskit.Conn) -> None:
        self.conn = conn
        self.start = conn.bytes_received

    def __getitem__(self, index: int) -> int:
        assert index == 0
        return self.conn.bytes_received - self.start


def count_bytes_received(obj: Any, method: str = "data_received") -> list[int]:
    """Count the raw bytes an object's ``method`` is fed from now on.

    Works on a wskit ``Conn`` (its ``bytes_received``) and on the sans-I/O
    protocol of a ``websockets`` connection (``receive_data``). Returns a
    one-item list holding the running total.
    """
    if isinstance(obj, wskit.Conn):
        return _ConnCounter(obj)  # type: ignore[return-value]
    total = [0]
    original = getattr(obj, method)

    def counting(data: bytes) -> Any:
        total[0] += len(data)
        return original(data)

    setattr(obj, method, counting)
    return total
