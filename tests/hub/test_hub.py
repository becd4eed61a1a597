"""The hub end to end (``wskit.hub.hub``): hooks, queries, emits by id, serving, options.

Every test serves a :class:`~wskit.hub.Hub` on a free port and talks to it
with :class:`~hub.hub_support.Peer`, a ws-wrapper client written by hand.
"""

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

import wskit
from hub.hub_support import Peer, closed_code, pinging_hub, serving, wait_until
from wskit.hub import Client, Hub, IrisProtocol
from wskit.hub.hub import MAX_CLIENT_ROOM_NAME

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

    # The async "open" hook runs as a task: before or after the first message is read.
    assert seen[0] == ("connect", client_id, True)
    assert sorted(seen[1:3], key=repr) == [
        ("message", {"i": 1, "a": ["ping"]}),
        ("open", client_id),
    ]
    assert seen[3:] == [("disconnect", client_id, 4001, "bye", False)]


# --------------------------------------------------------------------------- emits and queries


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


async def test_emits_of_a_reserved_name_are_refused() -> None:
    hub = Hub(id_generator=lambda request: "a")
    hub.on("ping", lambda: "pong")
    refused: list[str] = []

    @hub.on("try_all")
    async def try_all(client: Client) -> list[str]:
        attempts: dict[str, Callable[[], object]] = {
            "hub": lambda: hub.emit("error", "boom"),
            "room": lambda: hub.to("a").emit("close"),
            "client_id": lambda: hub.emit_to_client("a", "message", 1),
            "client": lambda: client.emit("open"),
            "broadcast": lambda: client.to("a").emit("disconnect"),
        }
        for where, attempt in attempts.items():
            try:
                attempt()
            except ValueError:
                refused.append(where)
        try:
            await client.request("connect")
        except ValueError:
            refused.append("request")
        hub.of("chat").emit("error", "fine here")
        return refused

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("try_all") == [
            "hub",
            "room",
            "client_id",
            "client",
            "broadcast",
            "request",
        ]
        # Nothing of them went out: only the named channel's event came.
        assert peer.backlog == [{"c": "chat", "a": ["error", "fine here"]}]
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
            code, reason = await closed_code(peer)
            assert code == 1011 and re.fullmatch(r"Internal server error \(error \w+\)", reason)
        async with serving(hub, debug=True) as url:
            peer = await Peer.open(url)
            code, reason = await closed_code(peer)
            assert code == 1011 and "no ids today" in reason
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


async def test_client_rooms_are_bounded_in_number_and_name() -> None:
    # Each room costs memory (and, with Redis, a subscription): a client may
    # not choose how many it is in, nor names of any length.
    hub = Hub(client_rooms=True, max_client_rooms=3)
    async with serving(hub) as url:
        peer = await Peer.open(url)
        for room in ("a", "b", "c"):
            assert await peer.call("join", room, channel="_wskit") is True
        answer = await peer.request("join", "d", channel="_wskit")
        assert answer["e"]["message"] == "already in 3 rooms, the most a client may join"
        # Joining a room it is in is no new room; leaving one makes space.
        assert await peer.call("join", "a", channel="_wskit") is True
        assert await peer.call("leave", "a", channel="_wskit") is True
        assert await peer.call("join", "d", channel="_wskit") is True
        answer = await peer.request("join", "x" * (MAX_CLIENT_ROOM_NAME + 1), channel="_wskit")
        assert answer["e"]["message"] == f"room names are at most {MAX_CLIENT_ROOM_NAME} characters"
        (client,) = hub.clients.values()
        assert client.rooms == {"b", "c", "d"}
        # The server itself may put a client in any number of rooms.
        for n in range(10):
            client.join(f"server-{n}")
        assert len(client.rooms) == 13
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


# --------------------------------------------------------------------------- options


