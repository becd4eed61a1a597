"""``wskit connect ws://...``: an interactive client.

Theory of operation: a daemon thread reads stdin line by line and hands
each line to the event loop through a queue (this works alike for ttys,
pipes and files). A session task turns the lines into messages or
commands (``/ping``, ``/close``, ``/binary``, ``/help``), while the main
task prints what arrives, with its direction (``<`` in, ``>`` out, ``*``
from ``wskit`` itself) and type. At the end of input the connection is
closed with 1000 once nothing has arrived for ``--linger`` seconds, so
that answers in flight are shown. Ctrl-C closes the connection; once it
is closing, Ctrl-C drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from ..asyncio.client import connect
from ..asyncio.connection import Conn
from ..exceptions import ConnectionClosed, HandshakeRejected, WebSocketError
from ..protocol.frames import CloseCode, is_valid_close_code
from ..protocol.headers import Headers

__all__ = ["CONNECT_HELP", "HEX_SHOWN", "describe", "describe_close", "parse_header", "run_connect"]

CONNECT_HELP = """\
commands:
  /ping [data]               send a ping; prints the round-trip time
  /close [code [reason]]     close the connection (default 1000)
  /binary HEX                send a binary message
  /help                      this help
  //text                     send "/text"
other lines are sent as text messages; the end of input closes the connection
(once nothing has arrived for --linger seconds)."""
"""What ``/help`` prints."""

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

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
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
