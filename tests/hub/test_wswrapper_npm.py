"""The npm ``ws-wrapper`` 3.x client (in Node, on ``ws``) against the hub.

``tests/peers/wswrapper_client.mjs`` runs the real client and takes commands
as JSON lines; :class:`WsWrapperPeer` drives it. Events, channels, requests
both ways, resolutions and both kinds of rejection go through the client's
own code, so a wire detail the hub gets wrong breaks these tests.
"""

import asyncio
import contextlib
import itertools
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import wskit
from conftest import NodeRuntime
from wskit.hub import (
    Answer,
    Client,
    ClientError,
    Event,
    Hub,
    MiddlewareOutcome,
    RequestError,
)

PEER = Path(__file__).resolve().parent.parent / "peers" / "wswrapper_client.mjs"


class WsWrapperPeer:
    """A running ``wswrapper_client.mjs``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seq = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, node: NodeRuntime, url: str) -> "WsWrapperPeer":
        process = await asyncio.create_subprocess_exec(
            *node.command(PEER, url),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            **node.subprocess_kwargs(),
        )
        peer = cls(process)
        assert await peer.next_event() == {"type": "open"}
        return peer

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            message = json.loads(line)
            if message.get("event") == "error":  # the peer could not run a command
                for future in self._waiting.values():
                    future.set_exception(AssertionError(message["message"]))
                self._waiting.clear()
            elif message.get("type") in ("ack", "result"):
                self._waiting.pop(message["seq"]).set_result(message)
            else:
                await self.events.put(message)

    async def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command; return its ack (or, for a request, its result)."""
        assert self.process.stdin is not None
        seq = next(self._seq)
        future = self._waiting[seq] = asyncio.get_running_loop().create_future()
        self.process.stdin.write(json.dumps({"op": op, "seq": seq, **fields}).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(future, 10)

    async def request(self, event: str, *args: Any, channel: str | None = None) -> dict[str, Any]:
        return await self.command("request", event=event, args=list(args), channel=channel)

    async def next_event(self, timeout: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._reader.cancel()


@contextlib.asynccontextmanager
async def hub_and_peer(hub: Hub, node: NodeRuntime) -> AsyncIterator[tuple[WsWrapperPeer, Client]]:
    """Serve ``hub``; connect one ws-wrapper peer; yield it and its hub client."""
    async with wskit.serve(hub, "127.0.0.1", 0) as server:
        peer = await WsWrapperPeer.start(node, f"ws://127.0.0.1:{server.port}/hub?id=node")
        try:
            # The client is registered before the hub reads its first message.
            for _ in range(500):
                client = hub.get("node")
                if client is not None:
                    break
                await asyncio.sleep(0.01)
            assert client is not None
            yield peer, client
        finally:
            await peer.stop()


@contextlib.asynccontextmanager
async def hub_and_peers(
    hub: Hub, node: NodeRuntime, *ids: str
) -> AsyncIterator[dict[str, tuple[WsWrapperPeer, Client]]]:
    """Serve ``hub``; connect one ws-wrapper peer per id; yield them with their hub clients."""
    async with wskit.serve(hub, "127.0.0.1", 0) as server:
        peers: dict[str, tuple[WsWrapperPeer, Client]] = {}
        try:
            for client_id in ids:
                url = f"ws://127.0.0.1:{server.port}/hub?id={client_id}"
                peer = await WsWrapperPeer.start(node, url)
                for _ in range(500):
                    client = hub.get(client_id)
                    if client is not None:
                        break
                    await asyncio.sleep(0.01)
                assert client is not None
                peers[client_id] = (peer, client)
            yield peers
        finally:
            for peer, _client in peers.values():
                await peer.stop()


def node_hub(**options: Any) -> Hub:
    return Hub(id_generator=lambda request: request.query.partition("id=")[2], **options)


async def test_events_both_ways_on_channels(node: NodeRuntime) -> None:
    hub = node_hub()
    received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    @hub.on("hello")
    def hello(client: Client, name: str, count: int, extra: dict[str, list[int]]) -> None:
        received.put_nowait(("hello", (client.id, name, count, extra)))

    @hub.of("chat").on("say")
    def say(text: str) -> None:
        received.put_nowait(("chat say", text))

    @hub.on("say")
    def say_on_default(text: str) -> None:
        received.put_nowait(("default say", text))

    async with hub_and_peer(hub, node) as (peer, client):
        await peer.command("emit", event="hello", args=["ann", 3, {"k": [1, 2]}])
        assert await asyncio.wait_for(received.get(), 5) == (
            "hello",
            ("node", "ann", 3, {"k": [1, 2]}),
        )
        await peer.command("emit", event="say", args=["on chat"], channel="chat")
        await peer.command("emit", event="say", args=["on default"])
        assert await asyncio.wait_for(received.get(), 5) == ("chat say", "on chat")
        assert await asyncio.wait_for(received.get(), 5) == ("default say", "on default")

        await peer.command("listen", event="news")
        await peer.command("listen", event="news", channel="chat")
        client.emit("news", "to one", 1)
        client.of("chat").emit("news", "to one on chat")
        hub.emit("news", {"to": "all"})
        hub.of("chat").emit("news", None, True, 2.5)
        client.join("room")
        hub.to("room").emit("news", "to the room")
        client.to("room").emit("news", "not to the sender")
        client.emit("news", "last")
        events = [await peer.next_event() for _ in range(6)]
        assert events == [
            {"type": "event", "channel": None, "event": "news", "args": ["to one", 1]},
            {"type": "event", "channel": "chat", "event": "news", "args": ["to one on chat"]},
            {"type": "event", "channel": None, "event": "news", "args": [{"to": "all"}]},
            {"type": "event", "channel": "chat", "event": "news", "args": [None, True, 2.5]},
            {"type": "event", "channel": None, "event": "news", "args": ["to the room"]},
            {"type": "event", "channel": None, "event": "news", "args": ["last"]},
        ]


async def test_client_requests_resolve_and_reject(node: NodeRuntime) -> None:
    hub = node_hub()
    hub.on("add", lambda a, b: a + b)

    @hub.on("slow_upper")
    async def slow_upper(text: str) -> str:
        await asyncio.sleep(0.01)
        return text.upper()

    @hub.on("fail")
    async def fail() -> None:
        raise ClientError("server boom")

    hub.on("nothing", lambda: None)

    @hub.of("chat").on("where")
    def where(client: Client) -> str:
        return f"{client.id} on chat"

    @hub.on("typed")
    def typed(n: int) -> int:
        return n * 2

    async with hub_and_peer(hub, node) as (peer, _client):
        assert await peer.request("add", 2, 3) == {
            "type": "result",
            "seq": 1,
            "ok": True,
            "value": 5,
        }
        assert (await peer.request("slow_upper", "abc"))["value"] == "ABC"
        assert (await peer.request("nothing"))["value"] is None
        assert (await peer.request("where", channel="chat"))["value"] == "node on chat"
        assert (await peer.request("typed", 21))["value"] == 42

        async def rejection(event: str, *args: Any, channel: str | None = None) -> Any:
            result = await peer.request(event, *args, channel=channel)
            assert result["ok"] is False, result
            return result["error"]

        # The hub's rejections arrive as Errors (it marks them with "_": 1).
        assert await rejection("fail") == {
            "isError": True,
            "message": "server boom",
            "props": {},
        }
        assert (await rejection("missing"))["message"] == "No event listener for 'missing'"
        assert (await rejection("missing", channel="chat"))[
            "message"
        ] == "No event listener for 'missing' on channel 'chat'"
        assert (await rejection("missing", channel="nowhere"))[
            "message"
        ] == "Channel 'nowhere' does not exist"
        error = await rejection("typed", "21")
        assert error["isError"] is True
        assert error["message"] == "argument 'n': expected int, got str"
        # And the hub goes on.
        assert (await peer.request("add", 1, 1))["value"] == 2


async def test_hub_requests_to_the_client(node: NodeRuntime) -> None:
    hub = node_hub()
    async with hub_and_peer(hub, node) as (peer, client):
        await peer.command("answer", event="add", mode="add")
        await peer.command("answer", event="later", mode="async", value={"deep": [1, None]})
        await peer.command("answer", event="undefined", mode="value")
        await peer.command("answer", event="fail", mode="error", message="client boom")
        await peer.command("answer", event="refuse", mode="plain", value="plain nope")
        await peer.command("answer", event="refuse_object", mode="plain", value={"code": 7})
        await peer.command("answer", event="hang", mode="never")
        await peer.command("answer", event="add", mode="value", value="chat add", channel="chat")

        assert await client.request("add", 2, 3, timeout=5) == 5
        assert await client.request("later", timeout=5) == {"deep": [1, None]}
        assert await client.request("undefined", timeout=5) is None
        assert await client.of("chat").request("add", 1, timeout=5) == "chat add"

        with pytest.raises(RequestError, match="client boom") as error:
            await client.request("fail", timeout=5)
        assert error.value.data == {"message": "client boom"}
        with pytest.raises(RequestError, match="plain nope") as error:
            await client.request("refuse", timeout=5)
        assert error.value.data == "plain nope"
        with pytest.raises(RequestError) as error:
            await client.request("refuse_object", timeout=5)
        assert error.value.data == {"code": 7}
        with pytest.raises(RequestError, match="No event listener for 'absent'"):
            await client.request("absent", timeout=5)
        with pytest.raises(RequestError, match="Channel 'nowhere' does not exist"):
            await client.of("nowhere").request("add", timeout=5)
        with pytest.raises(RequestError, match="timed out"):
            await client.request("hang", timeout=0.1)
        # The client ignores the cancel message and goes on answering.
        assert await client.request("add", 1, 2, timeout=5) == 3

        # Several requests in flight at once are matched by id.
        results = await asyncio.gather(*(client.request("add", i, i, timeout=5) for i in range(10)))
        assert results == [2 * i for i in range(10)]


async def test_close_codes_both_ways(node: NodeRuntime) -> None:
    hub = node_hub()
    closes: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    hub.on("disconnect", lambda client, code, reason: closes.put_nowait((code, reason)))

    async with hub_and_peer(hub, node) as (peer, client):
        await peer.command("answer", event="hang", mode="never")
        pending = asyncio.create_task(client.request("hang"))
        await peer.command("close", code=4000, reason="bye")
        assert await peer.next_event() == {"type": "close", "code": 4000, "reason": "bye"}
        assert await asyncio.wait_for(closes.get(), 5) == (4000, "bye")
        with pytest.raises(RequestError, match="disconnected"):
            await asyncio.wait_for(pending, 5)

    async with hub_and_peer(hub, node) as (peer, _client):
        assert await hub.disconnect("node", 4001, "kicked")
        event = await peer.next_event()
        assert (event["type"], event["code"], event["reason"]) == ("close", 4001, "kicked")
        code, _reason = await asyncio.wait_for(closes.get(), 5)
        assert code == 4001


async def test_bytes_the_hub_sends_come_back_as_the_same_bytes(node: NodeRuntime) -> None:
    hub = node_hub()

    @hub.on("echo")
    def echo(data: bytes) -> bytes:
        return data

    async with hub_and_peer(hub, node) as (peer, client):
        await peer.command("listen", event="blob")
        client.emit("blob", b"\x00\x01\xff")
        event = await peer.next_event()
        assert event["args"] == ["AAH/"]  # base64, as the npm client reads it
        # The npm client sends back what it got: the hub's bytes parameter reads it.
        answer = await peer.request("echo", *event["args"])
        assert answer == {"type": "result", "seq": answer["seq"], "ok": True, "value": "AAH/"}
        answer = await peer.request("echo", "QUFILw=")
        assert answer["ok"] is False
        assert answer["error"]["message"] == "argument 'data': not valid base64"


async def test_rooms_with_exclusions_and_close_room(node: NodeRuntime) -> None:
    hub = node_hub()
    left: list[tuple[str, str]] = []
    hub.on_leave(lambda client, room: left.append((client.id, room)))

    async with hub_and_peers(hub, node, "ann", "bob", "cy", "dee") as peers:
        for client_id, rooms in (("ann", ("a", "b")), ("bob", ("a",)), ("cy", ("b",))):
            for room in rooms:
                peers[client_id][1].join(room)
        for peer, _client in peers.values():
            await peer.command("listen", event="news")

        async def news(client_id: str) -> list[Any]:
            # Every peer gets the marker last: what came before it is all it got.
            received = []
            for _ in range(5):
                event = await peers[client_id][0].next_event()
                assert event["type"] == "event" and event["event"] == "news", event
                if event["args"] == ["marker"]:
                    return received
                received.append(event["args"])
            raise AssertionError(f"no marker for {client_id}: {received}")

        # ann is in both rooms and gets it once; bob is excluded; dee is in neither.
        hub.to("a", "b").exclude("bob").emit("news", "to a and b")
        hub.emit("news", "marker")
        assert await news("ann") == [["to a and b"]]
        assert await news("bob") == []
        assert await news("cy") == [["to a and b"]]
        assert await news("dee") == []

        # Closing "a" makes ann and bob leave it; they stay connected, ann in "b".
        assert await hub.close_room("a") == 2
        assert sorted(left) == [("ann", "a"), ("bob", "a")]
        assert hub.count("a") == 0
        hub.to("a").emit("news", "to a")
        hub.to("b").emit("news", "to b")
        hub.emit("news", "to all")
        hub.emit("news", "marker")
        assert await news("ann") == [["to b"], ["to all"]]
        assert await news("bob") == [["to all"]]
        assert await news("cy") == [["to b"], ["to all"]]
        assert await news("dee") == [["to all"]]
        assert sorted(hub.clients) == ["ann", "bob", "cy", "dee"]


async def test_client_broadcast_reaches_the_others(node: NodeRuntime) -> None:
    hub = node_hub()

    @hub.on("shout")
    def shout(client: Client, text: str) -> str:
        client.broadcast.emit("news", f"{client.id}: {text}")
        client.of("chat").broadcast.emit("news", f"{client.id} on chat: {text}")
        return "shouted"

    async with hub_and_peers(hub, node, "ann", "bob", "cy") as peers:
        for peer, _client in peers.values():
            await peer.command("listen", event="news")
            await peer.command("listen", event="news", channel="chat")
        ann = peers["ann"][0]
        # The answer is written after the broadcast: ann has nothing before it.
        assert (await ann.request("shout", "hi"))["value"] == "shouted"
        hub.emit("news", "marker")
        assert await ann.next_event() == {
            "type": "event",
            "channel": None,
            "event": "news",
            "args": ["marker"],
        }
        for client_id in ("bob", "cy"):
            peer = peers[client_id][0]
            assert [await peer.next_event() for _ in range(3)] == [
                {"type": "event", "channel": None, "event": "news", "args": ["ann: hi"]},
                {"type": "event", "channel": "chat", "event": "news", "args": ["ann on chat: hi"]},
                {"type": "event", "channel": None, "event": "news", "args": ["marker"]},
            ]


async def test_the_hub_refuses_to_emit_reserved_names(node: NodeRuntime) -> None:
    hub = node_hub()
    async with hub_and_peer(hub, node) as (peer, client):
        # The peer reports "error" and "close" (the socket's own events, where
        # a reserved name would land) and every "news".
        await peer.command("listen", event="news")
        client.join("room")
        emits = (
            lambda: hub.emit("error", "boom"),
            lambda: hub.to("room").emit("message", "x"),
            lambda: client.emit("close", 1000),
            lambda: client.broadcast.emit("open"),
            lambda: client.to("room").emit("disconnect"),
        )
        for emit in emits:
            with pytest.raises(ValueError, match="reserved event name"):
                emit()
        with pytest.raises(ValueError, match="'connect' is a reserved event name"):
            await client.request("connect", timeout=5)
        with pytest.raises(ValueError, match="'error' is a reserved event name"):
            await client.request("error", timeout=5)
        # Nothing went out: the next thing the client sees is this.
        hub.emit("news", "after")
        assert await peer.next_event() == {
            "type": "event",
            "channel": None,
            "event": "news",
            "args": ["after"],
        }
        assert peer.events.empty()


async def test_hub_request_timeout_applies_to_requests_the_client_never_answers(
    node: NodeRuntime,
) -> None:
    hub = node_hub(request_timeout=0.2)
    async with hub_and_peer(hub, node) as (peer, client):
        await peer.command("answer", event="hang", mode="never")
        await peer.command("answer", event="hang", mode="never", channel="chat")
        await peer.command("answer", event="later", mode="async", value="late", delay=400)
        with pytest.raises(RequestError, match="timed out"):
            await client.request("hang")
        with pytest.raises(RequestError, match="timed out"):
            await client.of("chat").request("hang")
        # Overridden per call: math.inf waits while the client stays connected.
        assert await client.request("later", timeout=math.inf) == "late"
        await peer.command("answer", event="add", mode="add")
        assert await client.request("add", 1, 2) == 3


async def test_middleware_and_on_any_as_the_client_sees_them(node: NodeRuntime) -> None:
    hub = node_hub()
    seen: list[tuple[str, str, tuple[Any, ...]]] = []
    handled: list[str] = []

    @hub.use
    def record(client: Client, event: Event) -> MiddlewareOutcome:
        seen.append((client.id, event.name, event.args))
        return event

    @hub.use
    def gate(client: Client, event: Event) -> MiddlewareOutcome:
        if event.name == "secret":
            return None
        if event.name == "forbidden":
            raise ClientError("not for you")
        if event.name == "ping":
            return Answer("pong from the middleware")
        if event.name == "add":
            return event._replace(args=(*event.args, 100))
        return event

    @hub.on("secret")
    def secret() -> str:
        handled.append("secret")
        return "leaked"

    @hub.on("forbidden")
    def forbidden() -> str:
        handled.append("forbidden")
        return "leaked"

    @hub.on("ping")
    def ping() -> str:
        handled.append("ping")
        return "pong from the handler"

    @hub.on("add")
    def add(a: int, b: int, c: int) -> int:
        return a + b + c

    @hub.on_any
    def anything(client: Client, event: str, *args: Any) -> dict[str, Any]:
        handled.append(event)
        return {"unknown": event, "args": list(args), "from": client.id}

    async with hub_and_peer(hub, node) as (peer, _client):

        async def rejection(event: str, *args: Any) -> Any:
            result = await peer.request(event, *args)
            assert result["ok"] is False, result
            return result["error"]

        assert await rejection("secret") == {
            "isError": True,
            "message": "Event 'secret' was refused",
            "props": {},
        }
        assert (await rejection("forbidden"))["message"] == "not for you"
        assert (await peer.request("ping"))["value"] == "pong from the middleware"
        assert (await peer.request("add", 1, 2))["value"] == 103
        assert (await peer.request("dance", "slow", 2))["value"] == {
            "unknown": "dance",
            "args": ["slow", 2],
            "from": "node",
        }
        # An event (not a request) the middleware stops gets no handler either.
        await peer.command("emit", event="secret")
        await peer.command("emit", event="twirl", args=[1])
        assert (await peer.request("add", 0, 0))["value"] == 100
        assert handled == ["dance", "twirl"]
        assert [name for _id, name, _args in seen] == [
            "secret",
            "forbidden",
            "ping",
            "add",
            "dance",
            "secret",
            "twirl",
            "add",
        ]
        assert seen[3] == ("node", "add", (1, 2))  # the first middleware saw it unchanged
