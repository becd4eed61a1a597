"""The receiver with recovery off: plain publishes delivered in order, at most once, losses counted.

Hubs in this process on a real redis-server (see
:mod:`hub.backplane.redis.test_backplane`); a raw redis-py client plays a
node that publishes with chosen numbers, to show what a gap does.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import redis.asyncio as aioredis

from hub.backplane.redis.test_backplane import join, nodes
from hub.redis_support import RedisServer, peers, until
from wskit.hub.backplane import HistoryError
from wskit.hub.backplane.redis.outbox import plain_header

LOGGER = "wskit.hub.redis"


def lost_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER
        and record.levelno == logging.WARNING
        and "lost" in record.getMessage()
    ]


async def test_every_node_sees_a_room_in_one_order_and_each_publisher_s_in_its_own(
    redis_server: RedisServer,
) -> None:
    count = 300
    async with (
        nodes(redis_server, 2) as (a, b),
        peers(a.url, b.url) as (pa, pb),
    ):
        await join(pa, "room")
        await join(pb, "room")
        for n in range(count):
            a.hub.to("room").emit("n", f"a{n}")
            b.hub.to("room").emit("n", f"b{n}")
            if n % 50 == 0:
                await asyncio.sleep(0)
        await until(lambda: len(pa.events) == 2 * count and len(pb.events) == 2 * count)
        got_a = [event[1] for event in pa.events]
        got_b = [event[1] for event in pb.events]
        assert got_a == got_b  # one Redis: one order for every node
        for origin in "ab":
            assert [x for x in got_a if x[0] == origin] == [f"{origin}{n}" for n in range(count)]
        for node in (a, b):
            stats = node.backplane.stats
            assert stats.lost == 0 and stats.duplicates == 0 and stats.delivered == 2 * count


async def test_a_gap_in_a_publisher_s_numbers_is_counted_and_logged_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with nodes(redis_server, 1) as (b,), peers(b.url) as (pb,):
        await join(pb, "room")
        await until(lambda: b.backplane.cursor("room") == ("", 0))
        # A node "ghost" publishes its messages 1, 2 and 5 to the room: 3 and 4 never came.
        ghost = aioredis.Redis(port=redis_server.port)

        async def publish(seq: int, count: int, n: int) -> None:
            header = plain_header("ghost", seq, count, None)
            message = json.dumps({"a": ["n", n]})
            assert await ghost.publish("t:room:room", f"{header}\n{message}") == 1

        try:
            for seq, n in ((1, 1), (2, 2), (5, 5)):
                await publish(seq, seq, n)
            await until(lambda: len(pb.events) == 3)
            assert [event[1] for event in pb.events] == [1, 2, 5]
            stats = b.backplane.stats
            assert stats.lost == 2
            (record,) = lost_records(caplog)
            assert "2 message(s) of node ghost to t:room:room were lost" in record
            # Sent again (after an outage, say): its sequence number says it came already.
            await publish(5, 5, 5)
            # The node forgot the room's count: 1 again, a new series, nothing lost;
            # then 3 after 1: one more lost.
            await publish(6, 1, 6)
            await publish(7, 3, 7)
            await until(lambda: len(pb.events) == 5)
            assert [event[1] for event in pb.events] == [1, 2, 5, 6, 7]
            await until(lambda: stats.duplicates == 1)
            assert stats.lost == 3 and len(lost_records(caplog)) == 2
        finally:
            await ghost.aclose()


async def test_the_first_message_of_a_publisher_sets_where_its_numbers_start(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # What a node published before this one listened is not a loss: nothing is counted
    # until a second message of the same node shows a gap.
    async with nodes(redis_server, 2) as (a, b), peers(b.url) as (pb,):
        for n in range(5):
            a.hub.to("room").emit("n", n)
        await until(lambda: a.backplane.stats.buffered == 0)
        await join(pb, "room")
        a.hub.to("room").emit("n", 5)
        a.hub.to("room").emit("n", 6)
        await until(lambda: len(pb.events) == 2)
        assert [event[1] for event in pb.events] == [5, 6]
        assert b.backplane.stats.lost == 0 and not lost_records(caplog)


async def test_recovery_off_keeps_no_history(redis_server: RedisServer) -> None:
    async with nodes(redis_server, 1) as (a,), peers(a.url) as (pa,):
        await join(pa, "room")
        # The join waited for the subscription: the cursor holds, with no stream behind it.
        assert a.backplane.cursor("room") == ("", 0)
        assert await a.backplane.wait_cursor("room", 1.0) == ("", 0)
        with pytest.raises(HistoryError) as caught:
            await a.backplane.history("room", ("", 0))
        assert caught.value.reason == "unsupported"
