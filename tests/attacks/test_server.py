"""Attacks on the plain server: connection floods, slowloris sockets, secrets in errors, log floods.

Each test runs a real server (in process, or ``wskit echo`` as a subprocess)
and attacks it over real sockets, with the ``websockets`` library or raw
sockets as the client. Other client addresses are taken from 127.0.0.0/8,
which Linux routes to the loopback interface: a client socket bound to
127.0.0.2 is another IP address for the server's per-IP limits.

The tests assert mechanisms (the status and body of each refusal, the
server's counters, the log records), not timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

import wskit
import wskit.asyncio.server as server_module
import wskit.limits
from cli.process_support import start, stop
from wskit.limits import LogLimiter

TIMEOUT = 10
# A valid upgrade request, for the raw sockets.
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# An upgrade request without Upgrade: refused with 400 (a "bad handshake").
BAD_UPGRADE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class FakeClock:
    """A clock for the log limiter: the test says when time passes."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """A fresh limiter for client-caused records, on a clock the test moves.

    The server's records and :func:`wskit.limits.report_failure`'s both go
    through it; the other tests' records do not spend its tokens.
    """
    clock = FakeClock()
    limiter = LogLimiter(clock=clock)
    monkeypatch.setattr(wskit.limits, "client_caused", limiter)
    monkeypatch.setattr(server_module, "client_caused", limiter)
    yield clock


async def hold(conn: wskit.Conn) -> None:
    """A handler that keeps each connection open until the client closes it."""
    await conn.wait_closed()


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[wskit.Conn], Awaitable[Any]], **options: Any
) -> AsyncIterator[wskit.Server]:
    options.setdefault("close_timeout", 2)
    async with asyncio.timeout(30), wskit.serve(handler, "127.0.0.1", 0, **options) as server:
        yield server


def uri(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


async def refusal(port: int, source: str = "127.0.0.1") -> Any:
    """Connect with websockets from ``source``; return the HTTP response that refused it."""
    with pytest.raises(InvalidStatus) as info:
        async with asyncio.timeout(TIMEOUT):
            await websockets.connect(uri(port), local_addr=(source, 0), open_timeout=TIMEOUT)
    return info.value.response


async def connect_when_admitted(port: int) -> Any:
    """Connect from 127.0.0.1 once the server has room (it may be closing a connection)."""
    for _ in range(100):
        try:
            return await websockets.connect(uri(port), open_timeout=TIMEOUT)
        except InvalidStatus as exc:
            assert exc.response.status_code == 503
            await asyncio.sleep(0.05)
    raise AssertionError("the server never had room")


async def raw_exchange(port: int, request: bytes, source: str = "127.0.0.1") -> bytes:
    """Send ``request`` on a raw socket and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(request)
        async with asyncio.timeout(TIMEOUT):
            return await reader.read()
    finally:
        writer.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a state the server reaches), for at most TIMEOUT seconds."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)


def client_caused_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("wskit") and r.levelno >= logging.INFO]


# --------------------------------------------------------------------------- connection limits


async def test_max_connections_counts_sockets_mid_handshake_and_refuses_with_503() -> None:
    async with serving(hold, max_connections=3, handshake_timeout=30) as server:
        client = await websockets.connect(uri(server.port))
        # Two slowloris sockets: one says nothing, one sends half a request.
        silent = await asyncio.open_connection("127.0.0.1", server.port)
        partial = await asyncio.open_connection("127.0.0.1", server.port)
        partial[1].write(UPGRADE[:40])
        await wait_until(lambda: server.admission.open == 3)

        response = await refusal(server.port)
        assert response.status_code == 503
        assert b"Too many connections: the server is at its limit" in response.body
        assert response.headers["Connection"] == "close"
        assert server.counters.refused_max_connections == 1
        assert server.admission.open == 3  # the refused connection was never held

        # A slot that frees up is taken again.
        silent[1].close()
        await wait_until(lambda: server.admission.open == 2)
        async with websockets.connect(uri(server.port)) as again:
            await again.send("in")
        partial[1].close()
        await client.close()


async def test_a_refused_connection_is_answered_and_closed_at_once() -> None:
    # A refused client gets its 503 and the end of the stream without sending a
    # byte: the server neither reads its request nor waits for handshake_timeout.
    async with serving(hold, max_connections=1, handshake_timeout=60) as server:
        async with websockets.connect(uri(server.port)):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            async with asyncio.timeout(TIMEOUT):
                answer = await reader.read()
            writer.close()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert answer.endswith(
            b"\r\n\r\nToo many connections: the server is at its limit. Try again later.\n"
        )
        assert server.counters.refused_max_connections == 1


