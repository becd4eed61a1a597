"""The command line of ``wskit``: its arguments, and the dispatch to the commands.

:func:`build_parser` holds every subcommand's arguments, so that the whole
command line reads in one place; :func:`main` parses them and calls the
command's ``run_*`` coroutine with plain arguments, in a new event loop
(asyncio's, or uvloop's with ``--loop uvloop``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from .common import CommandError, raise_open_file_limit
from .connect import parse_header, run_connect
from .demo import run_demo
from .echo import run_echo
from .metrics import add_arguments as add_metrics_arguments
from .metrics import metrics_options
from .serve import run_serve
from .workers import USAGE_ERROR, run_workers

__all__ = ["SERVER_COMMANDS", "build_parser", "limit_options", "main"]

T = TypeVar("T")

SERVER_COMMANDS = frozenset({"echo", "serve", "demo"})
"""The commands that serve: they raise the open-file limit first (``raise_open_file_limit``)."""


def _size(value: str) -> int | None:
    """A byte count for ``--max-size``; 0 means no limit."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("a size cannot be negative")
    return number or None


def _count(value: str) -> int:
    """A whole number of connections for the server limits; 0 means no limit."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("a limit cannot be negative")
    return number


def _rate(value: str) -> float:
    """A rate in connections per second; 0 means no limit."""
    number = float(value)
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("a rate cannot be negative")
    return number


def _server_limits() -> argparse.ArgumentParser:
    """The server-wide limits, for the commands that serve (``echo`` and ``serve``)."""
    limits = argparse.ArgumentParser(add_help=False)
    group = limits.add_argument_group("server-wide limits (each per process under --workers)")
    group.add_argument(
        "--max-connections",
        type=_count,
        metavar="N",
        help="connections held at once, handshakes included; over it, 503 "
        "(default: 90%% of the open-file limit; 0: no limit)",
    )
    group.add_argument(
        "--max-connections-per-ip",
        type=_count,
        default=0,
        metavar="N",
        help="connections held at once from one client IP; over it, 503 (default 0: no limit)",
    )
    group.add_argument(
        "--handshake-rate",
        type=_rate,
        default=0.0,
        metavar="PER_SECOND",
        help="new connections per second from one client IP; over it, 503 (default 0: no limit)",
    )
    group.add_argument(
        "--handshake-burst",
        type=_count,
        default=10,
        metavar="N",
        help="new connections from one client IP allowed at once before "
        "--handshake-rate applies (default 10)",
    )
    return limits


def limit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~wskit.ServerOptions` fields of the server-limit arguments.

    ``--max-connections`` left out keeps the default (from the open-file
    limit); 0 in any of them means no limit.
    """
    options: dict[str, Any] = {
        "max_connections_per_ip": args.max_connections_per_ip or None,
        "handshake_rate": args.handshake_rate or None,
        "handshake_burst": max(1, args.handshake_burst),
    }
    if args.max_connections is not None:
        options["max_connections"] = args.max_connections or None
    return options


def _limit_args(args: argparse.Namespace) -> list[str]:
    """The server-limit arguments again, for a worker's command line."""
    argv = [
        "--max-connections-per-ip",
        str(args.max_connections_per_ip),
        "--handshake-rate",
        repr(args.handshake_rate),
        "--handshake-burst",
        str(args.handshake_burst),
    ]
    if args.max_connections is not None:
        argv += ["--max-connections", str(args.max_connections)]
    return argv


