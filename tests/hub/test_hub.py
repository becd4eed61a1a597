"""The hub end to end, driven by raw ws-wrapper JSON clients built on ``wskit.connect``.

Every test serves a :class:`~wskit.hub.Hub` on a free port and talks to it
with :class:`Peer`, which speaks the ws-wrapper wire format by hand, so the
tests see exactly what the hub writes. To prove that something was *not*
sent, a test asks the hub a question afterwards: messages on a connection
are ordered, so if the answer is the next message, nothing came before it.
"""

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, TypedDict

import msgspec
import pytest

import wskit
import wskit.hub.rooms as rooms_module
from wskit.exceptions import ConnectionClosed
from wskit.hub import Client, Hub, IrisProtocol, RequestError

# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def serving(hub: Hub, **options: Any) -> AsyncIterator[str]:
    """Serve ``hub`` on a free port; yield its URL."""
    async with wskit.serve(hub, "127.0.0.1", 0, **options) as server:
        yield f"ws://127.0.0.1:{server.port}/"


class Peer:
    """A ws-wrapper client written by hand on a wskit connection."""

    def __init__(self, conn: wskit.ClientConn) -> None:
        self.conn = conn
        self.backlog: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, url: str, **options: Any) -> "Peer":
        return cls(await wskit.connect(url, **options))

    async def send(self, obj: Any) -> None:
        await self.conn.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def _read(self, timeout: float) -> dict[str, Any]:
        message = await asyncio.wait_for(self.conn.recv(), timeout)
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message (those skipped by :meth:`request` first)."""
        if self.backlog:
            return self.backlog.pop(0)
        return await self._read(timeout)

    async def emit(self, event: str, *args: Any, channel: str | None = None) -> None:
        message: dict[str, Any] = {"a": [event, *args]}
        if channel is not None:
            message["c"] = channel
        await self.send(message)

    async def send_request(self, event: str, *args: Any, channel: str | None = None) -> int:
        request_id = next(self._ids)
        message: dict[str, Any] = {"i": request_id, "a": [event, *args]}
        if channel is not None:
            message["c"] = channel
        await self.send(message)
        return request_id

    async def response(self, request_id: int, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for the answer to ``request_id``; keep other messages for :meth:`recv`."""
        while True:
            message = await self._read(timeout)
            if message.get("i") == request_id and "a" not in message:
                return message
            self.backlog.append(message)

    async def request(self, event: str, *args: Any, channel: str | None = None) -> dict[str, Any]:
        """Send a request; return the raw response message."""
        return await self.response(await self.send_request(event, *args, channel=channel))

    async def call(self, event: str, *args: Any, channel: str | None = None) -> Any:
        """Send a request; return its data, failing the test if it was rejected."""
        answer = await self.request(event, *args, channel=channel)
        assert "e" not in answer, answer
        return answer.get("d")

    async def next_only(self, expected: dict[str, Any]) -> None:
        """Assert that the next message is ``expected`` (nothing else came first)."""
        assert await self.recv() == expected

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.conn.close(code, reason)


def pinging_hub(**options: Any) -> Hub:
    """A hub with a ``ping`` request, the round trip the tests synchronize on."""
    hub = Hub(**options)
    hub.on("ping", lambda: "pong")
    return hub


