"""wskit.hub.metrics: a hub's clients, rooms, deliveries, drops, handlers and backplane, watched.

The peers are :class:`~hub.hub_support.Peer`, a ws-wrapper client written by hand.
"""

from __future__ import annotations

import asyncio

import wskit
from hub.hub_support import Peer, join_room, wait_until
from wskit.hub import Hub
from wskit.hub.metrics import watch_hub
from wskit.metrics import Metrics


async def test_clients_rooms_deliveries_and_the_backplane() -> None:
    hub = Hub()
    hub.on("join", join_room)
    metrics = Metrics()
    watch_hub(metrics, hub)
    async with wskit.serve(hub, "127.0.0.1", 0) as server:
        metrics.watch(server)
        url = f"ws://127.0.0.1:{server.port}/"
        # Without compression the emit's frame is the same for both: the fan-out writes it.
        one, two = await Peer.open(url, compression=None), await Peer.open(url, compression=None)
        for peer in (one, two):
            await peer.call("join", "lobby")
        hub.to("lobby").emit("news", 1)
        for peer in (one, two):
            assert await peer.recv() == {"a": ["news", 1]}
        snapshot = metrics.snapshot()
        assert snapshot.hub_clients == 2
        assert snapshot.hub_rooms == 1
        assert snapshot.hub_deliveries == 2
        assert snapshot.backplane_sent == 1
        assert snapshot.backplane_delivered == 1
        # The answers to the joins and the emit, which the fan-out wrote:
        # the writers count whatever writes to them.
        assert snapshot.messages_sent == 4
        assert snapshot.messages_received == 2
        # Room names only on demand.
        assert metrics.rooms() == {"lobby": 2}
        assert "lobby" not in repr(snapshot)
        await one.close()
        await two.close()
        await wait_until(lambda: not hub.clients)
        assert metrics.snapshot().hub_clients == 0


async def test_requests_in_flight_and_handler_durations() -> None:
    hub = Hub()
    release = asyncio.Event()

    @hub.on("slow")
    async def slow() -> str:
        await release.wait()
        return "done"

    @hub.on("quick")
    def quick(x: int) -> int:
        return x

    metrics = Metrics()
    watch_hub(metrics, hub)
    async with wskit.serve(hub, "127.0.0.1", 0) as server:
        peer = await Peer.open(f"ws://127.0.0.1:{server.port}/")
        assert await peer.call("quick", 7) == 7
        request_id = await peer.send_request("slow")
        await wait_until(lambda: metrics.snapshot().requests_in_flight == 1)
        release.set()
        assert (await peer.response(request_id))["d"] == "done"
        await wait_until(lambda: metrics.snapshot().requests_in_flight == 0)
        durations = metrics.snapshot().handler_seconds
        assert durations["inline"].count == 2  # quick's run, slow's start
        assert durations["task"].count == 1
        assert durations["task"].total >= 0
        await peer.close()


async def test_overflow_drops_are_the_hubs_own_count() -> None:
    hub = Hub()
    metrics = Metrics()
    watch_hub(metrics, hub)
    hub.dropped = 3  # what LocalRooms counts when it drops for a slow client
    assert metrics.snapshot().overflow_drops == 3


async def test_an_unwatched_hub_is_untouched() -> None:
    hub = Hub()
    before = (hub.deliver, hub._dispatcher.dispatch)
    Metrics().snapshot()
    assert (hub.deliver, hub._dispatcher.dispatch) == before
    watch_hub(Metrics(), hub)
    assert hub.deliver != before[0]
    assert hub._dispatcher.dispatch != before[1]