async def test_max_connections_per_ip_refuses_that_address_only() -> None:
    async with serving(hold, max_connections_per_ip=2) as server:
        held = [await websockets.connect(uri(server.port)) for _ in range(2)]
        response = await refusal(server.port)
        assert response.status_code == 503
        assert b"Too many connections from your address" in response.body
        assert server.counters.refused_max_connections_per_ip == 1
        # Another address is not concerned.
        async with websockets.connect(uri(server.port), local_addr=("127.0.0.2", 0)) as other:
            await other.send("from 127.0.0.2")
        assert server.admission.held_by("127.0.0.1") == 2
        await held[0].close()
        await wait_until(lambda: server.admission.held_by("127.0.0.1") == 1)
        async with websockets.connect(uri(server.port)):
            pass
        for conn in held:
            await conn.close()
        await wait_until(lambda: server.admission.held_by("127.0.0.1") == 0)
        assert server.admission.open == 0


async def test_handshake_rate_per_ip_refuses_with_retry_after() -> None:
    async with serving(hold, handshake_rate=0.5, handshake_burst=3) as server:
        for _ in range(3):
            async with websockets.connect(uri(server.port), local_addr=("127.0.0.3", 0)):
                pass
        response = await refusal(server.port, "127.0.0.3")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert b"Too many new connections from your address. Retry after 2 s." in response.body
        assert server.counters.refused_handshake_rate == 1
        # The bucket is per address.
        async with websockets.connect(uri(server.port), local_addr=("127.0.0.4", 0)):
            pass
        assert server.counters.refused_handshake_rate == 1


async def test_handshake_rate_counts_connections_that_never_handshake() -> None:
    async with serving(hold, handshake_rate=0.1, handshake_burst=2) as server:
        for _ in range(2):
            _, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, local_addr=("127.0.0.5", 0)
            )
            writer.close()
        answer = await raw_exchange(server.port, UPGRADE, "127.0.0.5")
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nRetry-After: 10\r\n" in answer


# --------------------------------------------------------------------------- secrets in errors