def test_hub_options_are_checked() -> None:
    with pytest.raises(ValueError, match="overflow"):
        Hub(overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown wire protocol"):
        Hub(protocol="socket.io")


# --------------------------------------------------------------------------- bounds on each client


def gated_hub(**options: Any) -> tuple[Hub, asyncio.Event, list[int]]:
    """A hub whose ``slow`` handler waits for the gate; ``running`` counts those waiting."""
    hub = pinging_hub(**options)
    gate = asyncio.Event()
    running = [0]

    @hub.on("slow")
    async def slow(n: int) -> int:
        running[0] += 1
        try:
            await gate.wait()
        finally:
            running[0] -= 1
        return n

    @hub.on("ask")
    async def ask(client: Client, n: int) -> int:
        answer: int = await client.request("question", n)
        return answer + 1

    return hub, gate, running


async def test_max_inflight_stops_reading_a_client_until_a_handler_ends() -> None:
    hub, gate, running = gated_hub(max_inflight=2)
    async with serving(hub) as url:
        peer, other = await Peer.open(url), await Peer.open(url)
        ids = [await peer.send_request("slow", n) for n in range(40)]
        await wait_until(lambda: running[0] == 2)
        assert await other.call("ping") == "pong"  # the other clients go on
        (client,) = (c for c in hub.clients.values() if c.inflight)
        # The rest wait unread: neither started nor parked, and nothing refused.
        assert (running[0], client.inflight, len(client.parked), client.refused) == (2, 2, 0, 0)
        gate.set()
        answers = [await peer.response(i) for i in ids]
        assert answers == [{"i": i, "d": n} for n, i in enumerate(ids)]
        assert client.inflight == 0
        await peer.close()
        await other.close()


async def test_a_handler_awaiting_its_own_client_does_not_deadlock() -> None:
    hub, _, _ = gated_hub(max_inflight=1)
    async with serving(hub) as url:
        peer = await Peer.open(url)
        request_id = await peer.send_request("ask", 41)
        question = await peer.recv()
        assert question["a"] == ["question", 41]
        await peer.send({"i": question["i"], "d": 41})
        assert await peer.response(request_id) == {"i": request_id, "d": 42}
        await peer.close()


async def test_the_answer_behind_queued_requests_is_read() -> None:
    """The only slot waits for an answer that comes after more requests: park, refuse, go on."""
    hub, gate, _ = gated_hub(max_inflight=1)
    gate.set()
    async with serving(hub) as url:
        peer = await Peer.open(url)
        asking = await peer.send_request("ask", 1)
        question = await peer.recv()
        queued = [await peer.send_request("slow", n) for n in range(5)]
        await peer.send({"i": question["i"], "d": 1})
        answers = {}
        while len(answers) < 6:
            answer = await peer.recv()
            answers[answer["i"]] = answer
        assert answers[asking] == {"i": asking, "d": 2}
        # One request waited for the slot (parked), the others were refused.
        assert answers[queued[0]] == {"i": queued[0], "d": 0}
        for request_id in queued[1:]:
            assert answers[request_id]["e"] == {"message": "too many requests in flight"}
        (client,) = hub.clients.values()
        assert client.refused == 4
        assert await peer.call("ping") == "pong"
        await peer.close()


async def test_a_client_that_closes_while_its_slots_are_full_is_let_go() -> None:
    hub, _, running = gated_hub(max_inflight=1)
    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.send_request("slow", 1)
        await wait_until(lambda: running[0] == 1)
        await peer.close()
        # The hub stopped reading, yet sees the close and cancels the handler.
        await wait_until(lambda: not hub.clients and running[0] == 0)


async def test_messages_nested_too_deeply_are_refused_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = pinging_hub(max_depth=8)
    hub.on("echo", lambda value: value)
    with caplog.at_level(logging.DEBUG):
        async with serving(hub) as url:
            peer = await Peer.open(url)
            answer = await peer.request("echo", [[[[[[[[[1]]]]]]]]])
            assert answer["e"] == {"message": "message nested deeper than 8 levels"}
            assert await peer.call("echo", [[[[[1]]]]]) == [[[[[1]]]]]
            await peer.emit("echo", [[[[[[[[[1]]]]]]]]])  # an event: nobody to answer
            assert await closed_code(peer) == (1008, "message nested deeper than 8 levels")
            peer = await Peer.open(url)
            await peer.send("[" * 100_000 + "]" * 100_000)  # deeper than the decoder's stack
            assert await closed_code(peer) == (1008, "message nested deeper than 8 levels")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


async def test_rate_limit_rejects_requests_and_drops_events() -> None:
    hub = pinging_hub(rate_limit=(0.001, 3))
    seen: list[int] = []
    hub.on("note", seen.append)
    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.emit("note", 1)
        await peer.emit("note", 2)
        assert await peer.call("ping") == "pong"  # the third token
        await peer.emit("note", 3)  # dropped
        answer = await peer.request("ping")
        assert answer["e"] == {"message": "rate limit exceeded"}
        assert seen == [1, 2]
        (client,) = hub.clients.values()
        assert client.refused == 2
        await peer.close()


async def test_rate_limit_can_close_the_client() -> None:
    hub = pinging_hub(rate_limit=(0.001, 2), rate_limit_policy="close")
    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("ping") == "pong"
        assert await peer.call("ping") == "pong"
        await peer.send_request("ping")
        assert await closed_code(peer) == (1008, "rate limit exceeded")


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="max_inflight"):
        Hub(max_inflight=0)
    with pytest.raises(ValueError, match="rate"):
        Hub(rate_limit=(0, 1))
    with pytest.raises(ValueError, match="rate_limit_policy"):
        Hub(rate_limit_policy="ignore")  # type: ignore[arg-type]
