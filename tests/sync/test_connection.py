"""wskit.sync.connection: a blocking connection shared by real threads.

The peers are real servers on 127.0.0.1: wskit's own (on an event loop in a
thread) and the websockets library's threaded server. Waiting loops are
bounded; nothing asserts on how long something took.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
import websockets.sync.server
from websockets.exceptions import ConnectionClosed as WebsocketsClosed

import wskit
from wskit.sync import ConcurrencyError, connect

from .conftest import ServerThread, echo, websockets_server

StartServer = Callable[..., ServerThread]


def wait_until(condition: Callable[[], object], what: str, tries: int = 500) -> None:
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def test_text_binary_and_fragmented_messages(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    with connect(server.uri) as conn:
        conn.send("hello")
        assert conn.recv() == "hello"
        conn.send(b"\x00\xff" * 50_000)
        assert conn.recv() == b"\x00\xff" * 50_000
        conn.send(["frag", "men", "ted"])
        assert conn.recv() == "fragmented"
        conn.send(iter([b"a", bytearray(b"b"), memoryview(b"c")]))
        assert conn.recv() == b"abc"
        conn.send_json({"n": 1})
        assert conn.recv_json() == {"n": 1}
    assert conn.closed
    assert conn.close_code == 1000


def test_send_refuses_other_types(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    with connect(server.uri) as conn:
        with pytest.raises(TypeError):
            conn.send(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            conn.send(["text", b"bytes"])  # type: ignore[list-item]
        # The half-sent message was ended: the connection still works.
        assert conn.recv() == "text"
        conn.send("after")
        assert conn.recv() == "after"


def test_recv_timeout_leaves_the_connection_usable(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    with connect(server.uri) as conn:
        with pytest.raises(TimeoutError):
            conn.recv(timeout=0.05)
        conn.send("still here")
        assert conn.recv(timeout=10) == "still here"


def test_a_second_concurrent_recv_raises(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    with connect(server.uri) as conn:
        received: list[wskit.sync.Data] = []
        reader = threading.Thread(target=lambda: received.append(conn.recv(timeout=10)))
        reader.start()
        # Until the first thread waits, the second one's recv() times out; then it must raise.
        error = None
        for _ in range(500):
            try:
                conn.recv(timeout=0.01)
            except TimeoutError:
                continue
            except ConcurrencyError as exc:
                error = exc
                break
        assert isinstance(error, wskit.WebSocketError)
        assert "another thread" in str(error)
        conn.send("for the first reader")
        reader.join(10)
        assert received == ["for the first reader"]


def test_concurrent_senders_keep_their_messages_whole(wskit_server: StartServer) -> None:
    server = wskit_server(echo, max_size=2**22)
    threads_count, per_thread = 4, 25
    with connect(server.uri, max_size=2**22, max_queue=1000) as conn:

        def sender(t: int) -> None:
            for n in range(per_thread):
                if n % 2:
                    conn.send([f"<{t}:{n}:", "x" * 3000, f":{t}:{n}>"])  # fragmented
                else:
                    conn.send(f"<{t}:{n}:" + "y" * 70_000 + f":{t}:{n}>")

        senders = [threading.Thread(target=sender, args=(t,)) for t in range(threads_count)]
        for thread in senders:
            thread.start()
        received = [conn.recv(timeout=30) for _ in range(threads_count * per_thread)]
        for thread in senders:
            thread.join(10)
    expected = set()
    for t in range(threads_count):
        for n in range(per_thread):
            body = "x" * 3000 if n % 2 else "y" * 70_000
            expected.add(f"<{t}:{n}:{body}:{t}:{n}>")
    assert set(received) == expected


def test_pings_are_answered_while_the_application_sleeps() -> None:
    # The websockets server pings every 50 ms and closes with 1011 when a pong
    # is a second late; the application below reads nothing for two seconds.
    def handler(ws: websockets.sync.server.ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with (
        websockets_server(handler, ping_interval=0.05, ping_timeout=1.0) as uri,
        connect(uri, ping_interval=None) as conn,
    ):
        time.sleep(2.0)
        conn.send("awake")
        assert conn.recv(timeout=10) == "awake"
        assert conn.close_code is None


def test_keepalive_pings_the_server(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    pongs = threading.Event()
    with connect(server.uri, ping_interval=0.02, on_pong=lambda _: pongs.set()) as conn:
        assert pongs.wait(10)
        assert conn.close_code is None


def test_keepalive_fails_the_connection_when_pongs_stop(wskit_server: StartServer) -> None:
    async def silent(conn: wskit.Conn) -> None:
        conn.auto_pong = False  # pings go unanswered
        await conn.wait_closed()

    server = wskit_server(silent)
    conn = connect(server.uri, ping_interval=0.02, ping_timeout=0.05)
    with pytest.raises(wskit.ConnectionClosedError) as info:
        conn.recv(timeout=10)
    assert info.value.sent_code == 1011
    conn.close()


def test_ping_measures_the_round_trip(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    with connect(server.uri, ping_interval=None) as conn:
        latency = conn.ping(b"abc").result(timeout=10)
        assert latency >= 0
        assert conn.ping().result(timeout=10) >= 0
        conn.pong("unsolicited")
        with pytest.raises(wskit.LocalProtocolError):
            conn.ping(b"x" * 126)
    with pytest.raises(wskit.ConnectionClosed):
        conn.ping()
    with pytest.raises(wskit.ConnectionClosed):
        conn.send("too late")


def test_pings_in_flight_fail_when_the_connection_ends(wskit_server: StartServer) -> None:
    async def no_pongs(conn: wskit.Conn) -> None:
        conn.auto_pong = False
        await conn.recv()
        await conn.close(1000)

    server = wskit_server(no_pongs)
    with connect(server.uri, ping_interval=None) as conn:
        waiter = conn.ping()
        conn.send("close now")
        with pytest.raises(wskit.ConnectionClosed):
            waiter.result(timeout=10)


def test_close_code_and_reason_reach_the_server(wskit_server: StartServer) -> None:
    seen: list[tuple[int | None, str | None]] = []

    async def record(conn: wskit.Conn) -> None:
        try:
            async for _ in conn:
                pass
        except wskit.ConnectionClosedError:
            pass
        seen.append((conn.close_code, conn.close_reason))

    server = wskit_server(record)
    conn = connect(server.uri)
    conn.close(4001, "done here")
    assert conn.closed
    assert conn.close_code == 4001  # the server echoes the code
    wait_until(lambda: seen, "the server's handler")
    assert seen == [(4001, "done here")]
    conn.close()  # again: harmless
    with pytest.raises(wskit.ConnectionClosed):
        conn.recv()


def test_a_close_code_that_cannot_be_sent_is_refused(wskit_server: StartServer) -> None:
    server = wskit_server(echo)
    with connect(server.uri) as conn:
        with pytest.raises(wskit.LocalProtocolError):
            conn.close(1006)
        conn.send("still open")
        assert conn.recv() == "still open"


def test_the_server_closing_with_an_error_code() -> None:
    def handler(ws: websockets.sync.server.ServerConnection) -> None:
        ws.send("last words")
        ws.close(4000, "bye")

    closes: list[tuple[int, str]] = []
    messages = []
    with (
        websockets_server(handler) as uri,
        connect(uri, on_close=lambda code, reason: closes.append((code, reason))) as conn,
        pytest.raises(wskit.ConnectionClosedError) as info,
    ):
        for message in conn:
            messages.append(message)
    assert messages == ["last words"]
    assert (info.value.code, info.value.reason) == (4000, "bye")
    assert conn.close_code == 4000
    assert conn.close_reason == "bye"
    assert closes == [(4000, "bye")]


def test_iteration_ends_on_a_normal_close_after_the_queued_messages() -> None:
    def handler(ws: websockets.sync.server.ServerConnection) -> None:
        for n in range(3):
            ws.send(f"m{n}")
        ws.close(1000)

    with websockets_server(handler) as uri:
        conn = connect(uri)
        wait_until(lambda: conn.closed, "the server's close")
        assert list(conn) == ["m0", "m1", "m2"]
        with pytest.raises(wskit.ConnectionClosedOK):
            conn.recv()


def test_the_receive_queue_is_bounded(wskit_server: StartServer) -> None:
    total = 200

    async def flood(conn: wskit.Conn) -> None:
        for n in range(total):
            await conn.send(f"{n:04d}" + "z" * 1000)
        await conn.wait_closed()

    server = wskit_server(flood)
    with connect(server.uri, max_queue=4) as conn:
        # The reader stops once four messages wait; give it every chance to overfill.
        for _ in range(20):
            time.sleep(0.01)
            assert len(conn._messages) <= 4
        received = [conn.recv(timeout=10) for _ in range(total)]
    assert [m[:4] for m in received] == [f"{n:04d}" for n in range(total)]


def test_a_message_over_max_size_fails_the_connection(wskit_server: StartServer) -> None:
    async def big(conn: wskit.Conn) -> None:
        await conn.send("x" * 2000)
        await conn.wait_closed()

    server = wskit_server(big)
    with (
        connect(server.uri, max_size=1000) as conn,
        pytest.raises(wskit.ConnectionClosedError) as info,
    ):
        conn.recv(timeout=10)
    assert info.value.sent_code == 1009


def test_on_ping_and_manual_pongs(wskit_server: StartServer) -> None:
    async def pinger(conn: wskit.Conn) -> None:
        await conn.recv()  # the client is ready to answer
        latency = await asyncio.wait_for(conn.ping(b"hi"), 10)
        await conn.send(f"pong after {latency >= 0}")
        await conn.wait_closed()

    server = wskit_server(pinger)
    pings: list[bytes] = []
    holder: list[wskit.sync.ClientConn] = []

    def on_ping(data: bytes) -> None:
        pings.append(data)
        holder[0].pong(data)  # auto_pong is off: answer by hand, from the reader thread

    conn = connect(server.uri, auto_pong=False, on_ping=on_ping, ping_interval=None)
    holder.append(conn)
    with conn:
        conn.send("ready")
        assert conn.recv(timeout=10) == "pong after True"
    assert pings == [b"hi"]


def test_websockets_server_echo_with_compression() -> None:
    def handler(ws: websockets.sync.server.ServerConnection) -> None:
        try:
            for message in ws:
                ws.send(message)
        except WebsocketsClosed:
            pass

    with websockets_server(handler) as uri, connect(uri) as conn:
        assert "permessage-deflate" in (conn.response.headers.get("Sec-WebSocket-Extensions") or "")
        conn.send("a" * 10_000)
        assert conn.recv() == "a" * 10_000
        conn.send(b"\x01" * 10_000)
        assert conn.recv() == b"\x01" * 10_000
