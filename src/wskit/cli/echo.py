"""``wskit echo``: an echo server, for conformance suites and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..asyncio.connection import Conn
from ..asyncio.server import serve
from .common import serve_until_signal

__all__ = ["ECHO_MAX_SIZE", "echo_messages", "run_echo"]

ECHO_MAX_SIZE = 16 * 2**20
"""The echo server accepts messages up to 16 MiB (conformance suites send that much)."""


async def echo_messages(conn: Conn) -> None:
    """The echo server's connection handler: every message back, same type."""
    async for message in conn:
        await conn.send(message)


async def run_echo(
    host: str, port: int, compression: bool = True, limits: Mapping[str, Any] | None = None
) -> None:
    """Run an echo server until SIGINT/SIGTERM: every message back, same type.

    ``limits`` holds :class:`~wskit.ServerOptions` fields for the server-wide
    limits (``max_connections``...); what it leaves out keeps its default.
    """
    server = await serve(
        echo_messages,
        host,
        port,
        compression="deflate" if compression else None,
        max_size=ECHO_MAX_SIZE,
        # Conformance suites connect from anywhere; an echo server has nothing to protect.
        check_origin=lambda request: True,
        **(limits or {}),
    )
    print(f"wskit echo server on ws://{host}:{server.port}/", flush=True)
    await serve_until_signal(server)
