"""``wskit serve --workers N``: N processes serving one port, and their supervisor.

Theory of operation: the supervisor serves nothing itself. It starts N
workers, each a ``python -m wskit serve ... --reuse-port`` process of its
own, and the kernel spreads the incoming connections among them
(``SO_REUSEPORT``). Workers share no memory: a hub that needs its rooms to
span them uses a Redis backplane. The supervisor then waits for either a
signal, which it passes on to every worker (each closes its connections
with 1001), or a worker's death, which it answers by starting another, up
to ``WORKER_RESTARTS`` times a minute. On Linux a worker also ends when
its supervisor dies, even by SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ..metrics import MetricsEndpoint
from .metrics import MetricsOptions, start_supervisor

__all__ = ["USAGE_ERROR", "WORKER_RESTARTS", "run_workers"]

WORKER_RESTARTS = 5
"""A worker that dies is started again, at most this many times per minute."""

USAGE_ERROR = 2
"""The exit status of a ``wskit`` command that cannot run as given (argparse's too)."""


def _die_with_supervisor() -> None:
    """In a new worker, before it runs: ask Linux for SIGTERM when the supervisor dies.

    Without it, a supervisor killed with SIGKILL would leave its workers
    serving on the port. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


async def run_workers(
    host: str,
    port: int,
    workers: int,
    worker_args: Sequence[str],
    stop_timeout: float = 15.0,
    metrics: MetricsOptions | None = None,
) -> int:
    """Run ``workers`` processes of ``wskit serve`` on one port and supervise them.

    Each worker is ``python -m wskit serve ...`` with ``worker_args`` and
    ``--reuse-port``; the kernel spreads the connections among them
    (``SO_REUSEPORT``). With port 0 the supervisor picks a free port first.
    SIGINT and SIGTERM are passed on to every worker, which closes its
    connections with 1001; workers still running after ``stop_timeout``
    seconds are killed. A worker that dies otherwise is started again (at
    most ``WORKER_RESTARTS`` times a minute), except that workers
    exiting twice in a minute with ``USAGE_ERROR``, the status of a
    command that cannot run as given, stop every worker and the supervisor,
    with that status (once may be a passing accident, a port taken a moment).
    With ``metrics``, the supervisor serves the sum of its workers' metrics
    (see ``wskit.cli.metrics``). Returns the exit status.
    """
    holder: socket.socket | None = None
    if port == 0:
        # Bound (never listening) with SO_REUSEPORT, so the workers can share the port.
        holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, 0))
        port = holder.getsockname()[1]
    command = [sys.executable, "-m", "wskit", *worker_args, "--reuse-port"]
    command += ["--host", host, "--port", str(port)]
    endpoints: list[MetricsEndpoint] = []
    sockets: str | None = None
    if metrics is not None:
        # Private (mkdtemp makes it 0700): the workers' sockets answer without auth.
        sockets = tempfile.mkdtemp(prefix="wskit-metrics-")
        command += ["--metrics-socket", sockets]
        try:
            endpoints = await start_supervisor(metrics, sockets)
        except BaseException:
            shutil.rmtree(sockets, ignore_errors=True)
            raise
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop(sig: signal.Signals) -> None:
        if not stop.done():
            stop.set_result(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, request_stop, sig)
    print(f"wskit: {workers} workers on {host}:{port} (pid {os.getpid()})", flush=True)
    procs: list[asyncio.subprocess.Process] = []
    restarts: list[float] = []
    usage_errors: list[float] = []
    status = 0
    try:
        for _ in range(workers):
            procs.append(
                await asyncio.create_subprocess_exec(*command, preexec_fn=_die_with_supervisor)
            )
        while not stop.done():
            waits: dict[asyncio.Future[Any], int] = {
                asyncio.ensure_future(proc.wait()): index for index, proc in enumerate(procs)
            }
            finished, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()
            if stop.done():
                break
            for waiter in finished:
                index = waits[waiter]
                code = procs[index].returncode
                now = time.monotonic()
                if code == USAGE_ERROR:
                    # A bad app, a port in use, a broker out of reach: how the
                    # worker was started, which a new one would most likely
                    # meet again. Twice in a minute is not a passing accident.
                    usage_errors = [t for t in usage_errors if now - t < 60]
                    usage_errors.append(now)
                    if len(usage_errors) >= 2:
                        print(f"wskit: worker exited with {code}; not restarting", file=sys.stderr)
                        status = USAGE_ERROR
                        request_stop(signal.SIGTERM)
                        break
                restarts = [t for t in restarts if now - t < 60]
                if len(restarts) >= WORKER_RESTARTS:
                    print(f"wskit: worker exited with {code}; too many restarts", file=sys.stderr)
                    status = 1
                    request_stop(signal.SIGTERM)
                    break
                restarts.append(now)
                print(f"wskit: worker exited with {code}; starting another", file=sys.stderr)
                procs[index] = await asyncio.create_subprocess_exec(
                    *command, preexec_fn=_die_with_supervisor
                )
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + stop_timeout
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if holder is not None:
            holder.close()
        for endpoint in endpoints:
            await endpoint.aclose()
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)
    return status
