"""Frames written straight to the socket when the transport has nothing queued.

A transport's ``write()`` on an idle socket ends in one ``send()``; for small
frames the Python around that call costs as much as the system call, which
matters most in a broadcast, where one frame goes to thousands of sockets.

Each open :class:`~wskit.asyncio.connection.Conn` has a writer, made by
:func:`new_writer`. With the compiled kernel (``wskit.speedups.write``) the
writer sends from C and hands only what the socket did not take to the
transport, so ordering and backpressure stay the transport's; and
:func:`fanout` writes one frame to the writers of many connections in one C
loop. Without the kernel, and for transports whose socket must not be
written around (TLS, wrappers with buffers of their own), the writer is
``transport.write()`` and :func:`fanout` a Python loop with the same result.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from .. import speedups
from ..protocol.connection import Connection

__all__ = ["Writer", "fanout", "new_writer"]

T = TypeVar("T")

#: The transports that write their socket themselves and count every byte
#: they hold in ``get_write_buffer_size()``: asyncio's and uvloop's, TCP and Unix.
DIRECT_TRANSPORTS = frozenset({"_SelectorSocketTransport", "TCPTransport", "UnixTransport"})

#: asyncio's own socket transport closes its socket only after
#: ``connection_lost``, when the writer is detached, so its writer need not
#: ask ``is_closing()`` before each direct send; uvloop's closes the socket
#: at once on ``abort()``, so its writers ask.
_CLOSES_AFTER_CONNECTION_LOST = "_SelectorSocketTransport"


class Writer(Protocol):
    """What a connection's writer offers (both implementations)."""

    transport: Any
    fd: int
    open: bool
    plain: bool
    busy: bool

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Write ``data`` now; ``False``, writing nothing, if the transport is closing."""

    def write_parts(self, parts: list[bytes]) -> bool:
        """Write ``parts`` in order (one ``sendmsg()`` when it can); ``False`` if closing."""

    def detach(self) -> None:
        """Stop sending on the socket directly (the connection is closing or lost)."""


class PythonWriter:
    """The writer without the compiled kernel: ``transport.write()`` behind a closing check.

    It never sends around the transport, so unlike the compiled ``Writer``
    it takes neither a socket descriptor nor a policy for checking
    ``is_closing()``: it always checks.
    """

    __slots__ = ("transport", "fd", "open", "plain", "busy")

    def __init__(self, transport: Any, plain: bool) -> None:
        self.transport = transport
        self.fd = -1  # this writer never sends around the transport
        self.open = True
        self.plain = plain
        self.busy = False

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Write ``data`` now; ``False``, writing nothing, if the transport is closing."""
        transport = self.transport
        if transport.is_closing():
            return False
        transport.write(data)
        return True

    def write_parts(self, parts: list[bytes]) -> bool:
        """Write ``parts`` in order; ``False``, writing nothing, if the transport is closing."""
        transport = self.transport
        if transport.is_closing():
            return False
        for part in parts:  # large payloads are not copied to be joined
            transport.write(part)
        return True

    def detach(self) -> None:
        """Nothing to stop: this writer always goes through the transport."""

    def takes(self, max_buffer: int) -> bool:
        """Whether :func:`fanout` may write the common frame here now."""
        transport = self.transport
        return (
            self.open
            and self.plain
            and not self.busy
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= max_buffer
        )


def _fanout_python(
    items: Mapping[T, Any] | Iterable[T], frame: bytes, max_buffer: int, skip: object
) -> tuple[int, list[T]]:
    written = 0
    left: list[T] = []
    pairs: Iterable[tuple[T, Any]] = (
        items.items()
        if type(items) is dict
        else ((item, getattr(item, "frame_writer", None)) for item in items)
    )
    for item, writer in pairs:
        if item is skip:
            continue
        if type(writer) is PythonWriter and writer.takes(max_buffer):
            writer.transport.write(frame)
            written += 1
        else:
            left.append(item)
    return written, left


_compiled = speedups.write_kernel

fanout: Callable[[Mapping[T, Any] | Iterable[T], bytes, int, object], tuple[int, list[T]]] = (
    _fanout_python if _compiled is None else _compiled.fanout
)
"""Write ``frame`` to the writer of every item but ``skip``.

``items`` is a dict ``{item: writer}`` (the cheapest: only the writers are
read) or an iterable of items with a ``frame_writer`` attribute.

Returns how many were written and the items left for the caller's own path:
those without a writer, needing a frame of their own (compression, client
masking), sending a fragmented message, no longer open, or holding more than
``max_buffer`` unsent bytes.
"""

#: ``max_buffer`` for "no limit".
NO_LIMIT = sys.maxsize


def new_writer(transport: asyncio.BaseTransport, protocol: Connection) -> Writer:
    """The writer of a connection whose WebSocket phase starts on ``transport``."""
    # Whether the connection takes the frame every plain connection takes.
    plain = protocol.deflate is None and not protocol.masking
    if _compiled is None:
        return PythonWriter(transport, plain)
    fd = -1
    name = type(transport).__name__
    if name in DIRECT_TRANSPORTS and transport.get_extra_info("ssl_object") is None:
        sock = transport.get_extra_info("socket")
        fd = -1 if sock is None else int(sock.fileno())
    writer: Writer = _compiled.Writer(
        transport, fd, plain, fd < 0 or name != _CLOSES_AFTER_CONNECTION_LOST
    )
    return writer
