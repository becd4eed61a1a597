"""Helpers of the Redis tests: a real ``redis-server`` on a free loopback port, hub nodes.

``RedisServer`` starts Debian's ``redis-server`` with no persistence
(``--save "" --appendonly no``), waits for it to answer PING, and can be
stopped (SIGKILL or SIGTERM) and started again on the same port, empty.
``HubNode`` runs ``tests/apps/cluster_app.py`` in a subprocess through
``wskit serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import wskit
from conftest import REPO_ROOT, unused_port

APPS = REPO_ROOT / "tests" / "apps"


def die_with_parent() -> None:
    """In the child: be killed when the test process dies (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def command(port: int, *args: str, timeout: float = 0.5) -> bytes:
    """Send one command to the Redis server on ``port``; its reply's first line, or ``b""``."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            return sock.recv(256).partition(b"\r\n")[0]
    except OSError:
        return b""


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING on ``port``."""
    return command(port, "PING", timeout=timeout) == b"+PONG"


class RedisServer:
    """One ``redis-server`` process the test owns."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not ping(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not answer PING")
            time.sleep(0.02)

    def running(self) -> bool:
        """Whether the server is up and answers PING."""
        return self.process is not None and self.process.poll() is None and ping(self.port)

    def reset(self) -> None:
        """Empty it: every key, every loaded script, every client of an earlier test."""
        for args in (
            ("CLIENT", "KILL", "TYPE", "normal"),
            ("CLIENT", "KILL", "TYPE", "pubsub"),
            ("FLUSHALL",),
            ("SCRIPT", "FLUSH"),
        ):
            reply = command(self.port, *args, timeout=5)
            if not reply.startswith((b"+", b":")):
                raise RuntimeError(f"redis {' '.join(args)} failed: {reply!r}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(APPS), str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


class HubNode:
    """``wskit serve cluster_app:hub`` in a subprocess, on its own port or a shared one."""

    def __init__(
        self,
        redis_url: str,
        port: int | None = None,
        workers: int = 1,
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.port = port or unused_port()
        self.redis_url = redis_url
        self.workers = workers
        self.args = args
        self.extra_env = env
        self.process: subprocess.Popen[str] | None = None
        self.log: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> HubNode:
        env = node_env()
        env["WSKIT_TEST_REDIS"] = self.redis_url
        env.update(self.extra_env)
        command = [sys.executable, "-m", "wskit", "serve", "cluster_app:hub"]
        command += ["--port", str(self.port), "--workers", str(self.workers), *self.args]
        # Files, not pipes: a full pipe would stop a chatty node.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            mode="w+", prefix="wskit-node-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=APPS,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 15
        while Path(self.log.name).read_text().count("wskit serving") < self.workers:
            if self.process.poll() is not None:
                raise RuntimeError(f"node exited: {self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"node did not start: {self.output()}")
            time.sleep(0.02)
        return self

    def output(self) -> str:
        """What the node printed so far."""
        return Path(self.log.name).read_text() if self.log is not None else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self, timeout: float = 10) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.log is not None:
            self.log.close()
            with contextlib.suppress(OSError):
                os.unlink(self.log.name)
        return self.process.returncode

    def stderr(self) -> str:
        return self.output()


@contextlib.contextmanager
def nodes(
    redis_url: str, count: int, args: tuple[str, ...] = (), **env: str
) -> Iterator[list[HubNode]]:
    started: list[HubNode] = []
    try:
        for _ in range(count):
            started.append(HubNode(redis_url, args=args, **env).start())
        yield started
    finally:
        for node in started:
            node.stop()


class Peer:
    """A raw ws-wrapper client that records every event it receives."""

    def __init__(self, conn: wskit.ClientConn) -> None:
        self.conn = conn
        self.events: list[list[Any]] = []
        self.raw: list[dict[str, Any]] = []
        self.answers: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, url: str, **options: Any) -> Peer:
        return cls(await wskit.connect(url, **options))

    async def _read(self) -> None:
        with contextlib.suppress(wskit.ConnectionClosed):
            async for message in self.conn:
                data = json.loads(message)
                self.raw.append(data)
                if "a" in data and "i" not in data:
                    self.events.append(data["a"])
                elif "i" in data and data["i"] in self.answers:
                    future = self.answers.pop(data["i"])
                    if "e" in data:
                        future.set_exception(RuntimeError(str(data["e"])))
                    else:
                        future.set_result(data.get("d"))

    async def request(self, event: str, *args: Any, channel: str | None = None) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.answers[self.next_id] = future
        message: dict[str, Any] = {"i": self.next_id, "a": [event, *args]}
        if channel is not None:
            message["c"] = channel
        await self.conn.send(json.dumps(message))
        return await asyncio.wait_for(future, 10)

    def got(self, name: str) -> list[list[Any]]:
        return [event for event in self.events if event[0] == name]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), 2)
        self.task.cancel()


async def until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    """Wait until ``condition()`` holds (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step)


@contextlib.asynccontextmanager
async def peers(*urls: str, **options: Any) -> AsyncIterator[list[Peer]]:
    opened = [await Peer.open(url, **options) for url in urls]
    try:
        yield opened
    finally:
        for peer in opened:
            await peer.close()
