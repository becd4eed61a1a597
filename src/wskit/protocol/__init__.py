"""The sans-I/O core: RFC 6455 and RFC 7692 with no sockets and no asyncio.

Start with :class:`~wskit.protocol.connection.Connection`; the opening
handshake is in :mod:`wskit.protocol.handshake` and the HTTP it rides on
in :mod:`wskit.protocol.http11`.
"""

# The package's names live in its modules; import them from there.
__all__: list[str] = []
