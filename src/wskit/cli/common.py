"""What the commands of ``wskit`` share, below both them and the parser.

:class:`CommandError` is raised by the commands and caught by
:func:`~wskit.cli.parser.main`, which reports it like an argument error;
:func:`serve_until_signal` is how every server command (``echo``, ``serve``,
``demo``) waits for its end; :func:`raise_open_file_limit` gives a server
command every file descriptor it may have.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from ..asyncio.server import Server

__all__ = ["CommandError", "raise_open_file_limit", "serve_until_signal"]


class CommandError(Exception):
    """A command cannot run as asked (bad ``module:attr``, unreadable TLS files...)."""


def raise_open_file_limit() -> int | None:
    """Raise this process's soft limit of open files to its hard limit; return the new one.

    A server holds a descriptor per connection, and the usual soft limit
    (1024) is far below what the system allows: past it, ``accept()`` fails
    with ``EMFILE``, which asyncio logs once per failed call, a burst of up to
    ``backlog`` records. Go's runtime raises the limit the same way when it
    starts. A library cannot decide this for its host program, so only the
    ``wskit`` server commands do it. ``None`` where there is no such limit.
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return None if soft == resource.RLIM_INFINITY else soft


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