def join_room(client: Client, room: str) -> None:
    """An event handler (a lambda cannot annotate its client parameter)."""
    client.join(room)


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def closed_code(peer: Peer, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Read until the connection closes; return the close code and reason received."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(peer.conn.recv(), timeout)
    await peer.conn.wait_closed(timeout)
    return peer.conn.close_code, peer.conn.close_reason


# --------------------------------------------------------------------------- hooks


async def test_connect_disconnect_and_message_hooks() -> None:
    hub = pinging_hub()
    seen: list[Any] = []
    closed = asyncio.Event()

    @hub.on("connect")
    def on_connect(client: Client) -> None:
        seen.append(("connect", client.id, client.id in hub.clients))

    @hub.on("open")  # an alias of connect: both run
    async def on_open(client: Client) -> None:
        seen.append(("open", client.id))

    @hub.on("message")
    def on_message(client: Client, message: str) -> None:
        seen.append(("message", json.loads(message)))

    @hub.on("disconnect")
    def on_disconnect(client: Client, code: int, reason: str) -> None:
        seen.append(("disconnect", client.id, code, reason, client.id in hub.clients))

    @hub.on("close")
    def on_close(client: Client, code: int, reason: str) -> None:
        closed.set()

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("ping") == "pong"
        (client_id,) = hub.clients
        await peer.close(4001, "bye")
        await asyncio.wait_for(closed.wait(), 5)

    assert seen == [
        ("connect", client_id, True),
        ("open", client_id),
        ("message", {"i": 1, "a": ["ping"]}),
        ("disconnect", client_id, 4001, "bye", False),
    ]


async def test_handler_exceptions_are_logged_answered_and_the_hub_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = pinging_hub()
    errors: list[tuple[str, Exception]] = []
    hub.on("error", lambda client, exc: errors.append((client.id, exc)))

    @hub.on("sync_boom")
    def sync_boom() -> None:
        raise RuntimeError("sync went wrong")

    @hub.on("async_boom")
    async def async_boom() -> None:
        await asyncio.sleep(0)
        raise KeyError("missing")

    @hub.on("event_boom")
    def event_boom() -> None:
        raise ValueError("nobody asked")

    async with serving(hub) as url:
        bad, other = await Peer.open(url), await Peer.open(url)
        with caplog.at_level(logging.ERROR, logger="wskit.hub"):
            assert await bad.request("sync_boom") == {
                "i": 1,
                "e": {"message": "sync went wrong"},
                "_": 1,
            }
            answer = await bad.request("async_boom")
            assert answer == {"i": 2, "e": {"message": "'missing'"}, "_": 1}
            await bad.emit("event_boom")  # an event: logged, nothing answered
            assert await bad.call("ping") == "pong"
            assert bad.backlog == []
        assert await other.call("ping") == "pong"
        logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
        assert [type(e) for e in logged] == [RuntimeError, KeyError, ValueError]
        assert [type(e) for _, e in errors] == [RuntimeError, KeyError, ValueError]
        assert len(hub.clients) == 2
        await bad.close()
        await other.close()


# --------------------------------------------------------------------------- handlers


async def test_handler_priority_client_once_on_then_hub_once_on() -> None:
    hub = Hub(id_generator=lambda request: request.query)
    hub.on("who", lambda: "hub on")
    hub.once("who", lambda: "hub once")

    @hub.on("connect")
    def personalize(client: Client) -> None:
        if client.id == "vip":
            client.on("who", lambda: "client on")
            client.once("who", lambda: "client once")

    async with serving(hub) as url:
        vip = await Peer.open(url + "?vip")
        plain = await Peer.open(url + "?plain")
        assert [await vip.call("who") for _ in range(3)] == [
            "client once",
            "client on",
            "client on",
        ]
        # The client's handlers shadowed the hub's: its once is still there.
        assert [await plain.call("who") for _ in range(3)] == ["hub once", "hub on", "hub on"]

        # The same order among four handlers that all exist at once.
        hub.once("who", lambda: "hub once again")
        vip_client = hub.get("vip")
        assert vip_client is not None
        vip_client.once("who", lambda: "client once again")
        assert await vip.call("who") == "client once again"
        assert await vip.call("who") == "client on"
        vip_client.off("who")
        assert await vip.call("who") == "hub once again"
        assert await vip.call("who") == "hub on"
        hub.off("who")
        assert await vip.request("who") == {
            "i": 8,
            "e": {"message": "No event listener for 'who'"},
            "_": 1,
        }
        await vip.close()
        await plain.close()


async def test_requests_answered_by_return_value_sync_and_async() -> None:
    hub = Hub()

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Pair(msgspec.Struct):
        left: str
        right: str

    hub.on("add", lambda a, b: a + b)

    @hub.on("slow_add")
    async def slow_add(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    hub.on("point", lambda: Point(1, 2))
    hub.on("pair", lambda: Pair("l", "r"))
    hub.on("nothing", lambda: None)
    hub.on("unsendable", lambda: object())

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.request("add", 2, 3) == {"i": 1, "d": 5}
        assert await peer.request("slow_add", 4, 5) == {"i": 2, "d": 9}
        assert await peer.call("point") == {"x": 1, "y": 2}
        assert await peer.call("pair") == {"left": "l", "right": "r"}
        assert await peer.request("nothing") == {"i": 5, "d": None}
        answer = await peer.request("unsendable")
        assert answer["_"] == 1
        assert "cannot send the result" in answer["e"]["message"]
        # Requests run concurrently: a slow async handler does not hold up a fast one.
        slow = await peer.send_request("slow_add", 1, 1)
        fast = await peer.send_request("add", 1, 2)
        first = await peer._read(5)
        assert first == {"i": fast, "d": 3}
        assert await peer.response(slow) == {"i": slow, "d": 2}
        await peer.close()


# --------------------------------------------------------------------------- emits and rooms


async def test_emit_to_one_client() -> None:
    ids = iter(["a", "b"])
    hub = Hub(id_generator=lambda request: next(ids))
    hub.on("ping", lambda: "pong")

    @hub.on("poke_me")
    def poke_me(client: Client) -> bool:
        return client.emit("poked", client.id, [1, {"two": 2}])

    async with serving(hub) as url:
        a, b = await Peer.open(url), await Peer.open(url)
        await a.call("ping")
        await b.call("ping")
        assert await a.call("poke_me") is True
        assert a.backlog == [{"a": ["poked", "a", [1, {"two": 2}]]}]
        a.backlog.clear()
        hub.emit_to_client("a", "direct", "only a")
        hub.emit_to_client("nobody", "direct", "lost")
        await a.next_only({"a": ["direct", "only a"]})
        assert await b.call("ping") == "pong"
        assert b.backlog == []  # b received neither message
        await a.close()
        await b.close()


async def test_rooms_queries_and_leave_hook() -> None:
    left: list[tuple[str, str]] = []
    gone = asyncio.Event()
    ids = iter(["alice", "bob", "carol"])
    hub = Hub(id_generator=lambda request: next(ids))
    hub.on("ping", lambda: "pong")
    hub.on_leave(lambda client, room: left.append((client.id, room)))
    hub.on("disconnect", lambda client, code, reason: gone.set())

    @hub.on("join")
    def join(client: Client, room: str) -> list[str]:
        client.join(room)
        return sorted(client.rooms)

    @hub.on("leave")
    def leave(client: Client, room: str) -> bool:
        return client.leave(room)

    async with serving(hub) as url:
        alice, bob, carol = [await Peer.open(url) for _ in range(3)]
        for peer in (alice, bob, carol):
            await peer.call("ping")
        assert sorted(hub.clients) == ["alice", "bob", "carol"]
        assert hub.count() == 3
        assert await alice.call("join", "red") == ["red"]
        assert await alice.call("join", "blue") == ["blue", "red"]
        assert await bob.call("join", "red") == ["red"]
        a, b, c = hub.get("alice"), hub.get("bob"), hub.get("carol")
        assert a is not None and b is not None and c is not None
        assert hub.get("nobody") is None
        assert sorted(x.id for x in hub.clients_in("red")) == ["alice", "bob"]
        assert hub.clients_in("green") == []
        assert (hub.count("red"), hub.count("blue"), hub.count("green")) == (2, 1, 0)
        assert a.rooms == {"red", "blue"}
        assert a.is_joined("blue") and not b.is_joined("blue") and not c.is_joined("red")
        assert sorted(hub.room_names()) == ["blue", "red"]

        assert await bob.call("leave", "red") is True
        assert await bob.call("leave", "red") is False  # not in it any more
        assert left == [("bob", "red")]
        assert hub.count("red") == 1

        await alice.close()
        await asyncio.wait_for(gone.wait(), 5)
        # Leaving every room on disconnect calls the leave hook for each.
        assert sorted(left[1:]) == [("alice", "blue"), ("alice", "red")]
        assert hub.room_names() == []
        assert hub.count() == 2
        await bob.close()
        await carol.close()


async def test_room_emits_broadcast_except_sender_and_emit_to_all() -> None:
    ids = iter(["a", "b", "c"])
    hub = Hub(id_generator=lambda request: next(ids))
    hub.on("ping", lambda: "pong")
    hub.on("join", join_room)

    @hub.on("shout")
    def shout(client: Client, room: str, text: str) -> None:
        client.to(room).emit("heard", client.id, text)

    async with serving(hub) as url:
        a, b, c = [await Peer.open(url) for _ in range(3)]
        for peer in (a, b):
            await peer.call("join", "room")
        await c.call("ping")

        hub.to("room").emit("news", 1)
        await a.next_only({"a": ["news", 1]})
        await b.next_only({"a": ["news", 1]})

        # Broadcast from a: b hears it; a does not (its ping answer comes first).
        assert await a.call("shout", "room", "hi") is None
        assert a.backlog == []
        await b.next_only({"a": ["heard", "a", "hi"]})

        hub.emit("all", True)
        for peer in (a, b, c):
            await peer.next_only({"a": ["all", True]})
        # c was never in the room: its first message is the one to everyone.
        assert c.backlog == []

        hub.of("chat").to("room").emit("chan", "x")
        await a.next_only({"c": "chat", "a": ["chan", "x"]})
        await b.next_only({"c": "chat", "a": ["chan", "x"]})
        assert await c.call("ping") == "pong"
        assert c.backlog == []
        for peer in (a, b, c):
            await peer.close()


async def test_hub_disconnect_by_id() -> None:
    hub = Hub(id_generator=lambda request: "only")
    hub.on("ping", lambda: "pong")
    closes: list[tuple[int, str]] = []
    done = asyncio.Event()

    @hub.on("disconnect")
    def on_disconnect(client: Client, code: int, reason: str) -> None:
        closes.append((code, reason))
        done.set()

    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.call("ping")
        assert await hub.disconnect("nobody") is False
        assert await hub.disconnect("only", 4002, "kicked") is True
        assert await closed_code(peer) == (4002, "kicked")
        await asyncio.wait_for(done.wait(), 5)
    # The hook gets the close frame the client sent back: it echoes code and reason.
    assert closes == [(4002, "kicked")]
    assert hub.clients == {}


async def test_values_store_and_id_generator_sees_the_request() -> None:
    seen: list[str] = []

    def name_from_query(request: wskit.Request) -> str:
        seen.append(request.path)
        return request.query.partition("=")[2]

    hub = Hub(id_generator=name_from_query)

    @hub.on("connect")
    def remember(client: Client) -> None:
        client.set("agent", client.conn.request_headers.get("User-Agent"))

    @hub.on("whoami")
    def whoami(client: Client) -> dict[str, Any]:
        client.set("asked", client.get("asked", 0) + 1)
        return {
            "id": client.id,
            "path": client.request_info.path,
            "agent": client.get("agent"),
            "asked": client.get("asked"),
            "missing": client.get("missing", "default"),
            "values": sorted(client.values),
        }

    async with serving(hub) as url:
        peer = await Peer.open(url + "room/7?user=alice", user_agent="probe/1")
        await peer.call("whoami")
        assert await peer.call("whoami") == {
            "id": "alice",
            "path": "/room/7",
            "agent": "probe/1",
            "asked": 2,
            "missing": "default",
            "values": ["agent", "asked"],
        }
        assert seen == ["/room/7"]
        await peer.close()


async def test_a_reused_id_does_not_unregister_the_newer_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub(id_generator=lambda request: "same-user")
    hub.on("ping", lambda: "pong")
    closes: asyncio.Queue[int] = asyncio.Queue()
    hub.on("disconnect", lambda client, code, reason: closes.put_nowait(code))
    async with serving(hub) as url:
        first = await Peer.open(url)
        await first.call("ping")
        second = await Peer.open(url)
        await second.call("ping")
        newer = hub.get("same-user")
        await first.close(4000)
        assert await asyncio.wait_for(closes.get(), 5) == 4000
        assert hub.get("same-user") is newer
        await second.close(4001)
        assert await asyncio.wait_for(closes.get(), 5) == 4001
        assert hub.clients == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --------------------------------------------------------------------------- channels


async def test_channels_have_their_own_handlers_and_emits() -> None:
    hub = pinging_hub()
    hub.on("say", lambda text: f"main: {text}")
    chat = hub.of("chat")
    assert hub.of("chat") is chat
    chat.on("say", lambda text: f"chat: {text}")

    @hub.on("connect")
    def per_client(client: Client) -> None:
        side = client.of("chat")
        assert client.of("chat") is side
        side.on("mine", lambda: f"chat of {client.id}")
        client.of("private").on("secret", lambda: "private channel of one client")

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("say", "hi") == "main: hi"
        assert await peer.call("say", "hi", channel="chat") == "chat: hi"
        (client,) = hub.clients.values()
        assert await peer.call("mine", channel="chat") == f"chat of {client.id}"
        assert await peer.call("secret", channel="private") == "private channel of one client"
        assert await peer.request("mine") == {
            "i": 5,
            "e": {"message": "No event listener for 'mine'"},
            "_": 1,
        }

        chat.emit("to_all", 1)
        await peer.next_only({"c": "chat", "a": ["to_all", 1]})
        assert client.of("chat").emit("to_one", 2) is True
        await peer.next_only({"c": "chat", "a": ["to_one", 2]})
        await peer.close()


# --------------------------------------------------------------------------- requests to the client


async def test_server_requests_resolve_reject_time_out_and_fail_on_disconnect() -> None:
    hub = pinging_hub()
    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.call("ping")
        (client,) = hub.clients.values()

        async def answer_with(reply: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
            message = await peer.recv()
            await peer.send(reply(message["i"]))
            return message

        # Resolved.
        pending = asyncio.create_task(client.request("sum", 1, 2, timeout=5))
        asked = await answer_with(lambda i: {"i": i, "d": 3})
        assert asked == {"i": asked["i"], "a": ["sum", 1, 2]}
        assert await pending == 3

        # Resolved without "d" (JavaScript's undefined).
        pending = asyncio.create_task(client.request("void"))
        await answer_with(lambda i: {"i": i})
        assert await pending is None

        # Rejected with a serialized Error.
        pending = asyncio.create_task(client.of("ch").request("fail", timeout=5))
        asked = await answer_with(lambda i: {"i": i, "e": {"message": "client boom"}, "_": 1})
        assert asked["c"] == "ch"
        with pytest.raises(RequestError, match="client boom") as error:
            await pending
        assert error.value.data == {"message": "client boom"}

        # Rejected with a plain value, and with null: "e" present always rejects.
        for rejection, text in (("nope", "nope"), (None, "None"), (0, "0")):
            pending = asyncio.create_task(client.request("fail"))
            await answer_with(lambda i, r=rejection: {"i": i, "e": r})  # type: ignore[misc]
            with pytest.raises(RequestError, match=text) as error:
                await pending
            assert error.value.data == rejection

        # Timed out: RequestError, and the client is told to cancel.
        with pytest.raises(RequestError, match="timed out"):
            await client.request("slow", timeout=0.05)
        asked = await peer.recv()
        assert asked["a"] == ["slow"]
        assert await peer.recv() == {"i": asked["i"], "x": 1}
        # A late answer to it is ignored.
        await peer.send({"i": asked["i"], "d": "late"})
        assert await peer.call("ping") == "pong"

        # The client goes away while a request is pending.
        pending = asyncio.create_task(client.request("forever"))
        await peer.recv()
        await peer.close()
        with pytest.raises(RequestError, match="disconnected"):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(RequestError, match="disconnected"):
            await client.request("after")


async def test_an_async_handler_may_ask_the_client_before_answering() -> None:
    hub = Hub()

    @hub.on("greet")
    async def greet(client: Client) -> str:
        name = await client.request("your_name", timeout=5)
        return f"hello {name}"

    async with serving(hub) as url:
        peer = await Peer.open(url)
        request_id = await peer.send_request("greet")
        asked = await peer.recv()
        assert asked["a"] == ["your_name"]
        await peer.send({"i": asked["i"], "d": "ann"})
        assert await peer.response(request_id) == {"i": request_id, "d": "hello ann"}
        await peer.close()


# --------------------------------------------------------------------------- typed handlers


@dataclasses.dataclass
class Address:
    city: str
    zip: int


@dataclasses.dataclass
class Person:
    name: str
    age: int
    address: Address
    tags: list[str] = dataclasses.field(default_factory=list)


class Movie(TypedDict):
    title: str
    year: int


class Point(msgspec.Struct):
    x: float
    y: float


@dataclasses.dataclass
class Positive:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("must be positive")


async def test_typed_handlers_convert_every_supported_hint() -> None:
    hub = pinging_hub()
    received: dict[str, Any] = {}

    @hub.on("scalars")
    def scalars(s: str, i: int, f: float, b: bool, n: None) -> str:
        received["scalars"] = (s, i, f, b, n)
        return "ok"

    @hub.on("containers")
    def containers(items: list[int], table: dict[str, float], nested: list[dict[str, bool]]) -> str:
        received["containers"] = (items, table, nested)
        return "ok"

    @hub.on("records")
    def records(person: Person, movie: Movie, point: Point) -> str:
        received["records"] = (person, movie, point)
        return "ok"

    @hub.on("who")
    async def who(text: str, client: Client) -> str:
        received["who"] = client
        assert client.conn.request is not None
        return f"{text} from {client.conn.request.path}"

    async with serving(hub) as url:
        peer = await Peer.open(url + "typed")
        assert await peer.call("scalars", "s", 3.0, 2, True, None) == "ok"
        assert received["scalars"] == ("s", 3, 2.0, True, None)
        assert type(received["scalars"][1]) is int and type(received["scalars"][2]) is float

        assert await peer.call("containers", [1, 2], {"a": 1}, [{"x": True}]) == "ok"
        assert received["containers"] == ([1, 2], {"a": 1.0}, [{"x": True}])

        person = {"name": "Ann", "age": 30, "address": {"city": "Oslo", "zip": 150}}
        movie = {"title": "Heat", "year": 1995}
        assert await peer.call("records", person, movie, {"x": 1, "y": 2.5}) == "ok"
        assert received["records"] == (
            Person("Ann", 30, Address("Oslo", 150)),
            {"title": "Heat", "year": 1995},
            Point(1.0, 2.5),
        )
        assert await peer.call("who", "hi") == "hi from /typed"
        assert received["who"] is hub.get(received["who"].id)
        await peer.close()


@pytest.mark.parametrize(
    ("event", "args", "message"),
    [
        ("scalars", ["s", "3", 1.0, True, None], "argument 'i': expected int, got str"),
        ("scalars", ["s", 1, 1.0, 1, None], "argument 'b': expected bool, got int"),
        ("scalars", ["s", 1.5, 1.0, True, None], "argument 'i': expected int, got float"),
        ("scalars", ["s", 1, 1.0, True, 0], "argument 'n': expected None, got int"),
        ("scalars", ["s", 1], "missing argument 'f'"),
        ("scalars", ["s", 1, 1.0, True, None, "extra"], "expected at most 5 arguments"),
        ("records", [{"name": "A", "age": 1}, {}, {}], "missing field 'address'"),
        (
            "records",
            [{"name": "A", "age": 1, "address": {"city": 5, "zip": 1}}, {}, {}],
            "argument 'person.address.city': expected str, got int",
        ),
        (
            "records",
            [{"name": "A", "age": 1, "address": {"city": "x", "zip": 1}}, {"title": "T"}, {}],
            "argument 'movie': missing key 'year'",
        ),
        (
            "records",
            [
                {"name": "A", "age": 1, "address": {"city": "x", "zip": 1}},
                {"title": "T", "year": 1},
                {"x": "far"},
            ],
            "argument 'point'",
        ),
        ("containers", [[1, "2"], {}, []], "argument 'items[1]': expected int, got str"),
        ("containers", [[], {"a": "b"}, []], "argument 'table.a': expected float, got str"),
        ("validated", [{"value": -1}], "argument 'amount': must be positive"),
    ],
)
async def test_conversion_failures_answer_with_the_argument_and_never_stop_the_hub(
    event: str, args: list[Any], message: str
) -> None:
    hub = pinging_hub()
    called: list[str] = []
    errors: list[Exception] = []
    hub.on("error", lambda client, exc: errors.append(exc))

    @hub.on("scalars")
    def scalars(s: str, i: int, f: float, b: bool, n: None) -> None:
        called.append("scalars")

    @hub.on("containers")
    def containers(items: list[int], table: dict[str, float], nested: list[Any]) -> None:
        called.append("containers")

    @hub.on("records")
    def records(person: Person, movie: Movie, point: Point) -> None:
        called.append("records")

    @hub.on("validated")
    def validated(amount: Positive) -> None:
        called.append("validated")

    async with serving(hub) as url:
        peer, other = await Peer.open(url), await Peer.open(url)
        answer = await peer.request(event, *args)
        assert answer["_"] == 1
        assert message in answer["e"]["message"]
        assert called == []
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
        # The same client, and the others, go on.
        assert await peer.call("ping") == "pong"
        assert await other.call("ping") == "pong"
        await peer.emit(event, *args)  # an event with bad arguments is dropped
        assert await peer.call("ping") == "pong"
        assert peer.backlog == [] and called == []
        await peer.close()
        await other.close()


# --------------------------------------------------------------------------- the wire rules, live


async def test_cancel_cancels_the_handler_task() -> None:
    hub = pinging_hub()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @hub.on("long")
    async def long() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    async with serving(hub) as url:
        peer = await Peer.open(url)
        request_id = await peer.send_request("long")
        await asyncio.wait_for(started.wait(), 5)
        await peer.send({"i": request_id, "x": 1})
        await asyncio.wait_for(cancelled.wait(), 5)
        # No answer was sent for the cancelled request.
        assert await peer.call("ping") == "pong"
        assert peer.backlog == []
        (client,) = hub.clients.values()
        assert client.request_tasks == {}
        await peer.close()


async def test_wire_rules_missing_handlers_channels_and_reserved_names() -> None:
    hub = pinging_hub()
    hub.of("chat")
    calls: list[str] = []
    connects: list[str] = []
    native: list[Any] = []
    hub.on("connect", lambda client: connects.append(client.id))
    hub.on_native(lambda client, message: native.append(message))

    @hub.on("connect")
    def reserved_handlers(client: Client) -> None:
        # Registered as events on the client; the wire must never reach them.
        for name in ("open", "connect", "message", "error", "close", "disconnect"):
            client.on(name, lambda name=name: calls.append(name))
        client.of("chat").on("open", lambda: "channel open is an ordinary event")

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.request("nope") == {
            "i": 1,
            "e": {"message": "No event listener for 'nope'"},
            "_": 1,
        }
        assert await peer.request("nope", channel="chat") == {
            "i": 2,
            "e": {"message": "No event listener for 'nope' on channel 'chat'"},
            "_": 1,
        }
        assert await peer.request("nope", channel="nowhere") == {
            "i": 3,
            "e": {"message": "Channel 'nowhere' does not exist"},
            "_": 1,
        }
        for name in ("open", "connect", "message", "error", "close", "disconnect"):
            await peer.emit(name)
            answer = await peer.request(name)
            assert answer["_"] == 1 and "reserved" in answer["e"]["message"]
        assert await peer.call("open", channel="chat") == "channel open is an ordinary event"

        # Dropped or ignored: events without handlers, unknown channels, junk.
        await peer.emit("nope")
        await peer.emit("nope", channel="nowhere")
        await peer.send({"ws-wrapper": False, "a": ["ping"], "i": 99})
        await peer.send("not json")
        await peer.send({"i": 12345, "d": "an answer nobody asked for"})
        await peer.send({"i": 12346, "e": "a rejection nobody asked for"})
        await peer.send({"a": []})
        await peer.send({"a": [42]})
        await peer.send([1, 2])
        await peer.send({"x": 1, "i": 777})  # cancelling nothing
        assert await peer.call("ping") == "pong"
        assert peer.backlog == []
        assert calls == []
        assert len(connects) == 1
        assert '{"ws-wrapper": false, "a": ["ping"], "i": 99}' in native
        assert "not json" in native
        await peer.close()


# --------------------------------------------------------------------------- backpressure


class CountingPrepared(wskit.PreparedMessage):
    built: ClassVar[list[bytes]] = []

    def __init__(self, data: str | bytes) -> None:
        super().__init__(data)
        CountingPrepared.built.append(self.data)


async def test_a_room_emit_is_encoded_once_for_every_member(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = pinging_hub()
    hub.on("join", join_room)
    encodes: list[str] = []
    encode_event = hub.protocol.encode_event

    def counting_encode(name: str, args: tuple[Any, ...], channel: str | None = None) -> str:
        encodes.append(name)
        return encode_event(name, args, channel)

    async with serving(hub) as url:
        peers = [await Peer.open(url, compression=None) for _ in range(4)]
        for peer in peers[:3]:
            await peer.call("join", "room")
        await peers[3].call("ping")
        monkeypatch.setattr(hub.protocol, "encode_event", counting_encode)
        monkeypatch.setattr(rooms_module, "PreparedMessage", CountingPrepared)
        CountingPrepared.built.clear()
        hub.to("room").emit("news", "x" * 1000)
        assert encodes == ["news"]
        assert CountingPrepared.built == [b'{"a":["news","' + b"x" * 1000 + b'"]}']
        for peer in peers[:3]:
            assert await peer.recv() == {"a": ["news", "x" * 1000]}
        hub.emit("all", 1)
        assert len(CountingPrepared.built) == 2 and encodes == ["news", "all"]
        for peer in peers:
            assert await peer.recv() == {"a": ["all", 1]}
        for peer in peers:
            await peer.close()


async def _fill_until(hub: Hub, stop: Callable[[], bool], size: int = 32 * 1024) -> int:
    """Emit numbered ``size``-byte messages to "room" until ``stop()``; return how many."""
    payload = "y" * size
    for sent in range(1, 4000):
        hub.to("room").emit("bulk", sent, payload)
        await asyncio.sleep(0)
        if stop():
            return sent
    raise AssertionError("the slow client's buffer never filled")


async def _read_numbers(peer: Peer, into: list[int]) -> None:
    while True:
        message = json.loads(await peer.conn.recv())
        into.append(message["a"][1])


async def _slow_and_fast(hub: Hub, url: str) -> tuple[Peer, Client, Peer]:
    """Two members of "room"; the first stops reading (its transport is paused)."""
    slow = await Peer.open(url, compression=None)
    fast = await Peer.open(url, compression=None)
    await slow.call("join", "room")
    await fast.call("join", "room")
    slow_client = hub.get("slow")
    assert slow_client is not None and slow.conn.transport is not None
    slow.conn.transport.pause_reading()
    return slow, slow_client, fast


async def test_a_slow_client_drops_its_messages_and_never_stalls_the_others() -> None:
    ids = iter(["slow", "fast"])
    hub = Hub(id_generator=lambda request: next(ids), max_buffer=64 * 1024)
    hub.on("join", join_room)
    async with serving(hub, compression=None) as url:
        slow, slow_client, fast = await _slow_and_fast(hub, url)
        received: list[int] = []
        reader = asyncio.create_task(_read_numbers(fast, received))
        sent = await _fill_until(hub, lambda: slow_client.dropped > 0)
        # Keep emitting: the slow client drops them all, the fast one gets them all.
        for number in range(sent + 1, sent + 51):
            hub.to("room").emit("bulk", number, "z")
        total = sent + 50
        await wait_until(lambda: len(received) == total)
        reader.cancel()
        assert received == list(range(1, total + 1))
        assert slow_client.dropped == 51
        assert hub.dropped == 51
        # The buffer stays bounded: at most one message past max_buffer.
        assert slow_client.conn.write_buffer_size <= 64 * 1024 + 33 * 1024
        assert hub.get("slow") is slow_client  # dropped, not closed
        fast_client = hub.get("fast")
        assert fast_client is not None and fast_client.dropped == 0
        # Once it reads again, it gets what was written before the drops.
        assert slow.conn.transport is not None
        slow.conn.transport.resume_reading()
        backlog: list[int] = []
        reader = asyncio.create_task(_read_numbers(slow, backlog))
        await wait_until(lambda: len(backlog) >= sent - 1)
        reader.cancel()
        assert backlog == list(range(1, sent))
        await slow.close()
        await fast.close()


@pytest.mark.parametrize("code", [1008, 1013])
async def test_overflow_close_closes_the_slow_client(code: int) -> None:
    ids = iter(["slow", "fast"])
    gone = asyncio.Event()
    hub = Hub(
        id_generator=lambda request: next(ids),
        max_buffer=64 * 1024,
        overflow="close",
        overflow_code=code,
    )
    hub.on("join", join_room)
    hub.on("ping", lambda: "pong")
    hub.on("disconnect", lambda client, c, r: gone.set() if client.id == "slow" else None)
    async with serving(hub, compression=None) as url:
        slow, slow_client, fast = await _slow_and_fast(hub, url)
        received: list[int] = []
        reader = asyncio.create_task(_read_numbers(fast, received))
        sent = await _fill_until(hub, lambda: slow_client.closed)
        await wait_until(lambda: len(received) == sent)
        reader.cancel()
        assert received == list(range(1, sent + 1))
        assert slow_client.dropped == 0 and hub.dropped == 0
        # Once it reads again it finds the close frame after what was queued.
        assert slow.conn.transport is not None
        slow.conn.transport.resume_reading()
        assert await closed_code(slow, 10) == (code, "client too slow")
        await asyncio.wait_for(gone.wait(), 5)
        assert hub.get("slow") is None
        assert await fast.call("ping") == "pong"
        await fast.close()


# --------------------------------------------------------------------------- server behaviour


async def test_exception_in_the_connection_handler_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_ids(request: wskit.Request) -> str:
        raise RuntimeError("no ids today")

    hub = Hub(id_generator=broken_ids)
    with caplog.at_level(logging.ERROR):
        async with serving(hub) as url:
            peer = await Peer.open(url)
            assert await closed_code(peer) == (1011, "Internal server error")
        async with serving(hub, debug=True) as url:
            peer = await Peer.open(url)
            assert await closed_code(peer) == (1011, "Internal server error: no ids today")
    assert any("no ids today" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_server_shutdown_closes_every_hub_client_with_1001() -> None:
    hub = pinging_hub()
    closes: list[int] = []
    hub.on("disconnect", lambda client, code, reason: closes.append(code))
    async with serving(hub) as url:
        peers = [await Peer.open(url) for _ in range(3)]
        for peer in peers:
            await peer.call("ping")
    for peer in peers:
        assert await closed_code(peer) == (1001, "server shutting down")
    assert closes == [1001, 1001, 1001]
    assert hub.clients == {}


# --------------------------------------------------------------------------- client_rooms


async def test_client_rooms_lets_clients_join_and_leave() -> None:
    hub = Hub(client_rooms=True)
    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("join", "lobby", channel="_wskit") is True
        (client,) = hub.clients.values()
        assert client.rooms == {"lobby"}
        hub.to("lobby").emit("welcome")
        await peer.next_only({"a": ["welcome"]})
        assert await peer.call("leave", "lobby", channel="_wskit") is True
        assert await peer.call("leave", "lobby", channel="_wskit") is False
        assert client.rooms == set() and hub.room_names() == []
        await peer.close()


async def test_client_rooms_off_by_default() -> None:
    hub = pinging_hub()
    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.request("join", "lobby", channel="_wskit") == {
            "i": 1,
            "e": {"message": "Channel '_wskit' does not exist"},
            "_": 1,
        }
        await peer.close()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_client_rooms_guard_can_refuse(asynchronous: bool) -> None:
    asked: list[tuple[str, str]] = []

    def decide(client: Client, room: str) -> bool:
        asked.append((client.id, room))
        return not room.startswith("staff")

    async def decide_later(client: Client, room: str) -> bool:
        await asyncio.sleep(0)
        return decide(client, room)

    hub = Hub(client_rooms=decide_later if asynchronous else decide)
    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("join", "public", channel="_wskit") is True
        answer = await peer.request("join", "staff-only", channel="_wskit")
        assert answer["_"] == 1
        assert answer["e"]["message"] == "not allowed to join room 'staff-only'"
        (client,) = hub.clients.values()
        assert client.rooms == {"public"}
        assert [room for _, room in asked] == ["public", "staff-only"]
        await peer.close()


# --------------------------------------------------------------------------- iris, from Python


async def test_iris_protocol_events_native_messages_and_id_rooms() -> None:
    ids = iter(["one", "two"])
    hub = Hub(protocol="iris", id_generator=lambda request: next(ids))
    got: list[tuple[str, Any]] = []
    native: list[tuple[str, Any]] = []
    hub.on_native(lambda client, message: native.append((client.id, message)))

    @hub.on("typed")
    def typed(client: Client, count: int) -> None:
        got.append(("typed", count))

    @hub.on("truth")
    def truth(value: bool) -> None:
        got.append(("truth", value))

    @hub.on("ratio")
    def ratio(value: float) -> None:
        got.append(("ratio", value))

    @hub.on("label")
    def label(value: str) -> None:
        got.append(("label", value))

    @hub.on("doc")
    def doc(value: dict[str, int]) -> None:
        got.append(("doc", value))

    @hub.on("plain")
    def plain(value: Any) -> None:
        got.append(("plain", value))

    @hub.on("bare")
    def bare(client: Client) -> None:
        got.append(("bare", client.id))

    @hub.on("chat")
    def chat(client: Client, text: str) -> None:
        client.to("room").emit("chat", f"{client.id}: {text}")
        client.emit("sent", True)

    @hub.on("join")
    def join(client: Client, room: str) -> None:
        client.join(room)
        client.emit("joined", room)

    prefix = "iris-websocket-message:"
    async with serving(hub) as url:
        one = await wskit.connect(url)
        two = await wskit.connect(url)
        for conn in (one, two):
            await conn.send(f"{prefix}join;0;room")
        assert await one.recv() == f"{prefix}joined;0;room"
        assert await two.recv() == f"{prefix}joined;0;room"
        one_client = hub.get("one")
        assert one_client is not None and one_client.rooms == {"one", "room"}

        # The seed client's loose tags: the handler's hint decides.
        for message in (
            "typed;1;42",
            "truth;1;true",  # a JavaScript true is sent as type 1
            "truth;2;false",
            "ratio;1;3.25",
            "label;1;42",  # a numeric string is sent as type 1
            'doc;4;{"a":1}',
            "plain;1;7",
            "plain;4;[1,2]",
            "bare;0;",  # Emit("bare") with no data
            "bad;9",  # malformed: native
        ):
            await one.send(prefix + message)
        await one.send("just text")
        await one.send(f"{prefix}chat;0;hello")
        assert await two.recv() == f"{prefix}chat;0;one: hello"
        assert await one.recv() == f"{prefix}sent;2;true"  # and not its own chat
        assert got == [
            ("typed", 42),
            ("truth", True),
            ("truth", False),
            ("ratio", 3.25),
            ("label", "42"),
            ("doc", {"a": 1}),
            ("plain", 7),
            ("plain", [1, 2]),
            ("bare", "one"),
        ]
        assert native == [("one", f"{prefix}bad;9"), ("one", "just text")]

        # Every client is in a room named by its id; values are tagged by type.
        hub.to("two").emit("direct", 5)
        assert await two.recv() == f"{prefix}direct;1;5"
        hub.emit("everyone", {"k": [1]})
        assert await one.recv() == f'{prefix}everyone;4;{{"k":[1]}}'
        assert await two.recv() == f'{prefix}everyone;4;{{"k":[1]}}'
        hub.to("room").send("raw native text")
        assert await one.recv() == "raw native text"
        assert await two.recv() == "raw native text"
        await one.close()
        await two.close()


async def test_iris_custom_prefix() -> None:
    hub = Hub(protocol=IrisProtocol(prefix="app:"))

    @hub.on("echo")
    def echo(client: Client, text: str) -> None:
        client.emit("echo", text)

    native: list[Any] = []
    hub.on_native(lambda client, message: native.append(message))
    async with serving(hub) as url:
        conn = await wskit.connect(url)
        await conn.send("iris-websocket-message:echo;0;old prefix")
        await conn.send("app:echo;0;new prefix")
        assert await conn.recv() == "app:echo;0;new prefix"
        assert native == ["iris-websocket-message:echo;0;old prefix"]
        await conn.close()


def test_hub_options_are_checked() -> None:
    with pytest.raises(ValueError, match="overflow"):
        Hub(overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown wire protocol"):
        Hub(protocol="socket.io")
