"""Hubs for the attack suite (``tests/attacks/test_hub.py``): served by ``wskit serve`` and uvicorn.

``slow`` requests wait (a handler in flight each) until ``release``;
``running`` says how many do, ``secret`` fails with a secret in its
exception, ``typed`` takes an ``int``. :func:`make_hub` bounds a client to 4
handlers in flight; :func:`make_limited_hub` adds a rate limit.
"""

from __future__ import annotations

import asyncio

from wskit.hub import Hub

MAX_INFLIGHT = 4


def make_hub(**options: object) -> Hub:
    """The hub of the attacks (``wskit serve hub_attack_app:make_hub``)."""
    hub = Hub(max_inflight=MAX_INFLIGHT, **options)  # type: ignore[arg-type]
    running = [0]
    released = asyncio.Event()

    @hub.on("slow")
    async def slow() -> None:
        running[0] += 1
        try:
            await released.wait()
        finally:
            running[0] -= 1

    @hub.on("release")
    def release() -> None:
        released.set()

    @hub.on("running")
    def count() -> int:
        return running[0]

    @hub.on("secret")
    def secret() -> None:
        raise KeyError("db-password=hunter2")

    @hub.on("typed")
    def typed(x: int) -> int:
        return x

    return hub


def make_limited_hub() -> Hub:
    """:func:`make_hub` with 5 events at once and then 1 per 1000 s per client, closed past it."""
    return make_hub(rate_limit=(0.001, 5), rate_limit_policy="close")
