"""B6: several hub processes on one port, sharing a Redis backplane.

The runner starts a ``redis-server`` (no persistence, on a free loopback
port, pinned to the servers' core) and ``processes`` copies of the hub
server with ``--redis URL --reuse-port``; the kernel spreads the load
generator's receivers among them. The first process stands for the servers
in the CPU columns.

What an emit costs Redis: after the load generator's run, with the servers
still up, :func:`redis_probe` makes one of them emit a few thousand room
messages and reads ``INFO cpu commandstats`` before and after (the
window of a few hundred B6 emits is too short: Redis's own timers would
weigh as much), then measures a bare ``PUBLISH`` of a message of the same
size the same way; the ratio of the two says what the hub's emit costs Redis
beyond the ``PUBLISH`` it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import wskit

from .cases import Case, Server
from .procs import Proc, free_port


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


PROBE_EMITS = 3000
"""Room emits of the Redis probe (enough that Redis's own timers weigh little)."""

PROBE_CHANNEL = "wskit:room:all"
"""The channel of the B6 room, ``all``, under the default prefix."""


def resp(*args: str | bytes) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(parts)


def redis_command(port: int, *args: str) -> bytes:
    """One command to the Redis on ``port``: its reply (a bulk string's content, or its line)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(resp(*args))
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(65536)
        line, _, rest = data.partition(b"\r\n")
        if not line.startswith(b"$"):
            return line
        size = int(line[1:])
        while len(rest) < size + 2:
            rest += sock.recv(65536)
        return rest[:size]


def redis_info(port: int) -> tuple[dict[str, int], float, int]:
    """Calls by command (``INFO commandstats``), CPU seconds (``INFO cpu``) and reads so far.

    Reads (``total_reads_processed``) count what Redis read from its clients:
    a pipeline of commands is one read (or a few).
    """
    calls: dict[str, int] = {}
    cpu = 0.0
    reads = 0
    info = redis_command(port, "INFO", "cpu", "commandstats", "stats").decode()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key in ("used_cpu_sys", "used_cpu_user"):
            cpu += float(value)
        elif key == "total_reads_processed":
            reads = int(value)
        elif key.startswith("cmdstat_"):
            fields = dict(item.split("=") for item in value.split(","))
            calls[key.removeprefix("cmdstat_")] = int(fields["calls"])
    return calls, cpu, reads


def wait_quiet(port: int, timeout: float = 15.0) -> None:
    """Wait until the hubs have let go of their clients' channels (the load generator left)."""
    deadline = time.monotonic() + timeout
    while redis_command(port, "PUBSUB", "CHANNELS", "*:client:*") != b"*0":
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


class Subscribers:
    """Connections subscribed to a channel, read (and dropped) by a thread: the nodes' stand-ins."""

    def __init__(self, port: int, channel: str, count: int) -> None:
        self.socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(resp("SUBSCRIBE", channel))
            reply = b""
            while b"subscribe" not in reply:
                reply += sock.recv(4096)
            sock.setblocking(False)
            self.socks.append(sock)
        self.closed = False
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.socks:
                selector.register(sock, selectors.EVENT_READ)
            while not self.closed:
                for key, _ in selector.select(0.1):
                    with contextlib.suppress(OSError):
                        if not key.fileobj.recv(1 << 16):  # type: ignore[union-attr]
                            selector.unregister(key.fileobj)

    def close(self) -> None:
        self.closed = True
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def published_size(size: int) -> int:
    """The bytes a hub publishes for ``hub.to(room).emit("m", "x" * size)`` with recovery off.

    Its header line (node id, sequence number, count, exclusion: about 60
    bytes with 6-digit numbers), then the event as ws-wrapper JSON.
    """
    header = '{"k":"m","n":"0123456789abcdef","s":123456,"c":123456,"x":null}'
    return len(header) + 1 + len('{"a":["m",""]}') + size


def hub_burst(hub_port: int, count: int, size: int) -> None:
    """Make one hub process emit ``count`` room messages (its ``bcast`` event), as a sender."""

    async def burst() -> None:
        conn = await wskit.connect(f"ws://127.0.0.1:{hub_port}/?role=sender")
        try:
            await conn.send(json.dumps({"a": ["bcast", count, size]}))
            async for message in conn:
                if json.loads(message).get("a", [None])[0] == "ok":
                    return
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(burst(), 120))


