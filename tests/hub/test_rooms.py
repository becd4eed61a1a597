"""Rooms (``wskit.hub.rooms``): membership, emits, delivery under the overflow policy, presence.

Every test serves a :class:`~wskit.hub.Hub` and talks to it with
:class:`~hub.hub_support.Peer`, a ws-wrapper client written by hand.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

import wskit
import wskit.hub.rooms as rooms_module
from hub.hub_support import Peer, closed_code, cluster, join_room, pinging_hub, serving, wait_until
from hub.redis_support import until
from wskit.hub import Client, Hub

# --------------------------------------------------------------------------- emits and rooms


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


async def test_client_broadcast_reaches_every_client_but_the_sender_on_every_node() -> None:
    ids = iter(["a", "b", "other"])
    async with cluster(2, id_generator=lambda request: next(ids)) as c:
        for hub in c.hubs:

            @hub.on("tell")
            def tell(client: Client, text: str) -> None:
                client.broadcast.emit("told", client.id, text)

            @hub.of("chat").on("tell")
            def tell_on_chat(client: Client, text: str) -> None:
                client.of("chat").broadcast.emit("told", text)

            hub.on("ping", lambda: "pong")
        a, b = await Peer.open(c.url(0)), await Peer.open(c.url(0))
        other = await Peer.open(c.url(1))  # on the other node, in no room
        for peer in (a, b, other):
            await peer.call("ping")
        assert await a.call("tell", "hi") is None
        for peer in (b, other):
            await peer.next_only({"a": ["told", "a", "hi"]})
        await a.call("tell", "on chat", channel="chat")
        for peer in (b, other):
            await peer.next_only({"c": "chat", "a": ["told", "on chat"]})
        # The sender got neither: its answers came, nothing before them.
        assert await a.call("ping") == "pong"
        assert a.backlog == []
        for peer in (a, b, other):
            await peer.close()


async def test_close_room_makes_every_member_on_every_node_leave_and_stay_connected() -> None:
    ids = iter(["a", "b", "c", "d"])
    async with cluster(2, recovery=False, id_generator=lambda request: next(ids)) as c:
        left: list[tuple[str, str]] = []
        for hub in c.hubs:
            hub.on("ping", lambda: "pong")
            hub.on_leave(lambda client, room: left.append((client.id, room)))
        a, b = await Peer.open(c.url(0)), await Peer.open(c.url(0))
        other, outside = await Peer.open(c.url(1)), await Peer.open(c.url(1))
        for peer in (a, b, other):
            assert await peer.call("join", "room", channel="_wskit") is True
        await a.call("join", "kept", channel="_wskit")
        await outside.call("ping")

        assert await c.hubs[0].close_room("room") == 3
        assert [hub.count("room") for hub in c.hubs] == [0, 0]
        assert sorted(left) == [("a", "room"), ("b", "room"), ("c", "room")]
        client_a = c.hubs[0].get("a")
        assert client_a is not None and client_a.rooms == {"kept"}
        assert await c.hubs[1].close_room("room") == 0
        # Still connected, and no longer sent the room's messages.
        c.emit("room", "after")
        c.emit("kept", "still")
        await a.next_only({"a": ["said", "still"]})
        for peer in (a, b, other, outside):
            assert await peer.call("ping") == "pong"
            assert peer.backlog == []
            await peer.close()


async def test_emit_to_rooms_with_exclusions_reaches_each_member_once_on_every_node() -> None:
    ids = iter(["a", "b", "c", "d", "e"])
    async with cluster(2, recovery=False, id_generator=lambda request: next(ids)) as c:
        for hub in c.hubs:
            hub.on("ping", lambda: "pong")
        a, b = await Peer.open(c.url(0)), await Peer.open(c.url(0))
        cc, d = await Peer.open(c.url(1)), await Peer.open(c.url(1))
        e = await Peer.open(c.url(0))
        # a and c in both rooms, b and d in one each, e in none.
        for peer, rooms in ((a, "xy"), (b, "x"), (cc, "xy"), (d, "y")):
            for room in rooms:
                assert await peer.call("join", room, channel="_wskit") is True
        await e.call("ping")
        hub = c.hubs[0]
        emitter = hub.to("x", "y", "x")
        assert (emitter.rooms, emitter.excluded) == (("x", "y"), ())

        emitter.emit("both", 1)
        hub.to("x", "y").exclude("a", "d").emit("but_a_d", 2)
        hub.to("x").exclude("b").exclude("c").emit("x_but_b_c", 3)
        hub.of("chat").to("y", "x").exclude("nobody").emit("chat", 4)
        assert hub.to("x").exclude("b", "c").excluded == ("b", "c")
        with pytest.raises(ValueError, match="at least one room"):
            hub.to()
        for peer, expected in (
            (a, [["both", 1], ["x_but_b_c", 3], ["chat", 4]]),
            (b, [["both", 1], ["but_a_d", 2], ["chat", 4]]),
            (cc, [["both", 1], ["but_a_d", 2], ["chat", 4]]),
            (d, [["both", 1], ["chat", 4]]),
            (e, []),
        ):
            assert await peer.call("ping") == "pong"
            assert [message["a"] for message in peer.backlog] == expected
            for message in peer.backlog:
                assert message.get("c") == ("chat" if message["a"][0] == "chat" else None)
            await peer.close()


async def test_a_client_id_that_looks_like_a_selection_is_still_just_an_id() -> None:
    ids = iter(["\x00[null, []]", "plain"])
    hub = Hub(id_generator=lambda request: next(ids))
    hub.on("ping", lambda: "pong")

    @hub.on("tell")
    def tell(client: Client) -> None:
        client.broadcast.emit("told", client.id)
        client.to("room").emit("in_room")

    hub.on("join", join_room)
    async with serving(hub) as url:
        odd, plain = await Peer.open(url), await Peer.open(url)
        await odd.call("join", "room")
        await plain.call("join", "room")
        await odd.call("tell")
        await plain.next_only({"a": ["told", "\x00[null, []]"]})
        await plain.next_only({"a": ["in_room"]})
        assert odd.backlog == []
        assert await odd.call("ping") == "pong"
        assert odd.backlog == []
        await odd.close()
        await plain.close()


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


# --------------------------------------------------------------------------- presence


async def test_presence_events() -> None:
    events: list[tuple[str, str, str]] = []
    async with cluster(1, presence=True, presence_info=lambda c: {"name": "x"}) as c:
        hub = c.hubs[0]
        hub.on_presence(lambda e: events.append((e.kind, e.room, e.client_id)))

        @hub.on("connect")
        def joined(client: Client) -> None:
            client.join("room")

        async with wskit.connect(c.url(0)):
            await until(lambda: len(events) == 1)
            (client_id,) = hub.clients
            assert await hub.presence("room") == {
                client_id: {"name": "x", "node": c.backplane.node_id}
            }
        await until(lambda: len(events) == 2)
        assert events == [("join", "room", client_id), ("leave", "room", client_id)]
