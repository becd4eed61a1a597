"""The memory backplane on its own, with recording nodes in place of hubs.

Hubs attached to one memory backplane are tested in ``tests/hub`` (recovery,
cluster calls and presence across two hubs); these tests hold it to the
interface directly.
"""

from __future__ import annotations

from typing import Any

import pytest

from wskit.hub.backplane import HistoryError, MemoryBackplane, Position, PresenceEvent, Target


class RecordingNode:
    """A :class:`~wskit.hub.backplane.ClusterNode` that records what it is given."""

    def __init__(self, local: set[str] | None = None) -> None:
        self.local = local or set()
        self.delivered: list[tuple[Target, str, str, str | None, Position | None]] = []
        self.events: list[PresenceEvent] = []

    def deliver(
        self,
        target: Target,
        name: str,
        message: str,
        exclude: str | None,
        position: Position | None = None,
    ) -> int:
        self.delivered.append((target, name, message, exclude, position))
        return 1

    def is_local(self, client_id: str) -> bool:
        return client_id in self.local

    async def handle_call(self, op: str, args: dict[str, Any]) -> Any:
        return [op, args, sorted(self.local)]

    def presence_changed(self, event: PresenceEvent) -> None:
        self.events.append(event)

    def presence_entries(self) -> list[tuple[str, str, dict[str, Any]]]:
        return []

    def advanced(self, room: str, position: Position) -> None:
        raise AssertionError("the memory backplane never delivers ahead of its position")


def test_publish_reaches_every_attached_node_with_no_position_without_history() -> None:
    backplane = MemoryBackplane()
    a, b = RecordingNode(), RecordingNode()
    backplane.attach(a)
    backplane.attach(b)
    backplane.publish(Target.ROOM, "lobby", "hi", exclude="c1")
    backplane.publish(Target.ALL, "", "all")
    expected = [
        (Target.ROOM, "lobby", "hi", "c1", None),
        (Target.ALL, "", "all", None, None),
    ]
    assert a.delivered == b.delivered == expected
    assert backplane.cursor("lobby") is None
    stats = backplane.stats.as_dict()
    assert (stats["sent"], stats["published"], stats["delivered"]) == (2, 2, 2)


async def test_room_messages_are_numbered_and_kept_for_recovery() -> None:
    backplane = MemoryBackplane()
    backplane.history_size = 2
    node = RecordingNode()
    backplane.attach(node)
    start = await backplane.wait_cursor("lobby", 1.0)
    epoch, top = start
    assert top == 0
    for text in ("one", "two", "three"):
        backplane.publish(Target.ROOM, "lobby", text)
    assert [position for *_, position in node.delivered] == [(epoch, 1), (epoch, 2), (epoch, 3)]
    assert backplane.cursor("lobby") == (epoch, 3)
    kept_epoch, entries = await backplane.history("lobby", (epoch, 1))
    assert kept_epoch == epoch
    assert [(entry.offset, entry.message) for entry in entries] == [(2, "two"), (3, "three")]
    assert await backplane.history("lobby", (epoch, 3)) == (epoch, [])
    with pytest.raises(HistoryError) as failure:
        await backplane.history("lobby", start)  # "one" is no longer kept
    assert failure.value.reason == "history"
    with pytest.raises(HistoryError) as failure:
        await backplane.history("lobby", ("another epoch", 1))
    assert failure.value.reason == "epoch"


async def test_without_history_a_recovery_is_unsupported() -> None:
    backplane = MemoryBackplane()
    with pytest.raises(HistoryError) as failure:
        await backplane.history("lobby", ("", 0))
    assert failure.value.reason == "unsupported"


async def test_sessions_are_kept_for_their_time_to_live() -> None:
    backplane = MemoryBackplane()
    await backplane.save_session("s1", "data", 60.0)
    await backplane.save_session("s2", "gone", -1.0)
    assert await backplane.load_session("s1") == "data"
    assert await backplane.load_session("s2") is None
    assert await backplane.load_session("unknown") is None


async def test_presence_and_calls_reach_the_nodes_of_this_process() -> None:
    backplane = MemoryBackplane()
    a, b = RecordingNode({"c1"}), RecordingNode({"c2"})
    backplane.attach(a)
    backplane.attach(b)
    backplane.presence_add("lobby", "c1", {"name": "x"})
    assert await backplane.presence("lobby") == {"c1": {"name": "x", "node": backplane.node_id}}
    backplane.presence_remove("lobby", "c1")
    backplane.presence_remove("lobby", "c1")  # not there any more: no second event
    assert await backplane.presence("lobby") == {}
    for node in (a, b):
        assert [(e.kind, e.room, e.client_id) for e in node.events] == [
            ("join", "lobby", "c1"),
            ("leave", "lobby", "c1"),
        ]
    assert await backplane.call("rooms", {}) == [["rooms", {}, ["c1"]], ["rooms", {}, ["c2"]]]
    assert await backplane.call("rooms", {}, client_id="c2") == [["rooms", {}, ["c2"]]]
