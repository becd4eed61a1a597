"""wskit.hub.backplane.interface: what a backplane promises, and its shared rule of history."""

from __future__ import annotations

import pytest

from wskit.hub.backplane.interface import HistoryError, check_since


def test_check_since() -> None:
    assert check_since(("e", 3), "e", 5, 1) == 4
    assert check_since(("e", 5), "e", 5, 1) == 0  # nothing missed
    assert check_since(("", 0), "e", 5, 1) == 1  # joined before any history
    with pytest.raises(HistoryError) as info:
        check_since(("old", 3), "e", 5, 1)
    assert info.value.reason == "epoch"
    with pytest.raises(HistoryError) as info:
        check_since(("e", 1), "e", 9, 5)
    assert info.value.reason == "history"
