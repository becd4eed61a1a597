"""The ``wskit`` command: ``echo``, ``serve``, ``connect`` and ``demo``.

Each subcommand is a small ``run_*`` coroutine of plain arguments; ``main``
only parses and dispatches, so the commands are easy to call from tests.

* ``wskit echo``: an echo server (conformance suites and benchmarks use it).
* ``wskit serve module:attr``: serve a :class:`~wskit.hub.Hub`, a connection
  handler (``async def handler(conn)``), or a factory returning either;
  ``--workers N`` runs N processes on one port (``SO_REUSEPORT``).
* ``wskit connect ws://...``: an interactive client; lines read from stdin
  are sent as text, what arrives is printed with its direction and type.
* ``wskit demo``: the chat demo of :mod:`wskit.demo`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .asyncio.client import connect
from .asyncio.connection import Conn
from .asyncio.server import Handler, ProcessRequest, Server, serve
from .exceptions import ConnectionClosed, HandshakeRejected, WebSocketError
from .hub.hub import Hub
from .protocol.frames import CloseCode, is_valid_close_code
from .protocol.headers import Headers

T = TypeVar("T")

__all__ = [
    "main",
    "build_parser",
    "run_echo",
    "run_serve",
    "run_workers",
    "run_connect",
    "run_demo",
    "load_app",
    "App",
    "CommandError",
]

ECHO_MAX_SIZE = 16 * 2**20
"""The echo server accepts messages up to 16 MiB (conformance suites send that much)."""


# --------------------------------------------------------------------------- serving


async def _echo(conn: Conn) -> None:
    async for message in conn:
        await conn.send(message)


async def _serve_until_signal(server: Server) -> None:
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


class CommandError(Exception):
    """A command cannot run as asked (bad ``module:attr``, unreadable TLS files...)."""


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context from a PEM certificate chain and its key (``None`` without).

    Raises:
        CommandError: a key without a certificate, or files that do not load.
    """
    if cert is None:
        if key is not None:
            raise CommandError("--tls-key needs --tls-cert")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CommandError(f"cannot load the TLS certificate or key: {exc}") from exc
    return context


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


@dataclass
class App:
    """What ``wskit serve`` runs: a connection handler and its HTTP hook."""

    handler: Handler
    process_request: ProcessRequest | None = None
    #: Whether the app is a hub (which serves ``/wskit.js``).
    is_hub: bool = False

    @property
    def hub(self) -> Hub | None:
        """The hub, when the app is one."""
        return self.handler if isinstance(self.handler, Hub) else None


def _required_positionals(func: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty)


def _as_app(target: Any) -> App | None:
    if isinstance(target, Hub):
        return App(target, target.process_request, is_hub=True)
    if callable(target) and _required_positionals(target) == 1:
        return App(target)
    return None


async def load_app(spec: str) -> App:
    """Import ``package.module:attr`` and make an :class:`App` of it.

    ``attr`` (dotted paths allowed) may be a :class:`~wskit.hub.Hub`, a
    connection handler taking one argument, or a factory taking none that
    returns (or, if async, resolves to) either of those.

    Raises:
        CommandError: ``spec`` is malformed, its module does not import, or
            it names something that cannot be served.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CommandError(f"expected module:attribute, got {spec!r}")
    # Like ``python -m``, find modules in the working directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name}: {exc}") from exc
    for name in attr.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CommandError(f"{module_name} has no attribute {attr!r}") from None
    app = _as_app(target)
    if app is None and callable(target) and _required_positionals(target) == 0:
        made = target()
        if inspect.isawaitable(made):
            made = await made
        app = _as_app(made)
    if app is None:
        raise CommandError(
            f"{spec} is not a Hub, a connection handler (async def handler(conn)), "
            "or a factory returning one"
        )
    return app


async def run_serve(
    spec: str,
    host: str,
    port: int,
    *,
    path: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    compression: bool = True,
    max_size: int | None = 2**20,
    origins: Sequence[str] | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve the app named by ``spec`` until SIGINT/SIGTERM (connections get 1001).

    A hub's backplane is started first and closed last (after the
    connections), so that what they emitted while closing is published.
    """
    app = await load_app(spec)
    context = tls_context(tls_cert, tls_key)
    if app.hub is not None:
        await app.hub.start()
    server = await serve(
        app.handler,
        host,
        port,
        ssl=context,
        path=path,
        process_request=app.process_request,
        compression="deflate" if compression else None,
        max_size=max_size,
        origins=list(origins) if origins else None,
        reuse_port=reuse_port or None,
    )
    secure = "s" if context is not None else ""
    where = f"{host}:{server.port}"
    print(f"wskit serving {spec} on ws{secure}://{where}{path or '/'}", flush=True)
    if app.is_hub:
        print(f"JavaScript client: http{secure}://{where}/wskit.js (or /wskit.mjs)", flush=True)
    try:
        await _serve_until_signal(server)
    finally:
        if app.hub is not None:
            await app.hub.close()


