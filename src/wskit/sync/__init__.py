"""The blocking client: WebSocket without asyncio, for scripts, notebooks and threads.

::

    from wskit.sync import connect

    with connect("ws://127.0.0.1:8765/") as conn:
        conn.send("hello")
        print(conn.recv())

:func:`connect` takes the options of :func:`wskit.connect` and returns a
:class:`ClientConn` whose methods block: ``send``, ``recv(timeout=...)``,
iteration, ``ping`` (a :class:`concurrent.futures.Future` of the round
trip), ``pong``, ``close``. It runs on the same sans-I/O core as the asyncio
client. Several threads may share a connection: sends are serialized, a
background thread answers pings and completes the closing handshake while
nobody reads, and a second thread calling ``recv()`` while one is waiting
gets :exc:`ConcurrencyError` (see :mod:`wskit.sync.connection`).
"""

from ..exceptions import ConcurrencyError
from .client import ClientConn, ConnOptions, connect
from .connection import Conn, Data

__all__ = ["connect", "ClientConn", "Conn", "ConnOptions", "ConcurrencyError", "Data"]
