"""The hub's metrics: :func:`watch_hub` adds a hub to a :class:`~wskit.metrics.Metrics`.

What the hub counts anyway is read when a snapshot is made: its clients
and rooms, the messages dropped for slow clients (``Hub.dropped``), the
async handlers running (each ``Client.inflight``), and the backplane's
:class:`~wskit.hub.backplane.BackplaneStats`. Two things are counted only
while watched, so that an unwatched hub pays nothing for them: the emits
written to clients (the hub's ``deliver``, which every backplane calls, is
wrapped to add up what it returns), and the handlers' durations
(:meth:`Dispatcher.time_handlers <wskit.hub.dispatch.Dispatcher.time_handlers>`).
"""

from __future__ import annotations

from ..metrics import Histogram, Metrics, MetricsSnapshot
from .backplane import Position, Target
from .hub import Hub

__all__ = ["HubMetrics", "watch_hub"]


class HubMetrics:
    """What :func:`watch_hub` counts of one hub, and how it fills a snapshot."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        #: Emits written to the hub's clients, one per receiving client.
        self.deliveries = 0
        #: How long the read loop spent dispatching each event.
        self.inline = Histogram()
        #: How long each async handler ran.
        self.task = Histogram()

    def start(self) -> None:
        """Count deliveries and time handlers from now on."""
        hub = self.hub
        deliver = hub.deliver

        def counted_deliver(
            target: Target,
            name: str,
            message: str,
            exclude: str | None,
            position: Position | None = None,
        ) -> int:
            sent = deliver(target, name, message, exclude, position)
            self.deliveries += sent
            return sent

        hub.deliver = counted_deliver
        # Inside the hub's package: the dispatcher is the hub's own part.
        hub._dispatcher.time_handlers(self.inline.observe, self.task.observe)

    def collect(self, snapshot: MetricsSnapshot) -> None:
        """Fill the hub's fields of ``snapshot``."""
        hub = self.hub
        clients = hub.clients
        snapshot.hub_clients = len(clients)
        snapshot.hub_rooms = len(hub.rooms)
        snapshot.hub_deliveries = self.deliveries
        snapshot.overflow_drops = hub.dropped
        snapshot.requests_in_flight = sum(client.inflight for client in clients.values())
        snapshot.handler_seconds = {
            "inline": self.inline.snapshot(),
            "task": self.task.snapshot(),
        }
        stats = hub.backplane.stats
        snapshot.backplane_sent = stats.sent
        snapshot.backplane_published = stats.published
        snapshot.backplane_delivered = stats.delivered
        snapshot.backplane_dropped = stats.dropped
        snapshot.backplane_lost = stats.lost
        snapshot.backplane_buffered = stats.buffered
        snapshot.backplane_reconnects = stats.reconnects

    def rooms(self) -> dict[str, int]:
        """Members on this node per room, now."""
        return {room: len(members) for room, members in self.hub.rooms.items()}


def watch_hub(metrics: Metrics, hub: Hub) -> HubMetrics:
    """Add ``hub``'s counters and gauges to every snapshot of ``metrics``.

    Call it before the hub serves its first connection: connections that
    began before are not timed. ``metrics.watch(server)`` counts the
    connections themselves; :meth:`Metrics.rooms <wskit.metrics.Metrics.rooms>`
    then reads the hub's rooms.
    """
    watched = HubMetrics(hub)
    watched.start()
    metrics.add_collector(watched.collect)
    metrics.set_rooms(watched.rooms)
    return watched
