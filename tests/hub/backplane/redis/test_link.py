"""What the parts of the Redis backplane share: the names of its keys, and the backoff."""

from __future__ import annotations

import asyncio

from redis.crc import key_slot

from wskit.hub.backplane import Target
from wskit.hub.backplane.redis.link import Backoff, ClusterKeys, Keys, hash_tag


def test_keys_and_channels_are_named_under_the_prefix() -> None:
    keys = Keys("chat")
    assert keys.key("alive", "n1") == "chat:alive:n1"
    assert keys.channel(Target.ROOM, "lobby") == "chat:room:lobby"
    assert keys.channel(Target.CLIENT, "c1") == "chat:client:c1"
    assert keys.channel(Target.ALL, "") == "chat:all"
    assert keys.numbered(Target.ROOM, "lobby") == (
        "chat:room:lobby",
        "chat:meta:lobby",
        "chat:hist:lobby",
    )
    assert keys.numbered(Target.ALL, "") == ("chat:all", "chat:meta-all", "chat:hist-all")


async def test_backoff_doubles_up_to_the_longest_wait_and_resets() -> None:
    backoff = Backoff((0.001, 0.003))
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        await backoff.wait()
    assert delays == [0.001, 0.002, 0.003, 0.003]
    backoff.reset()
    assert backoff.delay == 0.001
    await asyncio.sleep(0)


def test_on_redis_cluster_each_room_s_names_share_its_slot() -> None:
    keys = ClusterKeys("chat")
    assert keys.numbered(Target.ROOM, "lobby") == (
        "chat:room:{lobby}",
        "chat:meta:{lobby}",
        "chat:hist:{lobby}",
    )
    assert keys.presence("lobby") == "chat:presence:{lobby}"
    assert keys.channel(Target.CLIENT, "c1") == "chat:client:{c1}"
    # The cluster-wide names are in the prefix's slot.
    assert keys.numbered(Target.ALL, "") == ("{chat}:all", "{chat}:meta-all", "{chat}:hist-all")
    assert keys.key("node", "n1") == "{chat}:node:n1"
    names = ["lobby", "", "}", "}x", "a}b", "{x}", "~", "{~}", "x~", "{", "é"]
    seen: set[str] = set()
    for room in names:
        channel, meta, stream = keys.numbered(Target.ROOM, room)
        presence = keys.presence(room)
        # One slot per room, whatever its name (an empty hash tag would hash the whole key).
        assert len({key_slot(name.encode()) for name in (channel, meta, stream, presence)}) == 1
        seen.add(channel)
        assert keys.client_of(keys.channel(Target.CLIENT, room)) == room
    assert len(seen) == len(names)  # and no two rooms share a channel
    assert keys.client_of(keys.channel(Target.ROOM, "x")) is None
    assert Keys("chat").client_of("chat:client:c1") == "c1"
    assert hash_tag("") == "{~}~"
