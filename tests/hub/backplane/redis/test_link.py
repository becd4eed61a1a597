"""What the parts of the Redis backplane share: the names of its keys, and the backoff."""

from __future__ import annotations

import asyncio

from wskit.hub.backplane import Target
from wskit.hub.backplane.redis.link import Backoff, Keys


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
