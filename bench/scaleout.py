"""B7: wskit's Redis scale-out beside python-socketio's ``AsyncRedisManager``.

Each side runs as a cluster of ``case.processes`` server processes, each on
a port of its own (so the load generator decides which process holds which
member), all pinned to core 0, sharing one ``redis-server`` pinned to core 1
with the load generator (core 0 is the servers' whole core, and the loader
uses well under its own). The wskit side is the hub server
(``servers/wskit_hub_server.py --redis URL``, recovery off, the default), the
peer python-socketio's ``AsyncServer`` on aiohttp with ``AsyncRedisManager``
(``servers/socketio_server.py``).

The load generator (``loadgen -mode bcast -urls A,B -rooms R``, with ``-hub``
or ``-sio``) opens its receivers as raw sockets read by one epoll loop,
receiver ``k`` on server ``k % 2`` in room ``r<k // (members per room)>``;
the Socket.IO receivers speak Engine.IO v4 / Socket.IO v5 text frames
(``40`` to connect, ``42[...]`` events, ``3`` to each ``2``). Once both
processes count their members, the sender (on the first process) asks for
``count`` emits to the rooms in turn: both sides emit the same messages the
same way. Every delivery is checked byte for byte and counted at its
receiver; a run that misses any reports how many were lost.

Over the measured window (the request to the last delivery: the load
generator sends its request once the runner has taken its first reading) the
runner reads the CPU time of every server process, of the load generator and
of Redis from ``/proc``: deliveries per node CPU-second are the deliveries
over the CPU time of all the server processes together.

What an emit costs Redis comes from B6's probe (:func:`bench.cluster.redis_probe`)
after the run, the servers still up and the load generator gone: one process
emits :data:`PROBE_EMITS` messages of the same size to a room, and ``INFO`` gives the
commands and Redis's CPU per emit, and the ratio to a bare ``PUBLISH`` of
what it published. The window of the run has too few emits for that in the
room of 2 000 (its own ``INFO`` readings are kept in the raw results as
``run_redis_*``). For the hub two connections subscribed to the room's
channel stand for the nodes with members, as in B6; python-socketio's
processes all subscribe to its one channel themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import wskit

from .cases import Case, Server
from .cluster import redis_info, redis_probe, start_redis
from .procs import CLK_TCK, Proc, cpu_ticks, free_port, system_busy_ticks

#: The servers' core; the load generator and Redis share the other one.
SERVER_CORE = 0
LOADER_CORE = 1
REDIS_CORE = 1
#: Seconds over which Redis's idle CPU is measured before the run.
IDLE_WINDOW = 1.0
#: Emits of the Redis probe after a run: more than B6's 3 000, for figures that hold on a
#: busy machine (a few µs each: 3 000 weigh about as much as Redis's other work meanwhile).
PROBE_EMITS = 20_000
#: The peer whose load generator speaks Socket.IO (``-sio``) rather than ws-wrapper.
SOCKETIO = "socketio"
#: The channel python-socketio's AsyncRedisManager publishes every emit on.
SOCKETIO_CHANNEL = "socketio"


def is_socketio(server: Server) -> bool:
    return SOCKETIO in (server.name, server.base_of)


def socketio_published_size(size: int) -> int:
    """The bytes ``AsyncRedisManager`` publishes for ``sio.emit("m", "x" * size, room="all")``."""
    message = {
        "method": "emit",
        "event": "m",
        "data": ["x" * size],
        "binary": False,
        "namespace": "/",
        "room": "all",
        "skip_sid": None,
        "callback": None,
        "host_id": "0123456789abcdef0123456789abcdef",
    }
    return len(json.dumps(message))


def socketio_burst(port: int, count: int, size: int) -> None:
    """Make one python-socketio process emit ``count`` messages to the room ``all``.

    A Socket.IO client of its own over ``wskit.connect``: the OPEN packet,
    ``40``, then ``42["bcast",count,size]`` and its ``ok``.
    """

    async def burst() -> None:
        url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket&role=sender"
        conn = await wskit.connect(url)
        try:
            await conn.send("40")
            await conn.send("42" + json.dumps(["bcast", count, size]))
            async for message in conn:
                if message == "2":
                    await conn.send("3")  # Engine.IO's ping
                elif isinstance(message, str) and message.startswith('42["ok"'):
                    return
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(burst(), 120))


@dataclass
class Reading:
    """CPU ticks of every process of the run, and Redis's ``INFO``, at one moment."""

    t: float
    servers: list[int]
    loader: int
    redis: int
    system: int
    calls: dict[str, int]
    redis_cpu: float


