"""wskit.hub.background: tasks kept until they end, their failures logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.hub_support import fresh_log_limits
from wskit.hub.background import BackgroundTasks

logger = logging.getLogger("wskit.test.background")


async def test_tasks_are_kept_until_they_end() -> None:
    tasks = BackgroundTasks("a test task", logger)
    gate = asyncio.Event()
    task = tasks.spawn(gate.wait())
    assert len(tasks) == 1 and list(tasks) == [task]
    gate.set()
    await task
    await asyncio.sleep(0)  # the done callback runs after the task
    assert len(tasks) == 0 and not tasks


async def test_a_failure_is_logged_and_a_cancel_is_not(caplog: pytest.LogCaptureFixture) -> None:
    fresh_log_limits()
    tasks = BackgroundTasks("a test task", logger)

    async def fail() -> None:
        raise ValueError("boom")

    failing = tasks.spawn(fail())
    cancelled = tasks.spawn(asyncio.sleep(10))
    cancelled.cancel()
    with caplog.at_level(logging.ERROR, logger="wskit.test.background"):
        await asyncio.wait([failing, cancelled])
        await asyncio.sleep(0)
    # With an error id (wskit.limits.report_failure): repeats are rate-limited.
    assert [r.getMessage()[:6] + r.getMessage()[14:] for r in caplog.records] == [
        "error  in a test task"
    ]
    assert caplog.records[0].exc_info is not None
    assert "boom" in str(caplog.records[0].exc_info[1])
    assert len(tasks) == 0
