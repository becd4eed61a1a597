"""Recovery of missed room messages with the memory backplane, and its pieces.

Two hubs attached to one :class:`MemoryBackplane` stand for two nodes: a
client that reconnects to the other one must still get what it missed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import wskit
from hub.hub_support import cluster
from hub.redis_support import until
from wskit.hub import Hub, Recovery
from wskit.hub.client import HubClient
from wskit.hub.recovery import format_position, parse_position, splice


def test_splice_adds_room_and_offset_to_json_objects() -> None:
    assert splice('{"a":["x",1]}', "lobby", ("e1", 7)) == '{"r":"lobby","o":"e1:7","a":["x",1]}'
    assert splice("{}", 'q"uote', ("e", 1)) == '{"r":"q\\"uote","o":"e:1"}'
    assert json.loads(splice('{"c":"ch","a":["x"]}', "é", ("e", 2)))["r"] == "é"
    assert splice("iris-websocket-message:x;0;y", "r", ("e", 1)).startswith("iris")


def test_positions_round_trip() -> None:
    assert parse_position(format_position(("abc", 12))) == ("abc", 12)
    assert parse_position(":0") == ("", 0)
    assert parse_position("nope") is None
    assert parse_position("e:-1") is None
    assert parse_position(5) is None


def test_recovery_needs_ws_wrapper() -> None:
    with pytest.raises(ValueError, match="ws-wrapper"):
        Hub(protocol="iris", recovery=True)


async def listening(url: str, events: list[Any], infos: list[dict[str, Any]]) -> HubClient:
    client = HubClient(url, backoff=(0.02, 0.1))
    client.on("said", lambda *args: events.append(args[0] if len(args) == 1 else list(args)))
    client.on("open", infos.append)
    await client.connect()
    return client


async def test_reconnecting_to_another_node_gets_what_it_missed_in_order() -> None:
    async with cluster() as c:
        got: list[Any] = []
        infos: list[dict[str, Any]] = []
        client = await listening(c.url(0), got, infos)
        try:
            await client.join("lobby")
            for n in range(3):
                c.emit("lobby", n)
            await until(lambda: got == [0, 1, 2])
            assert infos[-1] == {"recovered": False, "resumed": False, "reason": None, "failed": []}
            client.url = c.url(1)
            client.drop(pause=0.2)
            await until(lambda: client.drops == 1)
            for n in range(3, 8):
                c.emit("lobby", n)
            await client.wait_open()
            c.emit("lobby", 8)
            await until(lambda: len(got) >= 9)
            await asyncio.sleep(0.05)
            assert got == list(range(9))
            assert client.recovered and infos[-1]["recovered"] and infos[-1]["resumed"]
            assert c.hubs[1].clients and not c.hubs[0].clients
        finally:
            await client.close()


async def test_a_client_that_had_received_nothing_recovers_too() -> None:
    async with cluster() as c:
        got: list[Any] = []
        client = await listening(c.url(0), got, [])
        try:
            await client.join("quiet")
            assert client.positions["quiet"].endswith(":0")
            client.url = c.url(1)
            client.drop(pause=0.2)
            await until(lambda: client.drops == 1)
            c.emit("quiet", "first")
            c.emit("quiet", "second")
            await client.wait_open()
            await until(lambda: len(got) == 2)
            assert got == ["first", "second"] and client.recovered
        finally:
            await client.close()


async def test_recovery_fails_explicitly_after_the_window() -> None:
    async with cluster(recovery=Recovery(window=0.2)) as c:
        got: list[Any] = []
        infos: list[dict[str, Any]] = []
        client = await listening(c.url(0), got, infos)
        try:
            await client.join("lobby")
            client.reconnect = False
            client.drop(pause=0.2)
            await until(lambda: client.drops == 1)
            await asyncio.sleep(0.4)  # past the window
            c.emit("lobby", "missed")
            client.reconnect = True
            client._runner = None
            await client.connect()
            assert not client.recovered
            assert infos[-1]["reason"] == "expired" and infos[-1]["resumed"]
            c.emit("lobby", "live")
            await until(lambda: got == ["live"])
        finally:
            await client.close()


async def test_recovery_fails_explicitly_when_the_history_is_too_short() -> None:
    async with cluster(recovery=Recovery(history=3)) as c:
        got: list[Any] = []
        infos: list[dict[str, Any]] = []
        client = await listening(c.url(0), got, infos)
        try:
            await client.join("lobby")
            client.drop(pause=0.2)
            await until(lambda: client.drops == 1)
            for n in range(10):
                c.emit("lobby", n)
            await client.wait_open()
            assert not client.recovered
            assert infos[-1]["failed"] == [{"room": "lobby", "reason": "history"}]
            c.emit("lobby", "live")
            await until(lambda: got == ["live"])
        finally:
            await client.close()


async def test_rooms_joined_by_the_server_are_recovered() -> None:
    async with cluster(client_rooms=False) as c:
        for hub in c.hubs:
            hub.on("connect", lambda client: client.join("news"))
        got: list[Any] = []
        client = await listening(c.url(0), got, [])
        try:
            await until(lambda: "news" in client.positions)
            c.emit("news", 1)
            await until(lambda: got == [1])
            client.url = c.url(1)
            client.drop(pause=0.2)
            await until(lambda: client.drops == 1)
            c.emit("news", 2)
            c.emit("news", 3)
            await client.wait_open()
            await until(lambda: len(got) == 3)
            await asyncio.sleep(0.05)
            assert got == [1, 2, 3]
        finally:
            await client.close()


async def test_clients_without_the_query_parameter_see_no_notices() -> None:
    async with cluster() as c, wskit.connect(c.url(0)) as conn:
        await conn.send(json.dumps({"i": 1, "c": "_wskit", "a": ["join", "r"]}))
        assert json.loads(await conn.recv()) == {"i": 1, "d": True}
        c.emit("r", "x")
        # Room messages carry their position; ws-wrapper ignores "r" and "o".
        message = json.loads(await conn.recv())
        assert message["a"] == ["said", "x"] and message["r"] == "r"


async def test_the_hub_answers_hello_with_the_welcome() -> None:
    async with cluster() as c, wskit.connect(c.url(0) + "?wskit=1") as conn:
        welcome = json.loads(await conn.recv())
        assert welcome["c"] == "_wskit" and welcome["a"][0] == "welcome"
        await conn.send(json.dumps({"i": 1, "c": "_wskit", "a": ["hello"]}))
        answer = json.loads(await conn.recv())
        assert answer["d"] == welcome["a"][1]
        assert answer["d"]["recovered"] is False and answer["d"]["reason"] is None


@pytest.mark.parametrize("value", ["not json", "[" * 2_500, '{"s": 5}', '{"s": "unknown"}'])
async def test_a_bad_session_parameter_starts_a_new_session(value: str) -> None:
    # The query parameter is the client's: nested past json's stack, not JSON,
    # or naming no session, it gets a fresh session (not a 1011).
    from urllib.parse import quote

    async with cluster() as c, wskit.connect(c.url(0) + "?wskit=" + quote(value)) as conn:
        welcome = json.loads(await conn.recv())
        assert welcome["c"] == "_wskit" and welcome["a"][0] == "welcome"
        info = welcome["a"][1]
        assert info["recovered"] is False and len(info["session"]) == 32