WORKER_RESTARTS = 5
"""A worker that dies is started again, at most this many times per minute."""


def _die_with_supervisor() -> None:
    """In a new worker, before it runs: ask Linux for SIGTERM when the supervisor dies.

    Without it, a supervisor killed with SIGKILL would leave its workers
    serving on the port. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


async def run_workers(
    host: str, port: int, workers: int, worker_args: Sequence[str], stop_timeout: float = 15.0
) -> int:
    """Run ``workers`` processes of ``wskit serve`` on one port and supervise them.

    Each worker is ``python -m wskit serve ...`` with ``worker_args`` and
    ``--reuse-port``; the kernel spreads the connections among them
    (``SO_REUSEPORT``). With port 0 the supervisor picks a free port first.
    SIGINT and SIGTERM are passed on to every worker, which closes its
    connections with 1001; workers still running after ``stop_timeout``
    seconds are killed. A worker that dies otherwise is started again (at
    most :data:`WORKER_RESTARTS` times a minute). Returns the exit status.
    """
    holder: socket.socket | None = None
    if port == 0:
        # Bound (never listening) with SO_REUSEPORT, so the workers can share the port.
        holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, 0))
        port = holder.getsockname()[1]
    command = [sys.executable, "-m", "wskit", *worker_args, "--reuse-port"]
    command += ["--host", host, "--port", str(port)]
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop(sig: signal.Signals) -> None:
        if not stop.done():
            stop.set_result(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, request_stop, sig)
    print(f"wskit: {workers} workers on {host}:{port} (pid {os.getpid()})", flush=True)
    procs: list[asyncio.subprocess.Process] = []
    restarts: list[float] = []
    status = 0
    try:
        for _ in range(workers):
            procs.append(
                await asyncio.create_subprocess_exec(*command, preexec_fn=_die_with_supervisor)
            )
        while not stop.done():
            waits: dict[asyncio.Future[Any], int] = {
                asyncio.ensure_future(proc.wait()): index for index, proc in enumerate(procs)
            }
            finished, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()
            if stop.done():
                break
            for waiter in finished:
                index = waits[waiter]
                code = procs[index].returncode
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < 60]
                if len(restarts) >= WORKER_RESTARTS:
                    print(f"wskit: worker exited with {code}; too many restarts", file=sys.stderr)
                    status = 1
                    request_stop(signal.SIGTERM)
                    break
                restarts.append(now)
                print(f"wskit: worker exited with {code}; starting another", file=sys.stderr)
                procs[index] = await asyncio.create_subprocess_exec(
                    *command, preexec_fn=_die_with_supervisor
                )
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + stop_timeout
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if holder is not None:
            holder.close()
    return status


async def run_demo(host: str, port: int) -> None:
    """Run the chat demo (page, JavaScript client and hub on one port)."""
    from .demo import serve_demo

    server = await serve_demo(host, port)
    print(f"wskit demo: a chat on http://{host}:{server.port}/", flush=True)
    await _serve_until_signal(server)


# --------------------------------------------------------------------------- connect

CONNECT_HELP = """\
commands:
  /ping [data]               send a ping; prints the round-trip time
  /close [code [reason]]     close the connection (default 1000)
  /binary HEX                send a binary message
  /help                      this help
  //text                     send "/text"