def take_reading(servers: list[Proc], loader: Proc, redis: Proc, redis_port: int) -> Reading:
    calls, redis_cpu, _ = redis_info(redis_port)
    return Reading(
        time.monotonic(),
        [cpu_ticks(proc.pid) for proc in servers],
        cpu_ticks(loader.pid),
        cpu_ticks(redis.pid),
        system_busy_ticks(),
        calls,
        redis_cpu,
    )


def redis_idle_cpu(redis_port: int) -> float:
    """Redis's CPU seconds per second while nothing is emitted (liveness beats, timers)."""
    before = redis_info(redis_port)[1]
    time.sleep(IDLE_WINDOW)
    return (redis_info(redis_port)[1] - before) / IDLE_WINDOW


def window_figures(
    first: Reading, last: Reading, client: dict[str, Any], idle: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """The figures of the window from ``first`` to ``last``, and its CPU use (% of a core)."""
    elapsed = max(last.t - first.t, 1e-9)
    ticks = elapsed * CLK_TCK
    per_server = [(b - a) / ticks * 100 for a, b in zip(first.servers, last.servers, strict=True)]
    servers = sum(per_server)
    loader = (last.loader - first.loader) / ticks * 100
    redis = (last.redis - first.redis) / ticks * 100
    other = max((last.system - first.system) / ticks * 100 - servers - loader - redis, 0.0)
    cpu = {
        "server": servers,
        "client": loader,
        "redis": redis,
        "other": other,
        "servers": per_server,
    }
    figures: dict[str, float] = {}
    deliveries = client.get("deliveries") or 0
    node_cpu_s = (sum(last.servers) - sum(first.servers)) / CLK_TCK
    figures["node_cpu_s"] = node_cpu_s
    if deliveries and node_cpu_s > 0:
        figures["deliveries_per_cpu_s"] = deliveries / node_cpu_s
        figures["node_cpu_us_per_delivery"] = node_cpu_s * 1e6 / deliveries
    emits = client.get("count") or 0
    if emits:
        delta = {name: n - first.calls.get(name, 0) for name, n in last.calls.items()}
        delta = {name: n for name, n in delta.items() if n and name != "info"}
        figures["run_redis_cmds_per_emit"] = sum(delta.values()) / emits
        for name, n in delta.items():
            figures[f"run_redis_{name.replace('|', '_')}_per_emit"] = n / emits
        spent = last.redis_cpu - first.redis_cpu - idle * elapsed
        figures["run_redis_cpu_us_per_emit"] = spent * 1e6 / emits
        figures["run_redis_idle_cpu_us_per_s"] = idle * 1e6
    return figures, cpu


def probe(
    server: Server, redis_port: int, ports: list[int], client: dict[str, Any]
) -> dict[str, float]:
    """B6's Redis probe on the first process of either side (see the module's docstring)."""
    size = int(client.get("size") or 64)
    if not is_socketio(server):
        return redis_probe(redis_port, ports[0], len(ports), size, emits=PROBE_EMITS)
    return redis_probe(
        redis_port,
        ports[0],
        0,
        size,
        burst=partial(socketio_burst, ports[0]),
        channel=SOCKETIO_CHANNEL,
        message_size=socketio_published_size(size),
        emits=PROBE_EMITS,
    )


def loader_argv(loadgen: Path, case: Case, server: Server, ports: list[int]) -> list[str]:
    wire = "-sio" if is_socketio(server) else "-hub"
    urls = ",".join(f"ws://127.0.0.1:{port}/" for port in ports)
    # -stdin: the loader waits for the runner's first reading before the first emit.
    return [str(loadgen), "-mode", "bcast", wire, "-urls", urls, "-stdin", *case.args]


def run_scaleout(
    case: Case,
    server: Server,
    loop: str | None,
    python: str,
    *,
    cwd: Path,
    logs: Path,
    stem: str,
    env: dict[str, str],
    loadgen: Path,
) -> dict[str, Any]:
    """One B7 run of ``server``: the record's fields (``client``, ``figures``, ``cpu``, ``error``).

    Every process it starts is stopped before it returns, and every wait is
    bounded (20 s for the servers to start, ``case.timeout`` for the run).
    """
    rec: dict[str, Any] = {"loadavg": os.getloadavg()}
    try:
        redis, redis_port = start_redis(REDIS_CORE, cwd, logs / f"{stem}.redis.log", env)
    except RuntimeError as exc:
        rec["error"] = str(exc)
        return rec
    url = f"redis://127.0.0.1:{redis_port}/0"
    ports = [free_port() for _ in range(case.processes)]
    servers = [
        Proc(
            [*server.argv(python, port, False, loop), "--redis", url],
            core=SERVER_CORE,
            cwd=cwd,
            log=logs / f"{stem}.server{index}.log",
            env=env,
        )
        for index, port in enumerate(ports)
    ]
    loader: Proc | None = None
    try:
        try:
            for proc in servers:
                proc.wait_for("READY", time.monotonic() + 20)
        except (TimeoutError, RuntimeError) as exc:
            why = str(exc) or "no READY line within 20 s"
            rec["error"] = f"server did not start: {why}"
            return rec
        idle = redis_idle_cpu(redis_port)
        loader = Proc(
            loader_argv(loadgen, case, server, ports),
            core=LOADER_CORE,
            cwd=cwd,
            log=logs / f"{stem}.client.log",
            stdin=True,
            env=env,
        )
        deadline = time.monotonic() + case.timeout
        first = last = None
        client: dict[str, Any] | None = None
        while client is None:
            try:
                line = loader.next_line(deadline)
            except TimeoutError:
                rec["error"] = f"no result within {case.timeout:.0f} s"
                break
            if line is None:
                rec["error"] = f"client exited without a result: {loader.log_tail()}"
                break
            if line == "MEASURE start":
                first = take_reading(servers, loader, redis, redis_port)
                loader.write("go\n")
            elif line == "MEASURE end":
                last = take_reading(servers, loader, redis, redis_port)
            elif line.startswith("RESULT "):
                client = json.loads(line.removeprefix("RESULT "))
        if client is not None:
            rec["client"] = client
            rec["figures"] = {k: v for k, v in client.items() if isinstance(v, int | float)}
            if client.get("error"):
                rec["error"] = str(client["error"])
            if first is not None and last is not None:
                figures, rec["cpu"] = window_figures(first, last, client, idle)
                rec["figures"].update(figures)
            if all(proc.alive() for proc in servers):
                loader.stop(grace=5)  # its members gone, as in B6
                try:
                    rec["figures"].update(probe(server, redis_port, ports, client))
                except (OSError, TimeoutError, RuntimeError, ValueError) as exc:
                    rec["redis_probe_error"] = str(exc)
        dead = [f"server {i}" for i, proc in enumerate(servers) if not proc.alive()]
        if dead:
            died = f"{', '.join(dead)} exited: {servers[0].log_tail()}"
            rec["error"] = f"{rec['error']}; {died}" if rec.get("error") else died
        return rec
    finally:
        if loader is not None:
            loader.stop(grace=5)
        for proc in servers:
            proc.stop()
        redis.stop()
