"""Frames written straight to the socket when the transport has nothing queued.

A transport's ``write()`` on an idle socket ends in one ``send()``; for small
frames the Python around that call costs as much as the system call, which
matters most in a broadcast, where one frame goes to thousands of sockets.
With the compiled kernel (``wskit.speedups.write``) :func:`write_through`
sends from C and hands only what the socket did not take to the transport,
so ordering and backpressure stay the transport's. Without it, and for
transports whose socket must not be written around (TLS, wrappers with
buffers of their own), it is ``transport.write()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .. import speedups

__all__ = ["socket_fd", "write_through"]

#: Transports that write their socket directly and report every byte they
#: hold in ``get_write_buffer_size()``: asyncio's and uvloop's, TCP and Unix.
DIRECT_TRANSPORTS = frozenset({"_SelectorSocketTransport", "TCPTransport", "UnixTransport"})


def socket_fd(transport: asyncio.BaseTransport) -> int:
    """The descriptor :func:`write_through` may send on, or -1 to use the transport only."""
    if speedups.write_through is None or type(transport).__name__ not in DIRECT_TRANSPORTS:
        return -1
    if transport.get_extra_info("ssl_object") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


def _write_through_python(transport: Any, fd: int, data: bytes | bytearray | memoryview) -> bool:
    """The fallback: ``transport.write(data)`` unless the transport is closing."""
    if transport.is_closing():
        return False
    transport.write(data)
    return True


write_through: Callable[[Any, int, bytes | bytearray | memoryview], bool] = (
    speedups.write_through or _write_through_python
)
"""Write ``data`` now: sent on ``fd`` when the transport holds nothing, else queued by it.

Returns ``False``, writing nothing, when the transport is closing. ``fd``
comes from :func:`socket_fd` and must be -1 once the connection is lost.
"""
