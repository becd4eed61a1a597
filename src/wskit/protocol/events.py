"""Events that :class:`~wskit.protocol.connection.Connection` reports.

They are immutable named tuples: cheap to create on the hot path, and
unpackable (``data, fin = event``) where that reads better.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DataReceived", "PingReceived", "PongReceived", "CloseReceived", "Event"]


class DataReceived(NamedTuple):
    """A piece of a data message.

    ``data`` is ``str`` for a text message (already validated and decoded)
    and ``bytes`` for a binary one (already decompressed). A message that
    arrived in one frame is a single event with ``fin=True``; a fragmented
    one is a run of events whose last has ``fin=True``.
    """

    data: str | bytes
    fin: bool


class PingReceived(NamedTuple):
    """A ping frame arrived; a pong has been queued unless ``auto_pong`` is off."""

    data: bytes


class PongReceived(NamedTuple):
    """A pong frame arrived."""

    data: bytes


class CloseReceived(NamedTuple):
    """A valid close frame arrived; ``code`` is 1005 when it carried none."""

    code: int
    reason: str


#: An event of the connection, as
#: :meth:`~wskit.protocol.connection.Connection.events_received` returns them.
Event = DataReceived | PingReceived | PongReceived | CloseReceived
