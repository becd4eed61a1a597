"""Processes of one benchmark run: start, pin, watch, measure, stop.

Everything here is bounded: every wait has a deadline, and every process the
runner starts is ended (SIGTERM, then SIGKILL) by the time a run returns.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGESIZE") // 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return 0
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def system_busy_ticks() -> int:
    """Ticks all CPUs spent not idle (for the 'other load' figure)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts[:8]]
    idle = values[3] + values[4]
    return sum(values) - idle


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Sample:
    t: float
    server: int
    client: int
    system: int


def sample(server_pid: int, client_pid: int) -> Sample:
    return Sample(
        time.monotonic(), cpu_ticks(server_pid), cpu_ticks(client_pid), system_busy_ticks()
    )


def cpu_percent(a: Sample, b: Sample) -> tuple[float, float, float]:
    """Server, client and everything else, in % of one core over a..b."""
    elapsed = max(b.t - a.t, 1e-9) * CLK_TCK
    server = (b.server - a.server) / elapsed * 100
    client = (b.client - a.client) / elapsed * 100
    other = max((b.system - a.system) / elapsed * 100 - server - client, 0.0)
    return server, client, other


class Proc:
    """A child process pinned to one core, whose stdout is read line by line."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        core: int,
        cwd: Path,
        log: Path,
        stdin: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            ["taskset", "-c", str(core), *argv],
            cwd=cwd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.popen.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        # taskset execs the program, so the pid is the program's.
        return self.popen.pid

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next stdout line; ``None`` at EOF; ``TimeoutError`` past ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            return self.lines.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None

    def wait_for(self, prefix: str, deadline: float) -> str:
        while True:
            line = self.next_line(deadline)
            if line is None:
                raise RuntimeError(f"exited before printing {prefix!r}: {self.log_tail()}")
            if line.startswith(prefix):
                return line

    def write(self, text: str) -> None:
        stdin = self.popen.stdin
        if stdin is None:
            return
        with contextlib.suppress(OSError):
            stdin.write(text.encode())
            stdin.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 400) -> str:
        try:
            data = self.log_path.read_bytes()[-n:]
        except OSError:
            return ""
        return data.decode(errors="replace").strip().replace("\n", " | ")

    def stop(self, grace: float = 3.0) -> None:
        """End the process (it and only it: its own session, by pid)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=grace)
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        self._log.close()


def machine_load(interval: float = 0.3) -> float:
    """Busy time of the whole machine over ``interval`` seconds, in % of one core."""
    t0, b0 = time.monotonic(), system_busy_ticks()
    time.sleep(interval)
    t1, b1 = time.monotonic(), system_busy_ticks()
    return (b1 - b0) / max(t1 - t0, 1e-9) / CLK_TCK * 100


def wait_quiet(max_wait: float, threshold: float = 30.0) -> tuple[float, float]:
    """Wait, at most ``max_wait`` seconds, until the machine is nearly idle.

    Returns the load last seen (% of one core) and the seconds waited.
    """
    start = time.monotonic()
    load = machine_load()
    while load > threshold and time.monotonic() - start < max_wait:
        load = machine_load(0.5)
    return load, time.monotonic() - start
