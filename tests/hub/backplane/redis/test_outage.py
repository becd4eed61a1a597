"""What the Redis backplane logs of an outage, against a real redis-server stopped and started.

An outage is one WARNING when it begins and one INFO when it ends, with the
messages buffered and dropped meanwhile; the failed attempts in between are
DEBUG records. A degraded start begins one.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from conftest import unused_port
from hub.backplane.redis.test_backplane import hold_outbox, join, nodes
from hub.redis_support import RedisServer, peers, until
from wskit.hub import Hub
from wskit.hub.backplane.redis import RedisBackplane
from wskit.hub.backplane.redis.outage import masked_url

LOGGER = "wskit.hub.redis"


def records_of(caplog: pytest.LogCaptureFixture, node_id: str, level: int) -> list[str]:
    """The messages of the backplane ``node_id`` at ``level`` exactly."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == level and node_id in record.getMessage()
    ]


def debug_records(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The DEBUG messages of the backplanes that contain ``text``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER and record.levelno == logging.DEBUG and text in record.getMessage()
    ]


def loud_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every record of the backplane at INFO or above."""
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.INFO]


def test_masked_url_hides_the_password_and_only_it() -> None:
    assert masked_url("redis://user:hunter2@h:6379/0") == "redis://user:***@h:6379/0"
    assert masked_url("redis://:hunter2@h/0") == "redis://:***@h/0"
    assert masked_url("redis://h:6379/0") == "redis://h:6379/0"
    assert masked_url("redis://user@h:6379/0") == "redis://user@h:6379/0"
    masked = masked_url("redis://h/0?password=hunter2&db=1")
    assert "hunter2" not in masked and "password=***" in masked and "db=1" in masked


async def test_an_outage_logs_one_warning_and_one_info_with_the_counts(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with nodes(redis_server, 2, buffer=3) as (a, b), peers(a.url, b.url) as (pa, pb):
        await join(pa, "room")
        await join(pb, "room")
        await until(lambda: b.backplane.cursor("room") is not None)
        caplog.clear()
        redis_server.stop()
        await until(lambda: not a.backplane.connected and not b.backplane.connected)
        release = hold_outbox(a.backplane)
        for n in range(5):
            a.hub.to("room").emit("n", n)
        # Local members get every message at once; past buffer=3 the oldest wait no more.
        await until(lambda: len(pa.events) == 5)
        await until(lambda: a.backplane.stats.dropped == 2)
        # Let the loops fail a few times: each failure is DEBUG, not a record of its own above.
        await until(lambda: len(debug_records(caplog, "cannot connect")) >= 3)
        redis_server.start()
        # b listens again before a publishes (with recovery off, b would miss them).
        await until(lambda: b.backplane.connected, timeout=15)
        release.set()
        await until(lambda: a.backplane.connected and b.backplane.connected, timeout=15)
        await until(lambda: len(pb.events) == 3, timeout=10)
        assert [event[1] for event in pb.events] == [2, 3, 4]  # the oldest were dropped
        for node, buffered, dropped in ((a, 5, 2), (b, 0, 0)):
            node_id = node.backplane.node_id
            (warning,) = records_of(caplog, node_id, logging.WARNING)
            (info,) = records_of(caplog, node_id, logging.INFO)
            assert redis_server.url in warning and "unreachable" in warning
            assert redis_server.url in info and "reachable again" in info
            match = re.search(r"(\d+) message\(s\) buffered during the outage, (\d+) of them", info)
            assert match is not None, info
            assert (int(match[1]), int(match[2])) == (buffered, dropped)
        # Nothing else at INFO or above: no record per failed retry, per stream, per drop.
        assert len(loud_records(caplog)) == 4, [r.getMessage() for r in loud_records(caplog)]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_closing_during_an_outage_says_what_was_not_published(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with nodes(redis_server, 1) as (a,), peers(a.url) as (pa,):
        await join(pa, "room")
        await until(lambda: a.backplane.cursor("room") is not None)
        redis_server.stop()
        await until(lambda: not a.backplane.connected)
        for n in range(4):
            a.hub.to("room").emit("n", n)
        caplog.clear()
        await a.hub.close()
    (record,) = records_of(caplog, a.backplane.node_id, logging.WARNING)
    assert "closed while redis" in record and "4 message(s) not published" in record


async def test_a_degraded_start_warns_once_then_joins_when_redis_comes(
    redis_server_bin: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    redis = RedisServer(redis_server_bin, unused_port(), tmp_path)
    backplane = RedisBackplane(
        redis.url + "?degraded_start=1&start_timeout=0.3", prefix="t", heartbeat=0.2
    )
    assert backplane.degraded_start and backplane.start_timeout == 0.3
    hub = Hub(backplane=backplane, client_rooms=True)
    hub.on("join_me", lambda client, room: client.join(room))
    server = await hub.serve("127.0.0.1", 0)
    try:
        node_id = backplane.node_id
        (warning,) = records_of(caplog, node_id, logging.WARNING)
        assert "degraded start" in warning and redis.url in warning
        assert not backplane.connected
        # It serves its local clients meanwhile.
        async with peers(f"ws://127.0.0.1:{server.port}/") as (peer,):
            await join(peer, "room")
            hub.to("room").emit("n", 0)
            await until(lambda: peer.events == [["n", 0]])
            redis.start()
            await until(lambda: backplane.connected, timeout=15)
            (info,) = records_of(caplog, node_id, logging.INFO)
            assert "reachable again" in info and "1 message(s) buffered" in info
            # And now it is a node of the cluster: another node's emits reach its client.
            other = RedisBackplane(redis.url, prefix="t", heartbeat=0.2)
            other_hub = Hub(backplane=other)
            await other_hub.start()
            try:
                await until(lambda: backplane.cursor("room") is not None)
                other_hub.to("room").emit("n", 1)
                await until(lambda: peer.events[-1:] == [["n", 1]])
            finally:
                await other_hub.close()
        assert len(records_of(caplog, node_id, logging.WARNING)) == 1
    finally:
        server.close()
        await server.wait_closed()
        await hub.close()
        redis.stop()
