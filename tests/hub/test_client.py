"""The server-side client (``wskit.hub.client``): its store, and its requests to the peer.

Every test serves a :class:`~wskit.hub.Hub` and talks to it with
:class:`~hub.hub_support.Peer`, a ws-wrapper client written by hand.
"""

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

import wskit
from hub.hub_support import Peer, pinging_hub, serving
from wskit.hub import Client, Hub, RequestError

# --------------------------------------------------------------------------- values


async def test_values_store_and_id_generator_sees_the_request() -> None:
    seen: list[str] = []

    def name_from_query(request: wskit.Request) -> str:
        seen.append(request.path)
        return request.query.partition("=")[2]

    hub = Hub(id_generator=name_from_query)

    @hub.on("connect")
    def remember(client: Client) -> None:
        client.set("agent", client.conn.request_headers.get("User-Agent"))

    @hub.on("whoami")
    def whoami(client: Client) -> dict[str, Any]:
        client.set("asked", client.get("asked", 0) + 1)
        return {
            "id": client.id,
            "path": client.request_info.path,
            "agent": client.get("agent"),
            "asked": client.get("asked"),
            "missing": client.get("missing", "default"),
            "values": sorted(client.values),
        }

    async with serving(hub) as url:
        peer = await Peer.open(url + "room/7?user=alice", user_agent="probe/1")
        await peer.call("whoami")
        assert await peer.call("whoami") == {
            "id": "alice",
            "path": "/room/7",
            "agent": "probe/1",
            "asked": 2,
            "missing": "default",
            "values": ["agent", "asked"],
        }
        assert seen == ["/room/7"]
        await peer.close()


# --------------------------------------------------------------------------- requests to the client


async def test_server_requests_resolve_reject_time_out_and_fail_on_disconnect() -> None:
    hub = pinging_hub()
    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.call("ping")
        (client,) = hub.clients.values()

        async def answer_with(reply: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
            message = await peer.recv()
            await peer.send(reply(message["i"]))
            return message

        # Resolved.
        pending = asyncio.create_task(client.request("sum", 1, 2, timeout=5))
        asked = await answer_with(lambda i: {"i": i, "d": 3})
        assert asked == {"i": asked["i"], "a": ["sum", 1, 2]}
        assert await pending == 3

        # Resolved without "d" (JavaScript's undefined).
        pending = asyncio.create_task(client.request("void"))
        await answer_with(lambda i: {"i": i})
        assert await pending is None

        # Rejected with a serialized Error.
        pending = asyncio.create_task(client.of("ch").request("fail", timeout=5))
        asked = await answer_with(lambda i: {"i": i, "e": {"message": "client boom"}, "_": 1})
        assert asked["c"] == "ch"
        with pytest.raises(RequestError, match="client boom") as error:
            await pending
        assert error.value.data == {"message": "client boom"}

        # Rejected with a plain value, and with null: "e" present always rejects.
        for rejection, text in (("nope", "nope"), (None, "None"), (0, "0")):
            pending = asyncio.create_task(client.request("fail"))
            await answer_with(lambda i, r=rejection: {"i": i, "e": r})  # type: ignore[misc]
            with pytest.raises(RequestError, match=text) as error:
                await pending
            assert error.value.data == rejection

        # Timed out: RequestError, and the client is told to cancel.
        with pytest.raises(RequestError, match="timed out"):
            await client.request("slow", timeout=0.05)
        asked = await peer.recv()
        assert asked["a"] == ["slow"]
        assert await peer.recv() == {"i": asked["i"], "x": 1}
        # A late answer to it is ignored.
        await peer.send({"i": asked["i"], "d": "late"})
        assert await peer.call("ping") == "pong"

        # The client goes away while a request is pending.
        pending = asyncio.create_task(client.request("forever"))
        await peer.recv()
        await peer.close()
        with pytest.raises(RequestError, match="disconnected"):
            await asyncio.wait_for(pending, 5)
        with pytest.raises(RequestError, match="disconnected"):
            await client.request("after")


async def test_an_async_handler_may_ask_the_client_before_answering() -> None:
    hub = Hub()

    @hub.on("greet")
    async def greet(client: Client) -> str:
        name = await client.request("your_name", timeout=5)
        return f"hello {name}"

    async with serving(hub) as url:
        peer = await Peer.open(url)
        request_id = await peer.send_request("greet")
        asked = await peer.recv()
        assert asked["a"] == ["your_name"]
        await peer.send({"i": asked["i"], "d": "ann"})
        assert await peer.response(request_id) == {"i": request_id, "d": "hello ann"}
        await peer.close()


async def test_requests_time_out_after_the_hubs_request_timeout_unless_the_call_says() -> None:
    hub = pinging_hub(request_timeout=0.05)
    assert Hub().request_timeout == 60.0
    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.call("ping")
        (client,) = hub.clients.values()

        # The hub's default: no answer, RequestError, and the client is told to cancel.
        with pytest.raises(RequestError, match=r"timed out after 0\.05 s"):
            await client.request("ignored")
        asked = await peer.recv()
        assert await peer.recv() == {"i": asked["i"], "x": 1}

        # The call's own timeout wins, longer or without limit (math.inf).
        for timeout in (30.0, math.inf):
            pending = asyncio.create_task(client.request("slow", timeout=timeout))
            asked = await peer.recv()
            await asyncio.sleep(0.1)  # past the hub's default, with no timer to fire
            assert not pending.done()
            await peer.send({"i": asked["i"], "d": "late but fine"})
            assert await pending == "late but fine"
        await peer.close()
