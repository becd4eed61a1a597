"""wskit on uvloop: the server and the client run on it unchanged."""

from __future__ import annotations

import asyncio

import uvloop

import wskit


async def scenario() -> list[object]:
    seen: list[object] = []

    async def echo(conn: wskit.Conn) -> None:
        async for message in conn:
            await conn.send(message)

    async with wskit.serve(echo, "127.0.0.1", 0) as server:
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as conn:
            for message in ["text", b"\x00binary", "é" * 70_000, bytes(300_000)]:
                await conn.send(message)
                seen.append(await conn.recv() == message)
            seen.append(await conn.ping() >= 0)
            await conn.close(4000, "done")
        seen.append((conn.close_code, conn.close_reason))
    return seen


def test_echo_ping_and_close_on_uvloop() -> None:
    results = uvloop.run(scenario())
    assert results == [True, True, True, True, True, (4000, "done")]


def test_the_same_scenario_on_asyncio() -> None:
    assert asyncio.run(scenario()) == [True, True, True, True, True, (4000, "done")]