async def test_handler_exception_text_does_not_reach_the_client(
    caplog: pytest.LogCaptureFixture, log_clock: FakeClock
) -> None:
    async def leaky(conn: wskit.Conn) -> None:
        await conn.recv()
        raise KeyError("db-password=hunter2")

    async with serving(leaky) as server:
        async with websockets.connect(uri(server.port)) as client:
            await client.send("hello")
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await client.recv()
        close = info.value.rcvd
        assert close is not None and close.code == 1011
        assert "hunter2" not in close.reason
        match = re.fullmatch(r"Internal server error \(error ([0-9a-f]{8})\)", close.reason)
        assert match is not None
        [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert match.group(1) in record.getMessage()
        assert record.exc_info is not None and record.exc_info[0] is KeyError
        assert server.counters.handler_errors == 1


async def test_process_request_exception_text_does_not_reach_the_client(
    caplog: pytest.LogCaptureFixture, log_clock: FakeClock
) -> None:
    def leaky_hook(conn: wskit.ServerConn, request: wskit.Request) -> None:
        raise KeyError("db-password=hunter2")

    async with serving(hold, process_request=leaky_hook) as server:
        response = await refusal(server.port)
    assert response.status_code == 500
    assert b"hunter2" not in response.body
    match = re.fullmatch(rb"Internal server error \(error ([0-9a-f]{8})\)\n", response.body)
    assert match is not None
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert match.group(1).decode() in record.getMessage()


# --------------------------------------------------------------------------- log floods


async def test_bad_handshakes_cannot_flood_the_log(
    caplog: pytest.LogCaptureFixture, log_clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    async with serving(hold) as server:
        for _ in range(200):
            answer = await raw_exchange(server.port, BAD_UPGRADE)
            assert answer.startswith(b"HTTP/1.1 4")
        assert server.counters.handshakes_refused == 200
        records = client_caused_records(caplog)
        assert 1 <= len(records) <= 5  # the limiter's burst
        assert all("opening handshake from 127.0.0.1 refused" in r.getMessage() for r in records)
        # Later, the next record says how many were held back.
        log_clock.now += 60
        await raw_exchange(server.port, BAD_UPGRADE)
        last = client_caused_records(caplog)[-1].getMessage()
        assert re.search(r"\(and (\d+) more like this, not logged\)", last), last
        assert f"and {200 - len(records)} more" in last


async def test_failing_handlers_cannot_flood_the_log(
    caplog: pytest.LogCaptureFixture, log_clock: FakeClock
) -> None:
    async def failing(conn: wskit.Conn) -> None:
        raise RuntimeError("a bug")

    async def one_connection(port: int) -> int:
        async with websockets.connect(uri(port)) as client:
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await client.recv()
        assert info.value.rcvd is not None
        return info.value.rcvd.code

    async with serving(failing) as server:
        for _ in range(10):
            codes = await asyncio.gather(*(one_connection(server.port) for _ in range(20)))
            assert set(codes) == {1011}
        assert server.counters.handler_errors == 200
        errors = [r for r in client_caused_records(caplog) if r.levelno >= logging.ERROR]
        assert 1 <= len(errors) <= 5
        log_clock.now += 60
        await one_connection(server.port)
        await wait_until(lambda: server.counters.handler_errors == 201)
        last = client_caused_records(caplog)[-1]
        assert "more like this, not logged" in last.getMessage()
        assert last.exc_info is not None  # still with its traceback


async def test_handshake_timeouts_are_counted_and_logged_within_the_rate(
    caplog: pytest.LogCaptureFixture, log_clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    async with serving(hold, handshake_timeout=0.05) as server:
        sockets = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
        await wait_until(lambda: server.counters.handshake_timeouts == 20)
        for reader, writer in sockets:
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
            writer.close()
        records = client_caused_records(caplog)
        assert 1 <= len(records) <= 5
        assert "not done after 0.05 s; dropped" in records[0].getMessage()
        await wait_until(lambda: server.admission.open == 0)


# --------------------------------------------------------------------------- the DEBUG trace


async def test_debug_trace_of_one_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wskit")

    async def bye(conn: wskit.Conn) -> None:
        await conn.recv()
        await conn.close(4000, "done")

    async with serving(bye) as server:
        async with websockets.connect(uri(server.port) + "chat?room=1") as client:
            await client.send("hi")
            await client.wait_closed()
        [conn_id] = {
            m.group(1)
            for r in caplog.records
            if (m := re.match(r"conn (\d+): connection from \('127\.0\.0\.1'", r.getMessage()))
        }
        await wait_until(
            lambda: any(
                f"conn {conn_id}: connection lost" in r.getMessage() for r in caplog.records
            )
        )
    trace = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith(f"conn {conn_id}:")
    ]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.getMessage() in trace)
    assert trace[0].startswith(f"conn {conn_id}: connection from ('127.0.0.1', ")
    assert "handshake accepted with 101 (path '/chat'" in trace[1]
    assert (
        trace[2] == f"conn {conn_id}: closed by the server: sent 4000 'done', received 4000 'done'"
    )
    assert trace[3] == f"conn {conn_id}: connection lost (TCP closed)"


async def test_no_trace_records_are_made_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    async with serving(hold) as server, websockets.connect(uri(server.port)) as client:
        await client.send("x")
    assert not [r for r in caplog.records if r.name.startswith("wskit")]


# --------------------------------------------------------------------------- wskit echo


async def test_wskit_echo_applies_the_limits_of_its_command_line() -> None:
    process, port = start(
        "echo",
        "--log-level",
        "INFO",
        "--max-connections",
        "2",
        "--max-connections-per-ip",
        "1",
        "--handshake-rate",
        "1000",
        "--handshake-burst",
        "1000",
    )
    try:
        # start() probed the port: wait until the server has let that connection go.
        first = await connect_when_admitted(port)
        try:
            response = await refusal(port)  # a second one from 127.0.0.1
            assert response.status_code == 503
            assert b"from your address" in response.body
            async with websockets.connect(uri(port), local_addr=("127.0.0.2", 0)) as second:
                await second.send("echo")
                assert await second.recv() == "echo"
                response = await refusal(port, "127.0.0.3")
                assert response.status_code == 503
                assert b"the server is at its limit" in response.body
                # A flood of refused connections: each answered, the log bounded.
                for _ in range(200):
                    answer = await raw_exchange(port, UPGRADE, "127.0.0.4")
                    assert answer.startswith(b"HTTP/1.1 503 ")
            await first.send("still here")
            assert await first.recv() == "still here"
        finally:
            await first.close()
    finally:
        code, err = stop(process)
    assert code == 0, err
    refused = [line for line in err.splitlines() if "refused a connection" in line]
    assert 2 <= len(refused) <= 10, err
    assert "over max_connections_per_ip" in err
    assert "over max_connections" in err
