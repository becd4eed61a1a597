"""Apps for ``wskit serve`` tests (run in a subprocess with this directory on PYTHONPATH)."""

from __future__ import annotations

from wskit import Conn
from wskit.hub import Hub

hub = Hub()


@hub.on("add")
def add(a: int, b: int) -> int:
    return a + b


async def shout(conn: Conn) -> None:
    """A plain handler: every text back in capitals, and the path it was reached on."""
    assert conn.request is not None
    await conn.send(f"path {conn.request.path}")
    async for message in conn:
        await conn.send(message.upper() if isinstance(message, str) else message)


def make_hub() -> Hub:
    """A factory: ``wskit serve sample_app:make_hub`` calls it."""
    made = Hub()
    made.on("whoami", lambda: "made by a factory")
    return made


not_servable = 42
