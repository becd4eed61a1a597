"""What the commands of ``wskit`` share, below both them and the parser.

:class:`CommandError` is raised by the commands and caught by
:func:`~wskit.cli.parser.main`, which reports it like an argument error;
:func:`serve_until_signal` is how every server command (``echo``, ``serve``,
``demo``) waits for its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from ..asyncio.server import Server

__all__ = ["CommandError", "serve_until_signal"]


class CommandError(Exception):
    """A command cannot run as asked (bad ``module:attr``, unreadable TLS files...)."""


async def serve_until_signal(server: Server) -> None:
    """Wait for SIGINT or SIGTERM, then close every connection with 1001."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, request_stop)
    try:
        await stop
    finally:
        server.close()
        await server.wait_closed()
