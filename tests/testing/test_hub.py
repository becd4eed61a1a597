"""wskit.testing.hub: HubTestClient, the hub's own client over an in-memory connection."""

from __future__ import annotations

import pytest

import wskit
from wskit.hub import Client, ClientError, Hub, Reject, RequestError
from wskit.protocol.http11 import Request, Response
from wskit.testing import HubEvent, HubTestClient

hub = Hub(client_rooms=True)
chat = hub.of("chat")


@hub.on("add")
def add(a: int, b: int) -> int:
    return a + b


@hub.on("say")
def say(client: Client, room: str, text: str) -> None:
    client.to(room).emit("said", text)


@hub.on("ping")
def ping(client: Client, value: int) -> None:
    client.emit("pong", value + 1)


@hub.on("forbidden")
def forbidden() -> None:
    raise ClientError("not for you")


@hub.on("plain")
def plain() -> None:
    raise Reject({"code": 7})


@hub.on("ask_back")
async def ask_back(client: Client, value: int) -> int:
    doubled: int = await client.request("double", value)
    return doubled + 1


@chat.on("hello")
def hello(client: Client, name: str) -> None:
    client.emit("welcome", name)


async def test_requests_and_their_typed_errors() -> None:
    async with HubTestClient(hub) as client:
        assert await client.request("add", 2, 3) == 5
        with pytest.raises(RequestError, match="argument 'b': expected int"):
            await client.request("add", 2, "three")
        with pytest.raises(RequestError, match="not for you") as rejected:
            await client.request("forbidden")
        assert rejected.value.data == {"message": "not for you"}
        with pytest.raises(RequestError) as rejected:
            await client.request("plain")
        assert rejected.value.data == {"code": 7}


async def test_events_both_ways() -> None:
    async with HubTestClient(hub) as client:
        await client.emit("ping", 1)
        await client.emit("ping", 10)
        assert await client.next_event("pong") == HubEvent("pong", (2,))
        assert await client.next_event("pong") == HubEvent("pong", (11,))
        assert list(client.events) == [HubEvent("pong", (2,)), HubEvent("pong", (11,))]


async def test_next_event_times_out_naming_what_came() -> None:
    async with HubTestClient(hub) as client:
        await client.emit("ping", 1)
        await client.request("add", 0, 0)  # the pong came before this answer
        with pytest.raises(TimeoutError, match=r"no event 'said'.*\['pong'\]"):
            await client.next_event("said", timeout=0.01)


async def test_the_hub_asks_the_client() -> None:
    async with HubTestClient(hub) as client:
        client.on("double", lambda value: value * 2)
        assert await client.request("ask_back", 20) == 41


async def test_rooms() -> None:
    async with HubTestClient(hub) as alice, HubTestClient(hub) as bob:
        await alice.join("lobby")
        await bob.join("lobby")
        assert hub.count("lobby") == 2
        await alice.emit("say", "lobby", "hello")
        assert await bob.next_event("said") == HubEvent("said", ("hello",))
        # alice's answer comes after anything the hub sent her before it.
        await alice.request("add", 0, 0)
        assert not [event for event in alice.events if event.name == "said"]
        await bob.leave("lobby")
        hub.to("lobby").emit("said", "to alice only")
        assert (await alice.next_event("said")).args == ("to alice only",)
    assert hub.count("lobby") == 0


async def test_channels() -> None:
    async with HubTestClient(hub) as client:
        await client.emit("hello", "ann", channel="chat")
        assert await client.next_event("welcome") == HubEvent("welcome", ("ann",))


async def test_a_refused_client_raises_on_entering() -> None:
    def process_request(conn: wskit.ServerConn, request: Request) -> Response | None:
        return Response(403, "Forbidden", wskit.Headers(), b"no")

    options = wskit.ServerOptions(process_request=process_request)
    with pytest.raises(wskit.HandshakeRejected) as rejected:
        async with HubTestClient(hub, server_options=options):
            pass
    assert rejected.value.status == 403


async def test_the_hub_serves_its_script_as_under_serve() -> None:
    async with HubTestClient(hub, "/?token=abc") as client:
        assert client.conn is not None
        assert client.conn.request.target == "/?token=abc"
        assert client.server.options.process_request == hub.process_request
