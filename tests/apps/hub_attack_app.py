"""Hubs for the attack suite (``tests/attacks/test_hub.py``): served by ``wskit serve`` and uvicorn.

``slow`` requests wait (a handler in flight each) until ``release``;
``running`` says how many do, ``secret`` fails with a secret in its
exception, ``typed`` takes an ``int``, ``account`` an :class:`Account`
whose validation fails with a secret. :func:`make_hub` bounds a client to 4
handlers in flight; :func:`make_limited_hub` adds a rate limit;
:func:`make_iris_hub` speaks iris (``echo`` sends its value back).
"""

from __future__ import annotations

import asyncio
import dataclasses

from wskit.hub import Client, Hub

MAX_INFLIGHT = 4


@dataclasses.dataclass
class Account:
    """A type whose own validation fails with the server's secret in its text."""

    number: int

    def __post_init__(self) -> None:
        if self.number < 0:
            raise ValueError("lookup failed in postgres://admin:s3cret@db/accounts")


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

    @hub.on("account")
    def account(a: Account) -> int:
        return a.number

    return hub


def make_iris_hub() -> Hub:
    """:func:`make_hub` on the iris protocol, with ``echo``."""
    hub = make_hub(protocol="iris")

    @hub.on("echo")
    def echo(client: Client, value: str) -> None:
        client.emit("echo", value)

    return hub


def make_limited_hub() -> Hub:
    """:func:`make_hub` with 5 events at once and then 1 per 1000 s per client, closed past it."""
    return make_hub(rate_limit=(0.001, 5), rate_limit_policy="close")
