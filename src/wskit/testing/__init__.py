"""Test your handlers, ASGI applications and hubs in memory, with no sockets.

The test client runs the whole protocol, with wskit's own connection on
both sides: the opening handshake (and ``process_request``, the upgrader's
checks and refusals), framing, masking, permessage-deflate when it is
negotiated, the bounds (1009 for a message over ``max_size``), and the
closing handshake. Only the TCP connection is replaced, by two transports
connected in memory (:mod:`wskit.testing.transport`), with asyncio's flow
control, so that backpressure behaves as over a socket::

    async with wskit.testing.connect(echo, "/chat") as conn:
        await conn.send("hello")
        assert await conn.recv() == "hello"

    async with wskit.testing.connect_asgi(app, "/ws") as conn:
        ...

    async with wskit.testing.HubTestClient(hub) as client:
        assert await client.request("add", 1, 2) == 3

``conn`` is a :class:`wskit.ClientConn`, what :func:`wskit.connect` returns:
``send``, ``recv``, ``async for``, ``ping``, ``close``, ``close_code``...

The modules, one job each:

* :mod:`wskit.testing.transport`: :class:`MemoryTransport`, :func:`transport_pair`;
* :mod:`wskit.testing.client`: the client side, :class:`ClientOptions`;
* :mod:`wskit.testing.server`: connection handlers, :func:`serve`
  (a :class:`MemoryServer` for several clients) and :func:`connect`;
* :mod:`wskit.testing.asgi`: ASGI applications, :func:`serve_asgi` and
  :func:`connect_asgi` (under wskit's uvicorn protocol class; needs uvicorn);
* :mod:`wskit.testing.hub`: :class:`HubTestClient`, :class:`HubEvent`;
* :mod:`wskit.testing.plugin`: the pytest plugin (fixtures only).

A handler's (or application's) exception is raised again at the end of
the ``async with`` block that owns the server, so that a test fails where
the bug is, whatever it checked; ``raise_server_exceptions=False`` turns it
off.
"""

from .asgi import AsgiConnecting, MemoryAsgiServer, connect_asgi, serve_asgi
from .client import HOST, ClientOptions
from .hub import HubEvent, HubTestClient
from .server import Connecting, MemoryServer, connect, serve
from .transport import MemoryTransport, transport_pair

__all__ = [
    "HOST",
    "AsgiConnecting",
    "ClientOptions",
    "Connecting",
    "HubEvent",
    "HubTestClient",
    "MemoryAsgiServer",
    "MemoryServer",
    "MemoryTransport",
    "connect",
    "connect_asgi",
    "serve",
    "serve_asgi",
    "transport_pair",
]
