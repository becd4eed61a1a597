"""The hub that ``make soak`` (``scripts/soak.py``) attacks under ``wskit serve``.

Run with this directory on PYTHONPATH: ``wskit serve soak_app:hub``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wskit.hub import Hub

hub = Hub()

SLOW_SECONDS = 10.0
"""How long ``slow`` takes: long enough that a flood of requests piles up."""


@hub.on("slow")
async def slow() -> str:
    """A request that takes a while, as a database call would."""
    await asyncio.sleep(SLOW_SECONDS)
    return "done"


@hub.on("leak")
def leak() -> None:
    """A server bug whose exception text is a secret the client must never read."""
    raise KeyError("db-password=hunter2")


@hub.on("add")
def add(a: int, b: int) -> int:
    """Typed arguments: a client that sends strings gets a conversion error."""
    return a + b


@hub.on("echo")
def echo(*args: Any) -> list[Any]:
    """Any arguments back (a deep value must be refused before it gets here)."""
    return list(args)