other lines are sent as text messages; the end of input closes the connection
(once nothing has arrived for --linger seconds)."""

HEX_SHOWN = 64
"""Bytes of a binary message shown in hex; longer ones are cut with an ellipsis."""


def parse_header(value: str) -> tuple[str, str]:
    """``"Name: value"`` as a pair (an ``argparse`` type)."""
    name, sep, rest = value.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {value!r}")
    return name, rest.strip()


def describe(message: str | bytes) -> str:
    """How ``wskit connect`` shows a message: ``text: ...`` or ``binary: N bytes: hex``."""
    if isinstance(message, str):
        return f"text: {message}"
    shown = message[:HEX_SHOWN].hex()
    more = "…" if len(message) > HEX_SHOWN else ""
    return f"binary: {len(message)} bytes: {shown}{more}"


def describe_close(code: int | None, reason: str | None) -> str:
    """``1001 (going away) "server shutting down"``."""
    if code is None:
        return "no close code"
    try:
        name = " (" + CloseCode(code).name.lower().replace("_", " ") + ")"
    except ValueError:
        name = ""
    return f"{code}{name}" + (f" {reason!r}" if reason else "")


def _say(line: str) -> None:
    print(line, flush=True)


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read stdin lines in a daemon thread (works for ttys, pipes and files alike).

    A daemon thread blocked in ``readline`` never holds up the exit.
    """

    def put(item: str | None) -> bool:
        try:
            loop.call_soon_threadsafe(lines.put_nowait, item)
        except RuntimeError:  # the loop is closed: we are exiting
            return False
        return True

    def read() -> None:
        while line := sys.stdin.readline():
            if not put(line.rstrip("\r\n")):
                return
        put(None)

    threading.Thread(target=read, name="wskit-stdin", daemon=True).start()


