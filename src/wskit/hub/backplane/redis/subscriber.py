"""The subscriber connection of the Redis backplane: a bare RESP2 client in subscribe mode.

One connection per backplane, opened by the receiver's loop
(:mod:`~.receiver`), which alone reads it; any part may write to it
(``SUBSCRIBE``, ``UNSUBSCRIBE``, ``PING``). It is kept as it was before
the backplane became a package: a later change replaces it with redis-py's
own PubSub, so it is left whole here rather than reshaped.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["RespError", "Subscriber"]


class RespError(Exception):
    """An error reply on the subscriber connection."""


class Subscriber:
    """A bare RESP2 connection in subscribe mode (read by one task, written by any)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, host: str, port: int, username: str | None, password: str | None, timeout: float
    ) -> Subscriber:
        """Connect (and ``AUTH`` when there is a password), each step within ``timeout``."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        conn = cls(reader, writer)
        if password:
            conn.send("AUTH", *([username] if username else []), password)
            await asyncio.wait_for(conn.read(), timeout)
        return conn

    def send(self, *args: str | bytes) -> None:
        """Write one command (not waiting for its reply: :meth:`read` gets it)."""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
        self.writer.write(b"".join(parts))

    async def read(self) -> Any:
        """The next reply or pushed message; an error reply raises :class:`RespError`."""
        line = await self.reader.readuntil(b"\r\n")
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [await self.read() for _ in range(count)]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            return (await self.reader.readexactly(size + 2))[:-2]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        raise RespError(f"unexpected reply {line[:20]!r}")

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()
