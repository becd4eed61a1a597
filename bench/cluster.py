"""B6: several hub processes on one port, sharing a Redis backplane.

The runner starts a ``redis-server`` (no persistence, on a free loopback
port, pinned to the servers' core) and ``processes`` copies of the hub
server with ``--redis URL --reuse-port``; the kernel spreads the load
generator's receivers among them. The first process stands for the servers
in the CPU columns.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from .cases import Case, Server
from .procs import Proc, free_port


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_cluster(
    case: Case,
    server: Server,
    python: str,
    port: int,
    loop: str | None,
    cwd: Path,
    logs: Path,
    stem: str,
    env: dict[str, str],
) -> tuple[list[Proc], Proc]:
    """Start Redis and ``case.processes`` servers; the servers (not yet READY) and Redis.

    Raises:
        RuntimeError: no redis-server, or it did not answer within 10 s.
    """
    binary = shutil.which("redis-server") or "/usr/sbin/redis-server"
    redis_port = free_port()
    argv = [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
    redis = Proc(
        [*argv, "--appendonly", "no", "--loglevel", "warning"],
        core=0,
        cwd=cwd,
        log=logs / f"{stem}.redis.log",
        env=env,
    )
    deadline = time.monotonic() + 10
    while not redis_ready(redis_port):
        if not redis.alive() or time.monotonic() > deadline:
            redis.stop()
            raise RuntimeError(f"redis-server did not start: {redis.log_tail()}")
        time.sleep(0.05)
    url = f"redis://127.0.0.1:{redis_port}/0"
    servers = [
        Proc(
            [*server.argv(python, port, case.compression, loop), "--redis", url, "--reuse-port"],
            core=0,
            cwd=cwd,
            log=logs / f"{stem}.server{index}.log",
            env=env,
        )
        for index in range(case.processes)
    ]
    return servers, redis
