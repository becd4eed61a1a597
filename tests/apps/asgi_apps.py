"""Applications that several suites serve, and the check that goes with the hub.

Imported as ``asgi_apps`` by the apps the ``uvicorn`` command runs in a
subprocess (``tests/uvicorn/served_apps.py``, ``tests/metrics/metered_apps.py``:
this directory is on their ``PYTHONPATH``), and as ``apps.asgi_apps`` by the
tests that serve an app in their own event loop (uvicorn, Hypercorn).
"""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect

from wskit.hub import Client, Hub, HubClient

__all__ = ["check_shouting", "echo_any", "shouting_hub"]

TIMEOUT = 10


async def echo_any(websocket: WebSocket) -> None:
    """A FastAPI/Starlette route: every message back as it came, text or bytes."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


def shouting_hub() -> Hub:
    """A hub where ``join`` joins a room and ``shout`` sends ``heard`` in capitals to the room."""
    hub = Hub()

    @hub.on("join")
    def join(client: Client, room: str) -> bool:
        client.join(room)
        return True

    @hub.on("shout")
    def shout(client: Client, room: str, text: str) -> None:
        client.to(room).emit("heard", text.upper())

    return hub


async def check_shouting(url: str) -> None:
    """Two clients of a :func:`shouting_hub` at ``url`` join a room; one hears the other."""
    async with HubClient(url) as alice, HubClient(url) as bob:
        heard: asyncio.Queue[str] = asyncio.Queue()
        bob.on("heard", heard.put_nowait)
        assert await alice.request("join", "lobby") is True
        assert await bob.request("join", "lobby") is True
        await alice.emit("shout", "lobby", "hello")
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == "HELLO"
