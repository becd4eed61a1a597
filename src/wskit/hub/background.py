"""Tasks that run in the background: kept alive until they end, their failures logged.

asyncio holds only a weak reference to a task, so a task that nobody awaits
must be kept somewhere until it ends, and its exception read, or it is lost.
The hub (async handlers and hooks, closing slow clients, saving sessions)
and the Redis backplane (catch-ups, answers to calls) each keep one
:class:`BackgroundTasks`, and wait for or cancel what is left when they close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from typing import Any

from ..limits import report_failure

__all__ = ["BackgroundTasks", "discard"]


def discard(awaitable: Awaitable[Any]) -> None:
    """Drop an awaitable that will never run (a coroutine is closed: no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


class BackgroundTasks:
    """The background tasks of one owner.

    Args:
        what: how the log names one of them (``"a background task"``).
        logger: where a task's exception is logged when it ends with one.
    """

    __slots__ = ("_tasks", "_what", "_logger")

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()
        self._what = what
        self._logger = logger

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``awaitable`` as a task, kept until it ends."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            # With an error id, and repeats rate-limited: clients start most of these tasks.
            report_failure(self._logger, exc, self._what)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        return iter(list(self._tasks))