def _version() -> str:
    """The package's version, as ``wskit.__version__`` holds it (from the package metadata)."""
    # The package is always imported before its submodules; the command line is
    # a lower layer than the package, so it reads the module rather than importing it.
    return str(sys.modules["wskit"].__version__)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``wskit`` command."""
    parser = argparse.ArgumentParser(prog="wskit", description="WebSocket toolkit")
    parser.add_argument("--version", action="version", version=f"wskit {_version()}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    # --log-level is accepted after the subcommand too.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="logging level (default WARNING)"
    )
    common.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (uvloop must be installed: pip install uvloop)",
    )
    # --max-size, for the commands that take messages (serve and connect).
    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument(
        "--max-size",
        type=_size,
        default=2**20,
        metavar="BYTES",
        help="largest message (default 1 MiB; 0: any)",
    )
    server_limits = _server_limits()
    sub = parser.add_subparsers(dest="command", required=True)

    echo = sub.add_parser("echo", parents=[common, server_limits], help="run an echo server")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9001)
    echo.add_argument("--no-compression", action="store_true", help="refuse permessage-deflate")

    srv = sub.add_parser(
        "serve",
        parents=[common, limits, server_limits],
        help="serve a Hub or a connection handler (module:attr)",
    )
    srv.add_argument("app", metavar="module:attr", help="e.g. myapp.chat:hub")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--path", help="the WebSocket endpoint's path (default: any path)")
    srv.add_argument("--tls-cert", metavar="PEM", help="certificate chain: serve wss://")
    srv.add_argument("--tls-key", metavar="PEM", help="private key (if not in --tls-cert)")
    srv.add_argument("--no-compression", action="store_true", help="refuse permessage-deflate")
    srv.add_argument(
        "--origin",
        action="append",
        default=[],
        help="allowed Origin (repeatable; default: same host only)",
    )
    srv.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes sharing the port (SO_REUSEPORT); share rooms with a Redis backplane",
    )
    srv.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    add_metrics_arguments(srv)

    con = sub.add_parser("connect", parents=[common, limits], help="an interactive client")
    con.add_argument("uri", help="ws:// or wss:// URI")
    con.add_argument(
        "-H",
        "--header",
        action="append",
        type=parse_header,
        default=[],
        help="a request header, 'Name: value' (repeatable)",
    )
    con.add_argument(
        "-s",
        "--subprotocol",
        action="append",
        default=[],
        help="a subprotocol to offer (repeatable)",
    )
    con.add_argument("--no-compression", action="store_true", help="do not offer deflate")
    con.add_argument("--origin", help="the Origin header")
    con.add_argument("--ca-file", help="trust the certificates in this PEM file (wss://)")
    con.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    con.add_argument(
        "--linger",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="at the end of input, close after this long without messages (default 0.5)",
    )

    demo = sub.add_parser("demo", parents=[common], help="run the chat demo")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    return parser


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The ``serve`` arguments of one worker (``--host``/``--port`` are added later).

    The inverse of the ``serve`` part of :func:`build_parser`: an option
    added there is passed on here. (The metrics options stay with the
    supervisor, which gives each worker ``--metrics-socket`` instead.)
    """
    argv = ["--log-level", args.log_level, "serve", args.app, "--loop", args.loop]
    if args.path:
        argv += ["--path", args.path]
    if args.tls_cert:
        argv += ["--tls-cert", args.tls_cert]
    if args.tls_key:
        argv += ["--tls-key", args.tls_key]
    if args.no_compression:
        argv.append("--no-compression")
    argv += ["--max-size", str(args.max_size or 0)]
    for origin in args.origin:
        argv += ["--origin", origin]
    argv += _limit_args(args)
    return argv


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    """``asyncio.run``, or ``uvloop.run`` for ``--loop uvloop``."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            message = "--loop uvloop needs the uvloop package: pip install uvloop"
            raise CommandError(message) from None
        return uvloop.run
    return asyncio.run


def _dispatch(args: argparse.Namespace) -> int:
    run = _runner(args.loop)
    if args.command == "echo":
        run(run_echo(args.host, args.port, not args.no_compression, limit_options(args)))
    elif args.command == "serve" and args.workers > 1:
        # The supervisor serves nothing: asyncio will do; its workers run on --loop.
        return asyncio.run(
            run_workers(
                args.host,
                args.port,
                args.workers,
                _worker_args(args),
                metrics=metrics_options(args),
            )
        )
    elif args.command == "serve":
        run(
            run_serve(
                args.app,
                args.host,
                args.port,
                path=args.path,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                compression=not args.no_compression,
                max_size=args.max_size,
                origins=args.origin,
                reuse_port=args.reuse_port,
                limits=limit_options(args),
                metrics=metrics_options(args),
            )
        )
    elif args.command == "connect":
        return run(
            run_connect(
                args.uri,
                headers=args.header,
                subprotocols=args.subprotocol,
                compression=not args.no_compression,
                max_size=args.max_size,
                origin=args.origin,
                ca_file=args.ca_file,
                insecure=args.insecure,
                linger=args.linger,
            )
        )
    elif args.command == "demo":
        run(run_demo(args.host, args.port))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``wskit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    if args.command in SERVER_COMMANDS:
        raise_open_file_limit()
    try:
        status = _dispatch(args)
    except KeyboardInterrupt:
        status = 130
    except (CommandError, OSError) as exc:
        # A bad module:attr, TLS file or address: say it like argparse does.
        parser.exit(USAGE_ERROR, f"wskit {args.command}: error: {exc}\n")
    sys.exit(status)
