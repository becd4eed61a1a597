"""Run the ``wskit`` command as a subprocess, for the tests of ``tests/cli``.

The apps it serves (``sample_app``...) are those of ``tests/apps``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import unused_port, wait_for_port

APPS = Path(__file__).resolve().parent.parent / "apps"


def app_env() -> dict[str, str]:
    """The environment of a subprocess that imports the apps of ``tests/apps``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(APPS), env.get("PYTHONPATH")]))
    return env


def start(*args: str) -> tuple[subprocess.Popen[str], int]:
    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "wskit", *args, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=app_env(),
    )
    # Wait for the port, but say at once why if the process dies first.
    deadline = time.monotonic() + 30
    while True:
        try:
            wait_for_port(port, timeout=0.5)
        except TimeoutError:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"wskit {args[0]} exited: {out}{err}") from None
            if time.monotonic() > deadline:
                process.kill()
                raise
        else:
            return process, port


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    return process.returncode, err
