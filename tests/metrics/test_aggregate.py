"""wskit.metrics.aggregate: the sum of workers' endpoints on Unix sockets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from wskit.metrics import MetricsSnapshot, WorkerMetrics, serve_metrics


async def test_the_sum_of_every_worker_that_answers(tmp_path: Path) -> None:
    workers = WorkerMetrics(tmp_path)
    assert (await workers.snapshot()).processes == 0
    one = await serve_metrics(
        lambda: MetricsSnapshot(connections_open=1, handshakes={101: 3}),
        unix_path=workers.socket_for(os.getpid()),
        rooms=lambda: {"lobby": 1},
    )
    two = await serve_metrics(
        lambda: MetricsSnapshot(connections_open=2, handshakes={101: 1, 403: 1}),
        unix_path=str(tmp_path / "1.sock"),  # pid 1 runs: kept, though it does not answer
        rooms=lambda: {"lobby": 2, "other": 1},
    )
    try:
        total = await workers.snapshot()
        assert total.processes == 2
        assert total.connections_open == 3
        assert total.handshakes == {101: 4, 403: 1}
        assert await workers.rooms() == {"lobby": 3, "other": 1}
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_dead_workers_socket_is_removed(tmp_path: Path) -> None:
    # A socket file nobody listens on, named by a pid that cannot exist.
    dead = tmp_path / "999999999.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))
    listener.close()
    stale_but_alive = tmp_path / f"{os.getpid()}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale_but_alive))
    listener.close()
    total = await WorkerMetrics(tmp_path).snapshot()
    assert total.processes == 0
    assert not dead.exists()
    assert stale_but_alive.exists()  # its process lives: maybe only slow