def redis_probe(
    redis_port: int,
    hub_port: int,
    nodes: int,
    size: int = 64,
    *,
    burst: Callable[[int, int], None] | None = None,
    channel: str = PROBE_CHANNEL,
    message_size: int | None = None,
    emits: int = PROBE_EMITS,
) -> dict[str, float]:
    """What a room emit costs Redis, and what a bare ``PUBLISH`` of its size costs.

    ``nodes`` connections stand for the nodes with members (subscribed to the
    room's channel, read and dropped). A hub process then emits
    :data:`PROBE_EMITS` room messages; the ``INFO`` deltas give the commands
    (every one, those a Lua script runs included) and Redis's CPU
    (``used_cpu_sys`` + ``used_cpu_user``) per emit, and the reads how many
    commands the hub's pipelines carried on average. Then as many bare
    ``PUBLISH`` of a message of the same size, to the same subscribers, in
    pipelines of that size, measured the same way. Both leave out what Redis
    spends idle for as long (its timers, the hubs' liveness beats), measured
    first for half a second once the hubs have let their clients go.

    Another server (B7's python-socketio) gives its own ``burst(count,
    size)``, the ``channel`` it publishes on (with ``nodes`` 0 when its
    processes subscribe to it themselves) and the size of what it publishes;
    ``emits`` replaces :data:`PROBE_EMITS`.
    """
    count = emits
    wait_quiet(redis_port)
    subscribers = Subscribers(redis_port, channel, nodes)
    try:
        idle_before = redis_info(redis_port)[1]
        time.sleep(0.5)
        idle = (redis_info(redis_port)[1] - idle_before) / 0.5  # CPU seconds per second
        # The hubs' own emits.
        (calls0, cpu0, reads0), began = redis_info(redis_port), time.monotonic()
        if burst is None:
            hub_burst(hub_port, count, size)
        else:
            burst(count, size)
        deadline = time.monotonic() + 10
        while True:  # until Redis has every one (the outbox may still be sending)
            calls1, cpu1, reads1 = redis_info(redis_port)
            # With recovery the script's own PUBLISH counts too: count the scripts then.
            scripts = calls1.get("evalsha", 0) - calls0.get("evalsha", 0)
            done = scripts or calls1.get("publish", 0) - calls0.get("publish", 0)
            if done >= count or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        spent = cpu1 - cpu0 - idle * (time.monotonic() - began)
        # The INFOs of this loop are reads too; what is left is the hub's pipelines.
        batch = max(1, round(count / max(1, reads1 - reads0 - (calls1["info"] - calls0["info"]))))
        delta = {name: n - calls0.get(name, 0) for name, n in calls1.items()}
        delta = {name: n for name, n in delta.items() if n}
        delta.pop("info", None)  # this probe's own
        figures = {
            "redis_pipeline": float(batch),
            "redis_cmds_per_emit": sum(delta.values()) / count,
            "redis_cpu_us_per_emit": spent * 1e6 / count,
            "redis_idle_cpu_us_per_s": idle * 1e6,
        }
        for name, n in delta.items():
            figures[f"redis_{name.replace('|', '_')}_per_emit"] = n / count
        # A bare PUBLISH of the same size, without a newline: the hubs drop it at once.
        published = published_size(size) if message_size is None else message_size
        command = resp("PUBLISH", channel, b"x" * published)
        (_, cpu0, _), began = redis_info(redis_port), time.monotonic()
        with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as sock:
            for start in range(0, count, batch):
                sent = min(batch, count - start)
                sock.sendall(command * sent)
                replies = b""
                while replies.count(b"\r\n") < sent:
                    replies += sock.recv(65536)
        _, cpu1, _ = redis_info(redis_port)
        bare = (cpu1 - cpu0 - idle * (time.monotonic() - began)) * 1e6 / count
        figures["bare_publish_cpu_us"] = bare
        if bare > 0:
            figures["redis_cpu_vs_publish"] = figures["redis_cpu_us_per_emit"] / bare
        return figures
    finally:
        subscribers.close()


def start_redis(core: int, cwd: Path, log: Path, env: dict[str, str]) -> tuple[Proc, int]:
    """Start a ``redis-server`` pinned to ``core`` (no persistence, a free port): it and its port.

    Raises:
        RuntimeError: no redis-server, or it did not answer within 10 s.
    """
    binary = shutil.which("redis-server") or "/usr/sbin/redis-server"
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    redis = Proc(
        [*argv, "--appendonly", "no", "--loglevel", "warning"],
        core=core,
        cwd=cwd,
        log=log,
        env=env,
    )
    deadline = time.monotonic() + 10
    while not redis_ready(port):
        if not redis.alive() or time.monotonic() > deadline:
            redis.stop()
            raise RuntimeError(f"redis-server did not start: {redis.log_tail()}")
        time.sleep(0.05)
    return redis, port


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
) -> tuple[list[Proc], Proc, int]:
    """Start Redis and ``case.processes`` servers: the servers (not yet READY), Redis, its port.

    Raises:
        RuntimeError: no redis-server, or it did not answer within 10 s.
    """
    redis, redis_port = start_redis(0, cwd, logs / f"{stem}.redis.log", env)
    url = f"redis://127.0.0.1:{redis_port}/0"
    servers = [
        Proc(
            [
                *server.argv(python, port, case.compression, loop),
                *("--redis", url, "--reuse-port"),
                *(("--recovery",) if case.recovery else ()),
            ],
            core=0,
            cwd=cwd,
            log=logs / f"{stem}.server{index}.log",
            env=env,
        )
        for index in range(case.processes)
    ]
    return servers, redis, redis_port
