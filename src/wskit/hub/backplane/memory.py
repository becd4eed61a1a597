"""The in-memory backplane: every hub of this process, and nothing further.

The default backplane, and the reference behaviour the others follow. It
delivers every emit at once to the hubs attached to it (several hubs may
share one, as nodes of a cluster in one process, which the tests use). With
a history (``history_size > 0``, set by the hub for recovery) each room
keeps its last messages in a ring buffer, a ``_RoomLog``, numbered in
an epoch of its own: a room idle longer than ``history_ttl`` starts a new
epoch, as a Redis stream does when its keys expire.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from typing import Any

from .interface import (
    Backplane,
    BackplaneStats,
    ClusterNode,
    Entry,
    HistoryError,
    Node,
    Position,
    PresenceEvent,
    Target,
    check_since,
)

__all__ = ["MemoryBackplane"]


class _RoomLog:
    """A room's bounded, in-memory history (the memory backplane's)."""

    __slots__ = ("epoch", "top", "entries", "last")

    def __init__(self, size: int) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self.top = 0
        self.entries: deque[tuple[Entry, float]] = deque(maxlen=size)
        self.last = time.monotonic()


class MemoryBackplane(Backplane):
    """Delivers in this process only; the default, and the reference behaviour."""

    def __init__(self) -> None:
        self._nodes: list[Node] = []
        self.node_id = uuid.uuid4().hex[:12]
        self._stats = BackplaneStats()
        self._logs: dict[str, _RoomLog] = {}
        self._sessions: dict[str, tuple[float, str]] = {}
        self._presence: dict[str, dict[str, dict[str, Any]]] = {}

    def attach(self, node: Node) -> None:
        """Register ``node``; several hubs may share one memory backplane."""
        self._nodes.append(node)

    @property
    def stats(self) -> BackplaneStats:
        """Counters (see :class:`BackplaneStats`)."""
        return self._stats

    def publish(self, target: Target, name: str, message: str, exclude: str | None = None) -> None:
        """Deliver to every attached hub now (room messages numbered when there is a history)."""
        self._stats.sent += 1
        position: Position | None = None
        if target is Target.ROOM and self.history_size > 0:
            log = self._log(name)
            log.top += 1
            log.last = time.monotonic()
            log.entries.append((Entry(log.top, message, exclude), log.last))
            position = (log.epoch, log.top)
        self._stats.published += 1
        for node in self._nodes:
            if position is None:
                node.deliver(target, name, message, exclude)
            else:
                node.deliver(target, name, message, exclude, position)
        self._stats.delivered += 1

    # -- history -----------------------------------------------------------------------

    def _log(self, room: str) -> _RoomLog:
        log = self._logs.get(room)
        now = time.monotonic()
        if log is not None and now - log.last > self.history_ttl:
            log = None  # idle past its lifetime: a new epoch
        if log is None:
            log = self._logs[room] = _RoomLog(max(1, self.history_size))
            if len(self._logs) > 64:
                self._forget_idle(now)
        return log

    def _forget_idle(self, now: float) -> None:
        for room, log in list(self._logs.items()):
            if now - log.last > self.history_ttl:
                del self._logs[room]

    def cursor(self, room: str) -> Position | None:
        """The room's last position (creating its history if it has none)."""
        if self.history_size <= 0:
            return None
        log = self._log(room)
        return (log.epoch, log.top)

    async def history(self, room: str, since: Position) -> tuple[str, list[Entry]]:
        """The kept messages after ``since``; see :meth:`Backplane.history`."""
        if self.history_size <= 0:
            raise HistoryError("unsupported", "the hub keeps no history")
        log = self._log(room)
        now = time.monotonic()
        while log.entries and now - log.entries[0][1] > self.history_ttl:
            log.entries.popleft()
        first = log.entries[0][0].offset if log.entries else None
        start = check_since(since, log.epoch, log.top, first)
        if start == 0:
            return log.epoch, []
        return log.epoch, [entry for entry, _ in log.entries if entry.offset >= start]

    async def save_session(self, session: str, data: str, ttl: float) -> None:
        """Keep it in this process."""
        now = time.monotonic()
        self._sessions[session] = (now + ttl, data)
        if len(self._sessions) > 1024:
            for key, (expiry, _) in list(self._sessions.items()):
                if expiry < now:
                    del self._sessions[key]

    async def load_session(self, session: str) -> str | None:
        """What was kept for ``session``, if its time has not run out."""
        kept = self._sessions.get(session)
        if kept is None or kept[0] < time.monotonic():
            return None
        return kept[1]

    # -- presence and calls -----------------------------------------------------------

    def _cluster_nodes(self) -> list[ClusterNode]:
        return [node for node in self._nodes if hasattr(node, "handle_call")]  # type: ignore[misc]

    def presence_add(self, room: str, client_id: str, info: dict[str, Any]) -> None:
        """Record and announce a join."""
        entry = {**info, "node": self.node_id}
        self._presence.setdefault(room, {})[client_id] = entry
        event = PresenceEvent("join", room, client_id, self.node_id, dict(info))
        for node in self._cluster_nodes():
            node.presence_changed(event)

    def presence_remove(self, room: str, client_id: str) -> None:
        """Record and announce a leave."""
        members = self._presence.get(room)
        if members is None or members.pop(client_id, None) is None:
            return
        if not members:
            del self._presence[room]
        event = PresenceEvent("leave", room, client_id, self.node_id)
        for node in self._cluster_nodes():
            node.presence_changed(event)

    async def presence(self, room: str) -> dict[str, dict[str, Any]]:
        """Who is in ``room``."""
        return {client: dict(info) for client, info in self._presence.get(room, {}).items()}

    async def call(
        self, op: str, args: dict[str, Any], client_id: str | None = None, timeout: float = 2.0
    ) -> list[Any]:
        """Ask the hubs of this process."""
        answers = []
        for node in self._cluster_nodes():
            if client_id is not None and not node.is_local(client_id):
                continue
            answers.append(await asyncio.wait_for(node.handle_call(op, args), timeout))
        return answers
