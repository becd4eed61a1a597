"""wskit.js in Node against a :class:`Hub`, from the packed npm package.

The client runs in ``tests/peers/wskit_client.mjs`` with the ``ws``
package's WebSocket, driven by JSON lines (see :class:`interop.support.NodePeer`).
That script imports ``wskit-client``: it runs in the Node project where
:func:`js.packed.packed_client` installed the tarball of ``npm pack js/``,
so what would be published is what is tested.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wskit
from conftest import NodeRuntime, unused_port
from interop.support import NodePeer
from js.packed import PackedClient, packed_client
from wskit.hub import Client, ClientError, Hub, RequestError

JsClient = Callable[..., Awaitable[NodePeer]]


class HubServer:
    """A hub served on localhost, with the clients it sees and the raw messages."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.clients: asyncio.Queue[Client] = asyncio.Queue()
        self.messages: list[str | bytes] = []
        self.server: wskit.Server | None = None
        self.port = 0
        hub.on("connect", self.clients.put_nowait)
        hub.on("message", lambda client, message: self.messages.append(message))

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self.server = await self.hub.serve("127.0.0.1", self.port)
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def client(self, timeout: float = 10.0) -> Client:
        return await asyncio.wait_for(self.clients.get(), timeout)


@pytest.fixture
async def served() -> AsyncIterator[Callable[..., Awaitable[HubServer]]]:
    servers: list[HubServer] = []

    async def start(**options: Any) -> HubServer:
        server = HubServer(Hub(**options))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture(scope="session")
def packed(node: NodeRuntime, tmp_path_factory: pytest.TempPathFactory) -> PackedClient:
    return packed_client(tmp_path_factory)


