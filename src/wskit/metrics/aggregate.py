"""The metrics of several worker processes, added up: :class:`WorkerMetrics`.

How ``wskit serve --workers N --metrics-port P`` exposes one server: the
supervisor makes a private directory (mode 0700) and passes it to every
worker, which serves its own :class:`~wskit.metrics.MetricsEndpoint` on a
Unix socket there, named by its pid. On each scrape, the supervisor asks
every socket for ``/metrics.json`` and serves the sum (:func:`combine
<wskit.metrics.snapshot.combine>`). Why not ``prometheus_client``'s
multiprocess mode: wskit's counters are plain ints read at collection
time, not ``prometheus_client`` objects writing to shared files on every
increment; and the sum also feeds the status page, the JSON and
OpenTelemetry, with or without ``prometheus_client``.

A worker that died takes its counts with it (its socket is removed on the
next scrape): totals may go down when a worker is replaced, which
Prometheus' ``rate()`` reads as a counter reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from .snapshot import MetricsSnapshot, combine

__all__ = ["WorkerMetrics"]

#: Seconds a worker has to answer the supervisor.
WORKER_TIMEOUT = 5.0


async def _get_json(socket_path: str, path: str) -> Any:
    """GET ``path`` from the HTTP server on the Unix socket ``socket_path``; the JSON body."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n".encode())
        raw = await reader.read(-1)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b""
    if status != b"200":
        raise OSError(f"worker answered {head[:80]!r}")
    return json.loads(body)


class WorkerMetrics:
    """The sum of the metrics of the workers serving on Unix sockets in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def socket_for(self, pid: int) -> str:
        """Where the worker ``pid`` serves its metrics."""
        return str(self.directory / f"{pid}.sock")

    async def _gather(self, path: str) -> list[Any]:
        sockets = sorted(self.directory.glob("*.sock"))

        async def ask(socket_path: Path) -> Any:
            try:
                return await asyncio.wait_for(_get_json(str(socket_path), path), WORKER_TIMEOUT)
            except (OSError, TimeoutError, ValueError):
                if not _alive(socket_path):
                    with contextlib.suppress(OSError):
                        os.unlink(socket_path)  # a dead worker's: a quick local call
                return None

        answers = await asyncio.gather(*(ask(path) for path in sockets))
        return [answer for answer in answers if answer is not None]

    async def snapshot(self) -> MetricsSnapshot:
        """The sum of every worker's snapshot (``processes``: how many answered)."""
        return combine(
            MetricsSnapshot.from_dict(data) for data in await self._gather("/metrics.json")
        )

    async def rooms(self) -> dict[str, int]:
        """Members per room, over every worker."""
        total: dict[str, int] = {}
        for rooms in await self._gather("/rooms.json"):
            for room, count in rooms.items():
                total[room] = total.get(room, 0) + int(count)
        return total


def _alive(socket_path: Path) -> bool:
    """Whether the worker named by ``socket_path`` (its pid) still runs."""
    try:
        os.kill(int(socket_path.stem), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
