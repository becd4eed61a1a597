"""Send one message to many connections, encoding it once."""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.prepared import PreparedMessage
from .connection import Conn
from .direct_write import NO_LIMIT, fanout

__all__ = ["broadcast"]


def broadcast(
    conns: Iterable[Conn],
    message: str | bytes | PreparedMessage,
    *,
    max_buffer: int | None = None,
) -> int:
    """Write ``message`` to every open connection in ``conns`` without waiting.

    The frame is built once (and compressed once for every group of
    connections with the same deflate parameters and no context takeover)
    and written to each transport. Connections that are closing, busy
    sending a fragmented message, or, when ``max_buffer`` is set, holding
    more than ``max_buffer`` unsent bytes (a peer that stopped reading),
    are skipped, so one slow receiver never holds up the others.

    Returns:
        The number of connections the message was written to.
    """
    prepared = message if isinstance(message, PreparedMessage) else PreparedMessage(message)
    # One loop (compiled when the kernel is built) writes the common frame to
    # every plain connection; the rest, compressed ones for instance, take
    # the per-connection path.
    sent, left = fanout(
        conns, prepared.plain_frame(), NO_LIMIT if max_buffer is None else max_buffer, None
    )
    for conn in left:
        if conn.write_prepared(prepared, max_buffer):
            sent += 1
    return sent