class _Session:
    """One ``wskit connect`` session: stdin to the connection, the connection to stdout."""

    def __init__(self, conn: Conn, echo_input: bool, linger: float) -> None:
        self.conn = conn
        self.echo_input = echo_input
        self.linger = linger
        self.closing = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.received = asyncio.Event()

    async def print_incoming(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.conn:
                self.received.set()
                _say(f"< {describe(message)}")

    async def wait_for_quiet(self) -> None:
        """Wait until nothing has arrived for ``linger`` seconds (answers in flight)."""
        while True:
            self.received.clear()
            try:
                await asyncio.wait_for(self.received.wait(), self.linger)
            except TimeoutError:
                return

    async def send_input(self, lines: asyncio.Queue[str | None]) -> None:
        while (line := await lines.get()) is not None:
            if self.closing:
                _say("* the connection is closing; input ignored")
                continue
            try:
                await self.handle_line(line)
            except ConnectionClosed:
                return
        if not self.closing:  # end of input: close once the answers have arrived
            await self.wait_for_quiet()
            await self.close(1000, "")

    async def handle_line(self, line: str) -> None:
        if not line.startswith("/") or line.startswith("//"):
            text = line[1:] if line.startswith("//") else line
            await self.conn.send(text)
            if self.echo_input:
                _say(f"> {text}")
            return
        command, _, rest = line.partition(" ")
        if command == "/ping":
            self.spawn(self.ping(rest or None))
        elif command == "/close":
            code_text, _, reason = rest.strip().partition(" ")
            try:
                code = int(code_text) if code_text else 1000
            except ValueError:
                _say(f"* not a close code: {code_text!r}")
                return
            await self.close(code, reason)
        elif command == "/binary":
            try:
                data = bytes.fromhex(rest)
            except ValueError:
                _say("* /binary takes hexadecimal digits, e.g. /binary 68656c6c6f")
                return
            await self.conn.send(data)
            _say(f"> {describe(data)}")
        elif command == "/help":
            _say(CONNECT_HELP)
        else:
            _say(f"* unknown command {command}; /help lists them")

    async def ping(self, data: str | None) -> None:
        try:
            latency = await asyncio.wait_for(self.conn.ping(data), 30)
        except WebSocketError as exc:
            _say(f"* cannot ping: {exc}")
        except TimeoutError:
            _say("* no pong after 30 s")
        else:
            _say(f"< pong: {latency * 1000:.2f} ms")

    async def close(self, code: int, reason: str) -> None:
        if not is_valid_close_code(code) or len(reason.encode()) > 123:
            _say(
                f"* cannot close with {code} {reason!r}: 1000-1003, 1007-1014, 3000-4999 "
                "and a reason of 123 bytes at most"
            )
            return
        self.closing = True
        _say(f"> close: {describe_close(code, reason)}")
        # The close frame goes out now; print_incoming sees the end of the connection.
        self.spawn(self.conn.close(code, reason))

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _say(f"* error: {exc}")


def _client_tls(uri: str, ca_file: str | None, insecure: bool) -> ssl.SSLContext | None:
    if not uri.lower().startswith("wss:"):
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def run_connect(
    uri: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    subprotocols: Sequence[str] = (),
    compression: bool = True,
    max_size: int | None = 2**20,
    origin: str | None = None,
    ca_file: str | None = None,
    insecure: bool = False,
    linger: float = 0.5,
) -> int:
    """Run an interactive session; return the exit status.

    At the end of input the connection is closed with 1000 once nothing has
    arrived for ``linger`` seconds, so that answers in flight are shown.

    0 when the connection closed normally (1000, 1001, or any code this
    side chose), 1 when it could not open or closed abnormally.
    """
    try:
        conn = await connect(
            uri,
            headers=Headers(headers),
            subprotocols=subprotocols,
            compression="deflate" if compression else None,
            max_size=max_size,
            origin=origin,
            ssl=_client_tls(uri, ca_file, insecure),
            on_ping=lambda data: _say(f"< ping: {len(data)} bytes: {data.hex()}"),
        )
    except HandshakeRejected as exc:
        _say(f"* {exc}")
        return 1
    except (OSError, WebSocketError, TimeoutError) as exc:
        _say(f"* cannot connect to {uri}: {exc}")
        return 1
    details = [f"subprotocol: {conn.subprotocol}"] if conn.subprotocol else []
    details.append("compression: " + ("permessage-deflate" if conn.compression else "none"))
    _say(f"* connected to {uri} ({', '.join(details)}); /help lists the commands")

    session = _Session(conn, echo_input=not sys.stdin.isatty(), linger=linger)
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if session.closing:
            if conn.transport is not None:
                conn.transport.abort()
        else:
            session.spawn(session.close(1000, ""))

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, interrupt)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    _read_stdin(loop, lines)
    sender = asyncio.ensure_future(session.send_input(lines))
    try:
        await session.print_incoming()
        await conn.wait_closed()
    finally:
        sender.cancel()
        for task in list(session.tasks):
            task.cancel()
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
    protocol = conn.protocol
    if protocol is not None and protocol.error is not None and protocol.close_sent is not None:
        # This side failed the connection (a protocol error, a message too big).
        _say(f"* failed: {describe_close(*protocol.close_sent)}: {protocol.error}")
        return 1
    code, reason = conn.close_code, conn.close_reason
    who = "" if session.closing else " by the server"
    _say(f"* closed{who}: {describe_close(code, reason)}")
    return 0 if session.closing or code in (1000, 1001) else 1


# --------------------------------------------------------------------------- parsing


def _size(value: str) -> int | None:
    """A byte count for ``--max-size``; 0 means no limit."""
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("a size cannot be negative")
    return number or None


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``wskit`` command."""
    parser = argparse.ArgumentParser(prog="wskit", description="WebSocket toolkit")
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
    sub = parser.add_subparsers(dest="command", required=True)

    echo = sub.add_parser("echo", parents=[common], help="run an echo server")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9001)
    echo.add_argument("--no-compression", action="store_true", help="refuse permessage-deflate")

    srv = sub.add_parser(
        "serve", parents=[common, limits], help="serve a Hub or a connection handler (module:attr)"
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
        run(run_echo(args.host, args.port, not args.no_compression))
    elif args.command == "serve" and args.workers > 1:
        return asyncio.run(run_workers(args.host, args.port, args.workers, _worker_args(args)))
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


def _worker_args(args: argparse.Namespace) -> list[str]:
    """The ``serve`` arguments of one worker (``--host``/``--port`` are added later)."""
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
    return argv


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``wskit`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        status = _dispatch(args)
    except KeyboardInterrupt:
        status = 130
    except (CommandError, OSError) as exc:
        # A bad module:attr, TLS file or address: say it like argparse does.
        parser.exit(2, f"wskit {args.command}: error: {exc}\n")
    sys.exit(status)
