"""Unit tests of wskit.asyncio.api: what ConnectionAPI writes on a connection's primitives.

``Conn`` and the ASGI adapter's ``AsgiConn`` are tested over real sockets
and ASGI servers in their own modules; here ConnectionAPI gets a minimal
connection of the test's own, in memory.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import wskit
from asgi.support import uvicorn_serving
from wskit.asgi import asgi_app
from wskit.asgi.connection import AsgiConn
from wskit.asyncio.api import ConnectionAPI, Data
from wskit.asyncio.connection import Conn
from wskit.exceptions import ConnectionClosed, ConnectionClosedError, closed_exception
from wskit.protocol.events import DataReceived
from wskit.protocol.headers import Headers
from wskit.protocol.http11 import Request, Response

OK = closed_exception(1000)


class Scripted(ConnectionAPI):
    """Receives ``messages`` in order, then raises ``end``; records what is sent.

    ``messages`` are whole messages, or ``(data, fin)`` fragments; ``feed``
    adds more later, as a connection's source does.
    """

    def __init__(
        self, messages: list[Data | tuple[Data, bool]], end: ConnectionClosed, max_queue: int = 32
    ) -> None:
        self._queue = collections.deque()
        self._queue_size = 0
        self._partial = None
        self._read_waiter = None
        self._reading_paused = False
        self.max_queue = max_queue
        self.max_size = None
        self.end = end
        self.ended = False
        self.resumed = 0
        self.sent: list[Any] = []
        self.closed_with: tuple[int, str] | None = None
        self.request: Request | None = None
        self.response: Response | None = None
        self.json_loads = json.loads
        self.json_dumps = json.dumps
        self._loop = asyncio.get_running_loop()
        self.feed(*messages)
        self.ended = True

    def feed(self, *messages: Data | tuple[Data, bool]) -> None:
        for message in messages:
            data, fin = message if isinstance(message, tuple) else (message, True)
            self._queue.append(DataReceived(data, fin))
            self._queue_size += len(data)
        self._reading_paused = len(self._queue) > self.max_queue
        self._wake_reader()

    def _wait_for_data(self) -> asyncio.Future[None]:
        if self.ended:
            raise self.end
        return self._new_read_waiter()

    def _maybe_resume_reading(self) -> None:
        if len(self._queue) <= self.max_queue // 4:
            self._reading_paused = False
            self.resumed += 1

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)


async def test_iteration_ends_on_a_normal_close() -> None:
    conn = Scripted(["one", b"two"], closed_exception(1000, "", 1000, ""))
    assert [message async for message in conn] == ["one", b"two"]


async def test_iteration_raises_on_an_abnormal_close() -> None:
    conn = Scripted(["one"], closed_exception(1011, "oops", 1011, "oops"))
    received = []
    with pytest.raises(ConnectionClosedError) as caught:
        async for message in conn:
            received.append(message)
    assert received == ["one"]
    assert caught.value.code == 1011


async def test_fragments_are_joined_and_streamed() -> None:
    conn = Scripted([("he", False), ("llo", True), (b"\x01", False), (b"\x02", True)], OK)
    assert await conn.recv() == "hello"
    assert [fragment async for fragment in conn.recv_streaming()] == [b"\x01", b"\x02"]


async def test_a_waiting_reader_is_woken_by_what_arrives() -> None:
    conn = Scripted([], OK)
    conn.ended = False
    reader = asyncio.ensure_future(conn.recv())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="another task is already reading"):
        await conn.recv()
    conn.feed("late")
    assert await asyncio.wait_for(reader, 5) == "late"


async def test_a_cancelled_reader_leaves_room_for_the_next() -> None:
    conn = Scripted([], OK)
    conn.ended = False
    reader = asyncio.ensure_future(conn.recv())
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.sleep(0)
    second = asyncio.ensure_future(conn.recv())
    await asyncio.sleep(0)
    conn.feed("for the second")
    assert await asyncio.wait_for(second, 5) == "for the second"


async def test_a_full_queue_resumes_its_source_once_drained() -> None:
    conn = Scripted([str(n) for n in range(10)], OK, max_queue=4)
    assert conn._reading_paused
    received = [await conn.recv() for _ in range(9)]
    assert received == [str(n) for n in range(9)]
    assert conn.resumed == 1  # at 1 left (max_queue // 4), once
    assert not conn._reading_paused


async def test_json_goes_through_the_connections_functions() -> None:
    conn = Scripted(['{"a": [1, 2]}'], closed_exception(1000))
    conn.json_dumps = lambda obj: json.dumps(obj, separators=(",", ":"))
    assert await conn.recv_json() == {"a": [1, 2]}
    await conn.send_json({"b": None})
    assert conn.sent == ['{"b":null}']


async def test_async_with_closes_normally() -> None:
    conn = Scripted([], closed_exception(1000))
    async with conn as entered:
        assert entered is conn
        assert conn.closed_with is None
    assert conn.closed_with == (1000, "")


async def test_handshake_headers() -> None:
    conn = Scripted([], closed_exception(1000))
    conn.request = Request("GET", "/chat", Headers([("Host", "example.com")]))
    conn.response = Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
    assert conn.request_headers["Host"] == "example.com"
    assert conn.response_headers["Upgrade"] == "websocket"


async def test_handlers_run_coroutines_as_tasks_and_contain_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = Scripted([], closed_exception(1000))
    calls: list[tuple[object, ...]] = []
    done = asyncio.Event()

    def plain(*args: object) -> None:
        calls.append(args)

    async def coroutine(*args: object) -> None:
        calls.append(args)
        done.set()

    def failing(*args: object) -> None:
        raise ValueError("handler bug")

    conn._call_handler(plain, 1000, "bye")
    conn._call_handler(coroutine, b"ping")
    with caplog.at_level(logging.ERROR, logger="wskit"):
        conn._call_handler(failing)
    await asyncio.wait_for(done.wait(), 5)
    assert calls == [(1000, "bye"), (b"ping",)]
    assert "in the failing handler" in caplog.text
    assert "ValueError: handler bug" in caplog.text  # the traceback, with an error id


# -- the documented connection type: Conn and AsgiConn are both a ConnectionAPI ------------

#: The members of ConnectionAPI that each connection class defines for itself.
DEFINED_BY_EACH = (
    "send",
    "send_nowait",
    "write_prepared",
    "send_prepared",
    "ping",
    "pong",
    "close",
    "wait_closed",
    "state",
    "closed",
    "close_code",
    "close_reason",
    "local_address",
    "remote_address",
    "write_buffer_size",
)


def test_conn_and_asgi_conn_are_the_top_level_connection_type() -> None:
    assert wskit.ConnectionAPI is ConnectionAPI
    assert issubclass(Conn, ConnectionAPI)
    assert issubclass(wskit.ServerConn, ConnectionAPI)
    assert issubclass(wskit.ClientConn, ConnectionAPI)
    assert issubclass(AsgiConn, ConnectionAPI)


@pytest.mark.parametrize("cls", [Conn, AsgiConn])
@pytest.mark.parametrize("name", DEFINED_BY_EACH)
def test_each_class_defines_the_members_of_the_type(cls: type, name: str) -> None:
    # Not the base's placeholder that raises NotImplementedError.
    assert inspect.getattr_static(cls, name) is not inspect.getattr_static(ConnectionAPI, name)


async def handle_either(conn: ConnectionAPI) -> None:
    """One handler for serve() and asgi_app(): echo, and tell the subprotocol and state."""
    await conn.send(f"{conn.subprotocol} {conn.state.name} {conn.closed}")
    async for message in conn:
        await conn.send(message)


async def test_one_handler_annotated_with_the_type_serves_both() -> None:
    async with wskit.serve(handle_either, "127.0.0.1", 0) as server:
        conn = await wskit.connect(f"ws://127.0.0.1:{server.port}/")
        assert await conn.recv() == "None OPEN False"
        await conn.send("over wskit")
        assert await conn.recv() == "over wskit"
        await conn.close()
    async with uvicorn_serving(asgi_app(handle_either)) as served:
        conn = await wskit.connect(served.ws())
        assert await conn.recv() == "None OPEN False"
        await conn.send("over ASGI")
        assert await conn.recv() == "over ASGI"
        await conn.close()


#: A handler annotated with the documented type, given to serve() and
#: asgi_app(); the client's connection passed where the type is expected.
TYPED_PROGRAM = """
import wskit
from wskit.asgi import asgi_app


async def handler(conn: wskit.ConnectionAPI) -> None:
    print(conn.request_headers.get("User-Agent"), conn.remote_address, conn.subprotocol)
    async for message in conn:
        await conn.send(message)
    print(conn.close_code, conn.close_reason)


async def main() -> None:
    async with wskit.serve(handler, "127.0.0.1", 0) as server:
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as conn:
            await handler(conn)


app = asgi_app(handler)
"""


def test_a_handler_annotated_with_the_type_passes_mypy_strict(tmp_path: Any) -> None:
    (tmp_path / "program.py").write_text(textwrap.dedent(TYPED_PROGRAM))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            "program.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