@pytest.fixture
async def js_client(node: NodeRuntime, packed: PackedClient) -> AsyncIterator[JsClient]:
    peers: list[NodePeer] = []
    script = packed.project / "wskit_client.mjs"

    async def start(url: str, **options: Any) -> NodePeer:
        proc = await asyncio.create_subprocess_exec(
            *node.command(script, url, json.dumps(options)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **node.subprocess_kwargs(),
        )
        peer = NodePeer(proc, "wskit_client.mjs")
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.stop()


async def connected(
    served: Callable[..., Awaitable[HubServer]], js_client: JsClient, **options: Any
) -> tuple[HubServer, NodePeer, Client]:
    server = await served(**options)
    peer = await js_client(server.url)
    await peer.event("open")
    return server, peer, await server.client()


async def request(peer: NodePeer, tag: str, event: str, *args: Any, **fields: Any) -> Any:
    peer.send("request", tag=tag, event=event, args=list(args), **fields)
    return await response(peer, tag)


async def response(peer: NodePeer, tag: str) -> dict[str, Any]:
    while True:
        answer = await peer.event("response")
        if answer["tag"] == tag:
            return answer
        peer._buffer.append(answer)  # another request's answer: keep it for later
        await asyncio.sleep(0.01)


async def got(peer: NodePeer, name: str) -> dict[str, Any]:
    while True:
        event = await peer.event("got")
        if event["name"] == name:
            return event
        peer._buffer.append(event)
        await asyncio.sleep(0.01)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- events


async def test_events_both_ways(served: Any, js_client: JsClient) -> None:
    received: list[tuple[str, Any]] = []
    server, peer, client = await connected(served, js_client)
    server.hub.on("hello", lambda who, n: received.append((who, n)))

    peer.send("emit", event="hello", args=["node", 1])
    await until(lambda: received == [("node", 1)])

    peer.send("listen", event="news")
    peer.send("listen", event="all")
    await request(peer, "barrier", "nothing")  # the listeners are in place
    client.emit("news", {"title": "hi"}, [1, 2])
    assert (await got(peer, "news"))["args"] == [{"title": "hi"}, [1, 2]]
    server.hub.emit("all", "everyone")
    assert (await got(peer, "all"))["args"] == ["everyone"]


async def test_ignores_foreign_messages(served: Any, js_client: JsClient) -> None:
    _, peer, client = await connected(served, js_client)
    peer.send("listen", event="x")
    peer.send("listen", event="open")
    await request(peer, "barrier", "nothing")
    client.send("not json")
    client.send(json.dumps({"ws-wrapper": False, "a": ["x", "foreign"]}))
    client.send(json.dumps([1, 2]))
    client.send(json.dumps({"a": ["open"]}))  # a lifecycle name never comes from the wire
    client.emit("x", "real")
    event = await got(peer, "x")
    assert event["args"] == ["real"]
    await request(peer, "barrier2", "nothing")
    assert [e for e in peer.seen if e["event"] == "got"] == [event]


# --------------------------------------------------------------------------- requests


async def test_requests_to_the_server(served: Any, js_client: JsClient) -> None:
    server, peer, _ = await connected(served, js_client)
    hub = server.hub

    @hub.on("add")
    def add(a: int, b: int) -> int:
        return a + b

    @hub.on("slow_upper")
    async def slow_upper(text: str) -> str:
        await asyncio.sleep(0.05)
        return text.upper()

    @hub.on("fail")
    def fail() -> None:
        raise ClientError("bad things")

    hub.of("math").on("mul", lambda a, b: a * b)

    assert await request(peer, "1", "add", 2, 3) == {
        "event": "response",
        "tag": "1",
        "ok": True,
        "value": 5,
    }
    assert (await request(peer, "2", "slow_upper", "abc"))["value"] == "ABC"
    answer = await request(peer, "3", "fail")
    assert (answer["ok"], answer["isError"], answer["message"]) == (False, True, "bad things")
    answer = await request(peer, "4", "missing")
    assert answer["message"] == "No event listener for 'missing'"
    assert (await request(peer, "5", "mul", 6, 7, channel="math"))["value"] == 42
    answer = await request(peer, "6", "div", channel="math")
    assert answer["message"] == "No event listener for 'div' on channel 'math'"


async def test_requests_to_the_js_client(served: Any, js_client: JsClient) -> None:
    _, peer, client = await connected(served, js_client)
    peer.send("answer", event="sum", mode="sum")
    peer.send("answer", event="boom", mode="throw", value="it broke")
    peer.send("answer", event="nope", mode="reject", value={"code": 7})
    peer.send("answer", event="later", mode="slow", value="done")
    peer.send("answer", event="echo", mode="echo", channel="tools")
    await request(peer, "barrier", "nothing")

    assert await client.request("sum", 1, 2, 3, timeout=5) == 6
    with pytest.raises(RequestError, match="it broke") as info:
        await client.request("boom", timeout=5)
    assert info.value.data == {"message": "it broke"}
    with pytest.raises(RequestError) as info:
        await client.request("nope", timeout=5)
    assert info.value.data == {"code": 7}
    with pytest.raises(RequestError, match="No event listener for 'unknown'"):
        await client.request("unknown", timeout=5)
    assert await client.request("later", 50, timeout=5) == "done"
    assert await client.of("tools").request("echo", "a", 1, timeout=5) == ["a", 1]
    with pytest.raises(RequestError, match=r"^No event listener for 'echo'$"):
        await client.request("echo", timeout=5)

    # Several at once, answered out of order.
    results = await asyncio.gather(
        client.request("later", 100, timeout=5), client.request("sum", 5, 5, timeout=5)
    )
    assert results == ["done", 10]


async def test_server_handler_requests_the_js_client(served: Any, js_client: JsClient) -> None:
    """An async hub handler awaits a request to the client that called it."""
    server, peer, _ = await connected(served, js_client)
    peer.send("answer", event="sum", mode="sum")

    @server.hub.on("double_via_client")
    async def double_via_client(client: Client, n: int) -> int:
        result: int = await client.request("sum", n, n, timeout=5)
        return result

    assert (await request(peer, "1", "double_via_client", 21))["value"] == 42


async def test_request_timeout_cancels_on_the_server(served: Any, js_client: JsClient) -> None:
    server, peer, _ = await connected(served, js_client)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @server.hub.on("forever")
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    answer = await request(peer, "1", "forever", timeout=300)
    assert answer["ok"] is False
    assert answer["message"] == "request 'forever' timed out after 300 ms"
    await asyncio.wait_for(cancelled.wait(), 5)
    sent = [json.loads(m) for m in server.messages]
    request_id = next(m["i"] for m in sent if m.get("a") == ["forever"])
    assert {"i": request_id, "x": 1} in sent
    # A request timing out at the server is cancelled in the client: no late answer.
    peer.send("answer", event="later", mode="slow", value="late")
    await request(peer, "barrier", "nothing")
    client = next(iter(server.hub.clients.values()))
    with pytest.raises(RequestError, match="timed out"):
        await client.request("later", 300, timeout=0.1)
    await asyncio.sleep(0.4)
    assert not any("late" in str(m) for m in server.messages)


# --------------------------------------------------------------------------- channels


async def test_channels(served: Any, js_client: JsClient) -> None:
    server, peer, client = await connected(served, js_client)
    got_chat: list[Any] = []
    server.hub.of("chat").on("say", lambda text: got_chat.append(text))
    server.hub.on("say", lambda text: got_chat.append(("default", text)))
    peer.send("listen", event="say", channel="chat")
    peer.send("listen", event="say")
    await request(peer, "barrier", "nothing")

    peer.send("emit", event="say", args=["on chat"], channel="chat")
    peer.send("emit", event="say", args=["on default"])
    await until(lambda: len(got_chat) == 2)
    assert got_chat == ["on chat", ("default", "on default")]

    client.of("chat").emit("say", "to chat")
    event = await got(peer, "say")
    assert (event["channel"], event["args"]) == ("chat", ["to chat"])
    server.hub.of("chat").emit("say", "hub chat")
    event = await got(peer, "say")
    assert (event["channel"], event["args"]) == ("chat", ["hub chat"])
    client.emit("say", "default")
    event = await got(peer, "say")
    assert (event["channel"], event["args"]) == (None, ["default"])


# --------------------------------------------------------------------------- rooms


async def test_join_and_leave(served: Any, js_client: JsClient) -> None:
    server, peer, client = await connected(served, js_client, client_rooms=True)
    peer.send("listen", event="news")
    peer.send("join", tag="j", room="lobby")
    assert (await response(peer, "j"))["value"] is True
    assert client.is_joined("lobby")
    server.hub.to("lobby").emit("news", "in lobby")
    assert (await got(peer, "news"))["args"] == ["in lobby"]

    peer.send("leave", tag="l", room="lobby")
    assert (await response(peer, "l"))["value"] is True
    assert not client.is_joined("lobby")
    server.hub.to("lobby").emit("news", "missed")
    client.emit("news", "direct")
    assert (await got(peer, "news"))["args"] == ["direct"]


async def test_join_refused(served: Any, js_client: JsClient) -> None:
    _, peer, _ = await connected(served, js_client, client_rooms=lambda client, room: room != "vip")
    peer.send("join", tag="j", room="vip")
    answer = await response(peer, "j")
    assert answer["message"] == "not allowed to join room 'vip'"
    peer.send("state", tag="s")
    assert (await peer.event("state"))["rooms"] == []


# --------------------------------------------------------------------------- reconnection


async def test_reconnects_and_rejoins(served: Any, js_client: JsClient) -> None:
    server, peer, client = await connected(served, js_client, client_rooms=True)
    peer.send("listen", event="news")
    peer.send("answer", event="later", mode="slow", value="never")
    peer.send("join", tag="j", room="lobby")
    await response(peer, "j")

    @server.hub.on("stall")
    async def stall() -> None:
        await asyncio.sleep(60)

    peer.send("request", tag="pending", event="stall", args=[])
    await until(lambda: any("stall" in str(m) for m in server.messages))
    await client.disconnect(1012, "restarting")

    assert await peer.event("close") == {"event": "close", "code": 1012, "reason": "restarting"}
    answer = await response(peer, "pending")
    assert (answer["ok"], answer["message"]) == (False, "disconnected")
    reconnecting = await peer.event("reconnecting")
    assert reconnecting["attempt"] == 1
    assert 125 <= reconnecting["delay"] <= 250
    await peer.event("open")
    again = await server.client()
    assert again is not client
    assert again.is_joined("lobby")
    server.hub.to("lobby").emit("news", "after reconnect")
    assert (await got(peer, "news"))["args"] == ["after reconnect"]
    # Backoff starts over after a successful connection.
    await again.disconnect(1012)
    assert (await peer.event("reconnecting"))["attempt"] == 1
    await peer.event("open")


async def test_queue_while_the_server_is_down(js_client: JsClient, served: Any) -> None:
    server = await served(client_rooms=True)
    received: list[int] = []
    server.hub.on("n", received.append)
    server.hub.on("add", lambda a, b: a + b)
    peer = await js_client(
        server.url, maxQueue=5, backoff={"initial": 100, "max": 200, "factor": 2, "jitter": 0}
    )
    await peer.event("open")
    first = await server.client()
    peer.send("join", tag="j", room="lobby")
    await response(peer, "j")

    await server.stop()
    assert (await peer.event("close"))["code"] == 1001
    assert await peer.event("reconnecting") == {"event": "reconnecting", "attempt": 1, "delay": 100}
    # 1 request then 8 events: 5 fit; the oldest 4 (the request first) are dropped.
    peer.send("request", tag="dropped", event="add", args=[1, 1])
    peer.send("emitMany", event="n", count=8)
    peer.send("request", tag="queued", event="add", args=[2, 3])
    answer = await response(peer, "dropped")
    assert (answer["ok"], answer["message"]) == (False, "dropped: send queue full")
    drops = [await peer.event("dropped") for _ in range(5)]
    assert drops[0] == {
        "event": "dropped",
        "name": "add",
        "channel": None,
        "request": True,
        "total": 1,
    }
    assert [(d["name"], d["total"]) for d in drops[1:]] == [("n", 2), ("n", 3), ("n", 4), ("n", 5)]
    peer.send("state", tag="s")
    state = await peer.event("state")
    assert (state["connected"], state["queued"], state["dropped"]) == (False, 5, 5)

    # More failed attempts, with growing delays capped at max.
    delays = [(await peer.event("reconnecting"))["delay"] for _ in range(2)]
    assert delays == [200, 200]
    await server.start()  # same port
    await peer.event("open")
    again = await server.client()
    assert again is not first
    assert again.is_joined("lobby")
    assert (await response(peer, "queued"))["value"] == 5
    await until(lambda: len(received) == 4)
    assert received == [4, 5, 6, 7]


async def test_close_stops_reconnecting(served: Any, js_client: JsClient) -> None:
    server, peer, _ = await connected(served, js_client)
    peer.send("close", code=4000, reason="bye")
    assert (await peer.event("close"))["code"] == 4000  # as the server echoed it
    assert (await request(peer, "after", "x"))["message"] == "closed"
    peer.send("emit", event="x")
    assert (await peer.event("emit_failed"))["message"] == "closed"
    await asyncio.sleep(0.4)
    assert not [e for e in peer.seen if e["event"] == "reconnecting"]
    assert server.clients.empty()


async def test_no_reconnect_option(served: Any, js_client: JsClient) -> None:
    server = await served()
    peer = await js_client(server.url, reconnect=False)
    await peer.event("open")
    client = await server.client()
    await client.disconnect(1000)
    assert (await peer.event("close"))["code"] == 1000
    assert (await request(peer, "after", "x"))["message"] == "closed"
    await asyncio.sleep(0.4)
    assert not [e for e in peer.seen if e["event"] == "reconnecting"]


async def test_first_connection_retries(js_client: JsClient, served: Any) -> None:
    """A client started before its server connects once the server is up; emits wait."""
    port = unused_port()
    peer = await js_client(
        f"ws://127.0.0.1:{port}/", backoff={"initial": 50, "max": 100, "jitter": 0}
    )
    peer.send("emit", event="early", args=["queued"])
    assert (await peer.event("reconnecting"))["attempt"] == 1
    server = HubServer(Hub())
    received: list[str] = []
    server.hub.on("early", received.append)
    server.port = port
    await server.start()
    try:
        await peer.event("open", timeout=5)
        await until(lambda: received == ["queued"])
    finally:
        await server.stop()
