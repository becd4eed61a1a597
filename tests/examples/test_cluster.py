"""examples/cluster: the hub on Redis in two processes; a room message crosses between them.

Two ``wskit serve cluster:hub`` processes on ports of their own, then one
``wskit serve cluster:hub --workers 2`` on one port, all on the suite's
``redis-server`` (its URL in ``REDIS_URL``, as the example reads it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import unused_port
from examples.example_support import EXAMPLES, Program
from wskit.hub import HubClient, RequestError

CLUSTER = EXAMPLES / "cluster"


@contextlib.asynccontextmanager
async def serving(redis_url: str, *options: str) -> AsyncIterator[tuple[Program, int]]:
    port = unused_port()
    command = ("-m", "wskit", "serve", "cluster:hub", "--host", "127.0.0.1", "--port", str(port))
    async with await Program.start(
        *command, *options, cwd=CLUSTER, env={"REDIS_URL": redis_url}
    ) as program:
        # Each process says so once it serves (a worker, once its hub is on Redis).
        workers = int(options[options.index("--workers") + 1]) if "--workers" in options else 1
        for _ in range(workers):
            await program.expect("wskit serving")
        yield program, port
        assert await program.stop() == 0


async def chat_between(alice: HubClient, bob: HubClient) -> tuple[str, str]:
    """Alice and bob meet in a room; return the node serving each."""
    heard: asyncio.Queue[list[Any]] = asyncio.Queue()
    bob.on("said", lambda *args: heard.put_nowait(list(args)))
    at_a = await alice.request("hello", "alice")
    at_b = await bob.request("hello", "bob")
    await alice.join("lobby")
    await bob.join("lobby")
    with pytest.raises(RequestError, match="join 'kitchen' first"):
        await alice.request("say", "kitchen", "hello?")

    await alice.emit("say", "lobby", "hello from a")
    assert await asyncio.wait_for(heard.get(), 5) == ["alice", "hello from a"]

    # Each process knows the members of the room in every process.
    members = await bob.request("who", "lobby")
    assert sorted(members, key=lambda m: m["id"]) == sorted([at_a, at_b], key=lambda m: m["id"])
    return at_a["node"], at_b["node"]


async def test_two_servers(redis_server: Any) -> None:
    async with serving(redis_server.url) as (_, port_a), serving(redis_server.url) as (_, port_b):
        async with (
            HubClient(f"ws://127.0.0.1:{port_a}/") as alice,
            HubClient(f"ws://127.0.0.1:{port_b}/") as bob,
        ):
            node_a, node_b = await chat_between(alice, bob)
        assert node_a != node_b


async def test_workers_on_one_port(redis_server: Any) -> None:
    async with serving(redis_server.url, "--workers", "2") as (_, port):
        # The kernel picks a worker per connection: keep one client of each.
        by_node: dict[str, HubClient] = {}
        try:
            for _ in range(40):
                client = HubClient(f"ws://127.0.0.1:{port}/")
                await client.connect()
                node = (await client.request("hello", "probe"))["node"]
                if node in by_node:
                    await client.close()
                    continue
                by_node[node] = client
                if len(by_node) == 2:
                    break
            assert len(by_node) == 2, "40 connections all went to one worker"
            alice, bob = by_node.values()
            node_a, node_b = await chat_between(alice, bob)
            assert node_a != node_b
        finally:
            for client in by_node.values():
                await client.close()
