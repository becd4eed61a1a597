"""The outbox: its Lua script (a file of the installed package), and what an emit costs Redis.

With recovery off (the default) a room emit (or a global one) is one
``PUBLISH`` and leaves nothing in Redis, read from ``INFO commandstats`` and
``SCAN`` of a real redis-server; with recovery on, the script and the stream.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from importlib import resources

import pytest
import redis.asyncio as aioredis

from conftest import REPO_ROOT
from hub.backplane.redis.test_backplane import join, nodes
from hub.redis_support import RedisServer, peers, until
from wskit.hub import Recovery
from wskit.hub.backplane.redis import RedisBackplane, outbox

PACKAGE = "wskit.hub.backplane.redis"


def test_the_publish_script_is_read_from_the_installed_package() -> None:
    script = resources.files(PACKAGE) / "publish.lua"
    assert script.is_file()
    assert script.read_text(encoding="utf-8") == outbox.PUBLISH_SCRIPT
    assert "redis.call('XADD'" in outbox.PUBLISH_SCRIPT


def test_the_package_data_ships_every_lua_script() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["wskit"]
    root = REPO_ROOT / "src" / "wskit"
    scripts = [path.relative_to(root).as_posix() for path in root.rglob("*.lua")]
    assert "hub/backplane/redis/publish.lua" in scripts
    for script in scripts:
        assert any(fnmatch.fnmatch(script, pattern) for pattern in patterns), script


# -- recovery off: one PUBLISH per emit ------------------------------------------------------


async def command_calls(port: int) -> dict[str, int]:
    """``INFO commandstats`` of the Redis server on ``port``: calls by command name."""
    client = aioredis.Redis(port=port)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def keys_of(port: int, pattern: str) -> set[bytes]:
    """The keys of the Redis server on ``port`` that match ``pattern`` (``SCAN``)."""
    client = aioredis.Redis(port=port)
    try:
        return {key async for key in client.scan_iter(match=pattern, count=1000)}
    finally:
        await client.aclose()


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: after[name] - before.get(name, 0)
        for name in after
        if after[name] != before.get(name, 0)
    }


@pytest.mark.parametrize("target", ["room", "all"])
async def test_recovery_off_an_emit_is_one_publish_that_leaves_nothing(
    redis_server: RedisServer, target: str
) -> None:
    emits = 200
    async with nodes(redis_server, 2) as (a, b), peers(a.url, b.url) as (pa, pb):
        await join(pa, "room")
        await join(pb, "room")
        await until(lambda: a.backplane.stats.buffered == 0 and b.backplane.stats.buffered == 0)
        keys = await keys_of(redis_server.port, "t:*")
        before = await command_calls(redis_server.port)
        for n in range(emits):
            (a.hub.to("room") if target == "room" else a.hub).emit("n", n)
        await until(lambda: len(pa.events) == emits and len(pb.events) == emits)
        await until(lambda: a.backplane.stats.buffered == 0)
        delta = calls_delta(before, await command_calls(redis_server.port))
        # Exactly one PUBLISH per emit, and no script, stream or hash command at all.
        assert delta.get("publish") == emits, delta
        for command in ("evalsha", "eval", "script|load", "xadd", "hset", "hincrby", "pexpire"):
            assert command not in delta, delta
        # The liveness beats may have run meanwhile, and this test's own client; nothing else.
        beats = {"ping", "set", "sadd", "smembers", "mget"}
        assert set(delta) <= {"publish", *beats, "hello", "client|setinfo", "info"}, delta
        assert await keys_of(redis_server.port, "t:*") == keys
        assert not await keys_of(redis_server.port, "t:hist*")
        assert not await keys_of(redis_server.port, "t:meta*")
        assert [event[1] for event in pb.events] == list(range(emits))
        assert a.backplane.stats.published == emits and b.backplane.stats.lost == 0


async def test_recovery_on_an_emit_runs_the_script_and_writes_the_stream(
    redis_server: RedisServer,
) -> None:
    emits = 50
    async with (
        nodes(redis_server, 2, recovery=Recovery(window=10)) as (a, b),
        peers(b.url) as (pb,),
    ):
        await join(pb, "room")
        await until(lambda: a.backplane.stats.buffered == 0 and b.backplane.stats.buffered == 0)
        before = await command_calls(redis_server.port)
        for n in range(emits):
            a.hub.to("room").emit("n", n)
        await until(lambda: len(pb.events) == emits)
        delta = calls_delta(before, await command_calls(redis_server.port))
        assert delta.get("evalsha") == emits and delta.get("xadd") == emits, delta
        assert await keys_of(redis_server.port, "t:hist:room") == {b"t:hist:room"}


def test_a_node_counts_its_plain_publishes_per_channel() -> None:
    outbox = RedisBackplane("redis://127.0.0.1:1/0")._outbox
    assert [outbox.count("t:room:a") for _ in range(3)] == [1, 2, 3]
    assert outbox.count("t:room:b") == 1
    assert outbox.count("t:all") == 1 and outbox.count("t:room:a") == 4


def test_past_its_bound_the_count_forgets_the_oldest_channels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "_MAX_COUNTED", 4)
    box = RedisBackplane("redis://127.0.0.1:1/0")._outbox
    for name in "abcd":
        box.count(name)
        box.count(name)
    assert box.count("e") == 1  # the fifth channel: a and b are forgotten
    assert sorted(box.counts) == ["c", "d", "e"]
    assert box.count("a") == 1 and box.count("c") == 3


def test_the_header_of_a_plain_publish_is_json() -> None:
    header = outbox.plain_header("abc", 7, 3, 'cl"ient')
    assert json.loads(header) == {"k": "m", "n": "abc", "s": 7, "c": 3, "x": 'cl"ient'}
    assert json.loads(outbox.plain_header("abc", 8, 0, None))["x"] is None
