"""The ``wskit`` command: ``wskit echo``, ``wskit demo``.

Each subcommand is a small function of parsed arguments; ``main`` only
parses and dispatches, so the commands are easy to call from tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib import resources

from .asyncio.connection import Conn
from .asyncio.server import Server, ServerConn, serve
from .protocol.handshake import reject
from .protocol.http11 import Request, Response

__all__ = ["main", "build_parser", "run_echo", "run_demo"]

ECHO_MAX_SIZE = 16 * 2**20
"""The echo server accepts messages up to 16 MiB (conformance suites send that much)."""


async def _echo(conn: Conn) -> None:
    async for message in conn:
        await conn.send(message)


async def _serve_until_signal(server: Server) -> None:
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


async def run_echo(host: str, port: int, compression: bool = True) -> None:
    """Run an echo server until SIGINT/SIGTERM: every message back, same type."""
    server = await serve(
        _echo,
        host,
        port,
        compression="deflate" if compression else None,
        max_size=ECHO_MAX_SIZE,
        max_queue=64,
        ping_interval=None,
        # Conformance suites connect from anywhere; an echo server has nothing to protect.
        check_origin=lambda request: True,
    )
    print(f"wskit echo server on ws://{host}:{server.port}/", flush=True)
    await _serve_until_signal(server)


def _serve_echo_page(conn: ServerConn, request: Request) -> Response | None:
    """Answer plain HTTP requests with the demo page; let upgrades through."""
    if "Upgrade" in request.headers:
        return None
    if request.path != "/":
        return reject(404, "Not found")
    page = resources.files("wskit").joinpath("static/echo.html").read_bytes()
    return reject(200, page, [("Content-Type", "text/html; charset=utf-8")])


async def run_demo(host: str, port: int) -> None:
    """Run the demo: an echo server and, on the same port, a page that talks to it."""
    server = await serve(_echo, host, port, process_request=_serve_echo_page)
    print(f"wskit demo on http://{host}:{server.port}/", flush=True)
    await _serve_until_signal(server)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``wskit`` command."""
    parser = argparse.ArgumentParser(prog="wskit", description="WebSocket toolkit")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)

    echo = sub.add_parser("echo", help="run an echo server")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9001)
    echo.add_argument("--no-compression", action="store_true", help="refuse permessage-deflate")

    demo = sub.add_parser("demo", help="run the demo page and its server")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``wskit`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "echo":
            asyncio.run(run_echo(args.host, args.port, not args.no_compression))
        elif args.command == "demo":
            asyncio.run(run_demo(args.host, args.port))
