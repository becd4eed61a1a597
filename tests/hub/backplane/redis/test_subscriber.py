"""The subscriber connection: a redis-py connection in subscribe mode, against a real server.

Its frames are the same whichever parser redis-py reads them with (hiredis,
or its own for RESP2 and RESP3), and a Redis that stops answering is given
up after a few unanswered pings, though no read has a timeout of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.backplane.redis.hubs import exchange, hubs
from hub.redis_support import RedisServer, command, peers, until
from wskit.hub import Hub
from wskit.hub.backplane.redis import RedisBackplane
from wskit.hub.backplane.redis.subscriber import Subscriber

#: redis-py's parsers and protocols (its default is RESP3 since redis-py 8, RESP2 before).
PARSERS = {
    "hiredis-resp2": {"parser_class": _AsyncHiredisParser, "protocol": 2},
    "hiredis-resp3": {"parser_class": _AsyncHiredisParser, "protocol": 3},
    "python-resp2": {"parser_class": _AsyncRESP2Parser, "protocol": 2},
    "python-resp3": {"parser_class": _AsyncRESP3Parser, "protocol": 3},
}


@pytest.mark.parametrize("parser", list(PARSERS))
async def test_frames_are_lists_of_bytes_whatever_the_parser(
    redis_server: RedisServer, parser: str
) -> None:
    client = aioredis.Redis.from_url(redis_server.url, **PARSERS[parser])
    publisher = aioredis.Redis.from_url(redis_server.url)
    conn = await Subscriber.open(client, 5)
    try:
        conn.send("SUBSCRIBE", "a", "b")
        assert list(await conn.read()) == [b"subscribe", b"a", 1]
        assert list(await conn.read()) == [b"subscribe", b"b", 2]
        assert await publisher.publish("b", b"head\nbody") == 1
        assert list(await conn.read()) == [b"message", b"b", b"head\nbody"]
        conn.send("UNSUBSCRIBE", "a")
        assert list(await conn.read()) == [b"unsubscribe", b"a", 1]
        conn.ping()
        pong = await conn.read()
        assert pong in ([b"pong", b""], b"PONG")  # RESP2 in subscribe mode, RESP3
        assert conn.reads == 5
        # An error reply raises (the receiver then reconnects).
        conn.send("NO-SUCH-COMMAND")
        with pytest.raises(ResponseError):
            await conn.read()
    finally:
        conn.close()
        await client.aclose()
        await publisher.aclose()


async def test_a_closed_subscriber_fails_its_read(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    conn = await Subscriber.open(client, 5)
    read = asyncio.ensure_future(conn.read())
    await asyncio.sleep(0.05)
    conn.close()
    conn.send("PING")  # on a closed connection: nothing written, no error here
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(read, 5)
    await client.aclose()


async def test_a_silent_redis_is_given_up_after_unanswered_pings(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    conn = await Subscriber.open(client, 5, patience=2)
    conn.send("SUBSCRIBE", "a")
    await conn.read()
    read = asyncio.ensure_future(conn.read())
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        for _ in range(2):  # the first finds a read since the last; the second goes unanswered
            conn.ping()
            await asyncio.sleep(0.01)
            assert not read.done()
        conn.ping()
        with pytest.raises(RedisTimeoutError, match="no answer from redis to 2 pings"):
            await asyncio.wait_for(read, 5)
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
        conn.close()
        await client.aclose()


async def test_a_backplane_whose_redis_stops_answering_tells_of_an_outage(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped Redis keeps its connections open: only the pings tell it is gone."""
    caplog.set_level(logging.DEBUG, "wskit.hub.redis")
    backplane = RedisBackplane(redis_server.url, heartbeat=0.05, timeout=0.5)
    hub = Hub(backplane=backplane)
    await hub.start()
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        # The subscriber's reads wait on; its pings go unanswered.
        await until(lambda: "redis subscriber lost: TimeoutError: no answer" in caplog.text)
        assert not backplane.connected
        assert "unreachable" in caplog.text
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    await until(lambda: backplane.connected)
    assert backplane.stats.reconnects >= 1
    assert "reachable again" in caplog.text
    await hub.close()


@pytest.mark.parametrize("parser", list(PARSERS))
async def test_hubs_exchange_emits_whatever_the_parser(
    redis_server: RedisServer, parser: str
) -> None:
    # The parser is a setting of the client object, which the backplane copies.
    client = aioredis.Redis.from_url(redis_server.url, **PARSERS[parser])
    wheres: list[Any] = [client, redis_server.url]
    try:
        async with hubs(*wheres) as (a, b):
            await exchange(a, b)
    finally:
        await client.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_a_subscriber_lost_comes_back_and_its_streams_catch_up(
    redis_server: RedisServer, protocol: int
) -> None:
    """Recovery on: what was published while the subscriber was gone is read from the streams."""
    url = f"{redis_server.url}?protocol={protocol}&heartbeat=0.2"
    a = Hub(backplane=url, recovery=True)
    b = Hub(backplane=url, recovery=True, client_rooms=True)
    server = await b.serve("127.0.0.1", 0)
    await a.start()
    try:
        async with peers(f"ws://127.0.0.1:{server.port}/") as (peer,):
            assert await peer.request("join", "room", channel="_wskit") is True
            a.to("room").emit("n", 0)
            await until(lambda: len(peer.events) == 1)
            # Redis drops every subscriber; a publishes before b can notice.
            assert command(redis_server.port, "CLIENT", "KILL", "TYPE", "pubsub") == b":2"
            for n in range(1, 6):
                a.to("room").emit("n", n)
            await until(lambda: len(peer.events) == 6)
            assert [event[1] for event in peer.events] == list(range(6))
            assert isinstance(b.backplane, RedisBackplane)
            assert b.backplane.stats.reconnects == 1
    finally:
        server.close()
        await server.wait_closed()
        await a.close()
        await b.close()
