"""The pytest plugin of wskit: fixtures, and nothing else.

Installing wskit registers this module with pytest (the ``pytest11``
entry point), so it must change nothing for those who do not ask for it:
it defines fixtures only (no hooks, no command-line options, no markers),
each named ``wskit_...``. They are plain (not ``async``) fixtures that
return the factories of :mod:`wskit.testing`, so that they work the same
under pytest-asyncio, anyio's pytest plugin, or any other runner of
``async def`` tests; the ``async with`` in the test opens and closes what
they make::

    async def test_echo(wskit_connect):
        async with wskit_connect(echo, "/") as conn:
            await conn.send("hi")
            assert await conn.recv() == "hi"

``pytest -p no:wskit`` turns the plugin off.
"""

from __future__ import annotations

import pytest

from . import HubTestClient, connect, connect_asgi, serve, serve_asgi

__all__ = [
    "wskit_connect",
    "wskit_connect_asgi",
    "wskit_hub_client",
    "wskit_serve",
    "wskit_serve_asgi",
]


@pytest.fixture
def wskit_connect() -> type[connect]:
    """:func:`wskit.testing.connect`: ``async with wskit_connect(handler, "/path") as conn:``."""
    return connect


@pytest.fixture
def wskit_serve() -> type[serve]:
    """:func:`wskit.testing.serve`: ``async with wskit_serve(handler) as server:``."""
    return serve


@pytest.fixture
def wskit_connect_asgi() -> type[connect_asgi]:
    """:func:`wskit.testing.connect_asgi`: ``async with wskit_connect_asgi(app, "/ws") as c:``."""
    return connect_asgi


@pytest.fixture
def wskit_serve_asgi() -> type[serve_asgi]:
    """:func:`wskit.testing.serve_asgi`: ``async with wskit_serve_asgi(app) as server:``."""
    return serve_asgi


@pytest.fixture
def wskit_hub_client() -> type[HubTestClient]:
    """:class:`wskit.testing.HubTestClient`: ``async with wskit_hub_client(hub) as client:``."""
    return HubTestClient
