"""Send one message to many connections, encoding it once."""

from __future__ import annotations

from collections.abc import Iterable

from ..exceptions import LocalProtocolError
from ..protocol.connection import PreparedMessage, State
from .connection import Conn, logger

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
    sent = 0
    for conn in conns:
        protocol = conn.protocol
        transport = conn.transport
        if protocol is None or transport is None or protocol.state is not State.OPEN:
            continue
        if protocol.close_sent is not None or transport.is_closing():
            continue
        if max_buffer is not None and transport.get_write_buffer_size() > max_buffer:
            continue
        lock = conn._send_lock
        if lock is not None and lock.locked():
            continue
        try:
            transport.write(prepared.frame_for(protocol))
        except LocalProtocolError:  # pragma: no cover - guarded above
            logger.debug("broadcast skipped a connection", exc_info=True)
            continue
        sent += 1
    return sent
