"""wskit.asyncio.reconnect: ``async for conn in wskit.connect(uri)``.

Real servers on 127.0.0.1, stopped and started again on the same port. The
delays the loop chose are read from its log records (and the backoff's
arithmetic is checked with a fixed random source), never timed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import pytest
import trustme

import wskit
from conftest import unused_port
from wskit.asyncio.reconnect import RETRY_STATUSES, Backoff, is_retryable
from wskit.protocol.handshake import reject

FAST = {"backoff_initial": 0.01, "backoff_factor": 2.0, "backoff_max": 0.05}


def chosen_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays of the loop's "retrying"/"reconnecting" records, in order."""
    return [
        float(record.args[-1])  # type: ignore[index]
        for record in caplog.records
        if record.name == "wskit" and ("retrying in" in record.msg or "reconnecting" in record.msg)
    ]


async def greet(conn: wskit.Conn) -> None:
    await conn.send("hello")
    await conn.wait_closed()


# --------------------------------------------------------------------------- Backoff


def test_backoff_grows_to_its_maximum_and_stays_there() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, maximum=10.0)
    highest = backoff.delays(random=lambda: 0.999999)
    assert [round(next(highest), 3) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    lowest = backoff.delays(random=lambda: 0.0)
    assert [next(lowest) for _ in range(6)] == [0.0, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_delays_are_jittered_and_bounded() -> None:
    backoff = Backoff(initial=0.5, factor=3.0, maximum=4.0)
    delays = backoff.delays()
    values = [next(delays) for _ in range(200)]
    assert all(0 <= value <= 4.0 for value in values)
    assert len(set(values)) > 100  # random, not a fixed ladder


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"initial": 0.0}, "backoff_initial"),
        ({"initial": -1.0}, "backoff_initial"),
        ({"factor": 0.5}, "backoff_factor"),
        ({"initial": 5.0, "maximum": 1.0}, "backoff_max"),
    ],
)
def test_backoff_refuses_nonsense(options: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backoff(**options)


def test_connect_refuses_a_nonsense_backoff() -> None:
    with pytest.raises(ValueError, match="backoff_max"):
        wskit.connect("ws://127.0.0.1:1/", backoff_initial=2.0, backoff_max=1.0)


# --------------------------------------------------------------------------- is_retryable


def rejected(status: int) -> wskit.HandshakeRejected:
    return wskit.HandshakeRejected(status, wskit.Headers())


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (wskit.InvalidResponse("connection closed during the opening handshake"), True),
        *[(rejected(status), True) for status in sorted(RETRY_STATUSES)],
        (rejected(400), False),
        (rejected(401), False),
        (rejected(403), False),
        (rejected(404), False),
        (rejected(302), False),
        (wskit.InvalidURI("http://x/", "not a WebSocket URI"), False),
        (wskit.InvalidHandshake("more than 5 redirects"), False),
        (wskit.ProxyError("proxy refused CONNECT: 403"), False),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
        (ssl.SSLError("wrong version number"), False),
        (ssl.SSLEOFError("EOF in violation of protocol"), True),
        (ValueError("bad option"), False),
    ],
)
def test_what_is_retried(error: BaseException, retry: bool) -> None:
    assert is_retryable(error) is retry


def test_an_unreachable_proxy_is_retried() -> None:
    error = wskit.ProxyError("cannot connect to proxy")
    error.__cause__ = ConnectionRefusedError()
    assert is_retryable(error)


# --------------------------------------------------------------------------- the loop


async def test_a_server_restarted_on_the_same_port_gets_the_client_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    port = unused_port()
    server = await wskit.serve(greet, "127.0.0.1", port)
    connected: list[wskit.ClientConn] = []
    lost = asyncio.Event()

    async def client() -> None:
        async for conn in wskit.connect(f"ws://127.0.0.1:{port}/", **FAST):
            connected.append(conn)
            try:
                assert await conn.recv() == "hello"
                if len(connected) == 2:
                    break
                await conn.recv()  # until the server goes away
            except wskit.ConnectionClosed:
                lost.set()
                continue

    task = asyncio.create_task(client())
    try:
        for _ in range(500):
            if connected:
                break
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(lost.wait(), 10)
        # Let the loop fail a few times against the closed port before the restart.
        for _ in range(500):
            if len(chosen_delays(caplog)) >= 3:
                break
            await asyncio.sleep(0.01)
        server = await wskit.serve(greet, "127.0.0.1", port)
        await asyncio.wait_for(task, 10)
        assert len(connected) == 2
        assert connected[0].closed
        # break leaves the last connection open, for the code after the loop.
        assert not connected[1].closed
        await connected[1].close()
    finally:
        task.cancel()
        server.close()
        await server.wait_closed()
    delays = chosen_delays(caplog)
    assert len(delays) >= 3
    assert all(0 <= delay <= FAST["backoff_max"] for delay in delays)
    failures = [r for r in caplog.records if "failed" in r.msg and r.name == "wskit"]
    assert failures and all(isinstance(r.args[1], OSError) for r in failures)  # type: ignore[index]


async def test_retryable_refusals_are_retried_until_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    attempts = 0

    def busy_twice(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        nonlocal attempts
        attempts += 1
        return reject(503) if attempts <= 2 else None

    async with wskit.serve(greet, "127.0.0.1", 0, process_request=busy_twice) as server:
        async for conn in wskit.connect(f"ws://127.0.0.1:{server.port}/", **FAST):
            async with conn:
                assert await conn.recv() == "hello"
            break
    assert attempts == 3
    assert len(chosen_delays(caplog)) == 2


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refused_handshake_stops_the_loop(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    attempts = 0

    def refuse(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response:
        nonlocal attempts
        attempts += 1
        return reject(status)

    async with wskit.serve(greet, "127.0.0.1", 0, process_request=refuse) as server:
        with pytest.raises(wskit.HandshakeRejected) as info:
            async for _ in wskit.connect(f"ws://127.0.0.1:{server.port}/", **FAST):
                pytest.fail("no connection was expected")
    assert info.value.status == status
    assert attempts == 1
    assert chosen_delays(caplog) == []


async def test_a_bad_uri_stops_the_loop() -> None:
    with pytest.raises(wskit.InvalidURI):
        async for _ in wskit.connect("http://127.0.0.1:1/", **FAST):
            pytest.fail("no connection was expected")


async def test_a_certificate_that_does_not_verify_stops_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    async with wskit.serve(greet, "127.0.0.1", 0, ssl=server_ctx) as server:
        # The default context does not trust the test CA.
        with pytest.raises(ssl.SSLCertVerificationError):
            async for _ in wskit.connect(f"wss://127.0.0.1:{server.port}/", **FAST):
                pytest.fail("no connection was expected")
    assert chosen_delays(caplog) == []


async def test_the_loop_closes_the_connection_it_gave_before_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wskit")
    async with wskit.serve(greet, "127.0.0.1", 0) as server:
        seen: list[wskit.ClientConn] = []
        async for conn in wskit.connect(f"ws://127.0.0.1:{server.port}/", **FAST):
            seen.append(conn)
            assert await conn.recv() == "hello"
            if len(seen) == 3:
                break
            # The body ends without closing: the loop closes it and connects again.
        assert [conn.closed for conn in seen] == [True, True, False]
        assert [conn.close_code for conn in seen[:2]] == [1000, 1000]
        await seen[2].close()
    # Each reconnection after a connection ended waited a first, short delay.
    assert len(chosen_delays(caplog)) == 2
    assert all(0 <= delay <= FAST["backoff_initial"] for delay in chosen_delays(caplog))


async def test_reconnecting_a_given_socket_is_refused() -> None:
    with socket.socket() as sock, pytest.raises(ValueError, match="sock"):
        wskit.connect("ws://127.0.0.1:1/", sock=sock).__aiter__()
