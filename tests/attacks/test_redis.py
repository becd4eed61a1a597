"""A hub on a Redis that cannot be reached: at start, ``wskit serve`` and the README's example.

Before, ``Hub(backplane="redis://...")`` with Redis down waited 2 s at start
and went on without it, quietly: ``wskit serve`` served a hub cut off from
its cluster, and the README's two-process example hung, printing DEBUG lines
only. Now the start fails within ``start_timeout`` with an error that names
the URL (its password masked), unless a degraded start was asked for, which
one WARNING announces. Each test runs the real command in a subprocess,
against a loopback port where nothing listens.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from conftest import REPO_ROOT, unused_port
from hub.redis_support import APPS, HubNode, node_env

# Seconds a failing start may take: start_timeout (3 s by default), the
# interpreter's start-up, and a loaded machine.
TIMEOUT = 30
PASSWORD = "hunter2"


def closed_url() -> str:
    """A Redis URL, with a password, of a loopback port where nothing listens."""
    return f"redis://default:{PASSWORD}@127.0.0.1:{unused_port()}/0"


def test_wskit_serve_exits_with_one_line_naming_the_url() -> None:
    url = closed_url()
    env = node_env()
    env["WSKIT_TEST_REDIS"] = url
    command = [sys.executable, "-m", "wskit", "serve", "cluster_app:hub", "--port", "0"]
    began = time.monotonic()
    result = subprocess.run(
        command, env=env, cwd=APPS, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert time.monotonic() - began < TIMEOUT
    assert result.returncode == 2, result.stderr
    assert "wskit serving" not in result.stdout
    (line,) = result.stderr.splitlines()
    masked = url.replace(PASSWORD, "***")
    assert line.startswith(f"wskit serve: error: cannot reach the backplane's broker at {masked}")
    assert "connect call failed" in line.lower()
    assert PASSWORD not in result.stderr and "Traceback" not in result.stderr


def test_a_degraded_start_serves_and_warns_once() -> None:
    node = HubNode(
        closed_url() + "?degraded_start=1&start_timeout=0.3", args=("--log-level", "DEBUG")
    )
    node.start()  # waits until it serves
    try:
        # Let it fail to reach Redis a few more times: DEBUG records, no more warnings.
        deadline = time.monotonic() + TIMEOUT
        while node.output().count("redis subscriber cannot connect") < 5:
            assert node.alive() and time.monotonic() < deadline, node.output()
            time.sleep(0.05)
        output = node.output()
        warnings = re.findall(r"^WARNING:wskit\.hub\.redis:.*$", output, flags=re.M)
        assert len(warnings) == 1, output
        assert "degraded start" in warnings[0] and "***" in warnings[0]
        assert PASSWORD not in output
    finally:
        node.stop()


def test_the_readme_examples_fail_at_once_naming_the_url() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
        if block.startswith("# needs: redis-server") and "REDIS_URL" in block
    ]
    assert blocks
    url = closed_url()
    env = dict(os.environ, REDIS_URL=url)
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode != 0
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("wskit.hub.backplane.interface.BackplaneUnavailable: cannot reach")
        assert url.replace(PASSWORD, "***") in last and PASSWORD not in result.stderr


def test_a_hub_under_uvicorn_fails_its_startup_naming_the_url() -> None:
    # Mounted with asgi_app, the hub starts in the ASGI lifespan: uvicorn
    # reports the broker out of reach and exits, before any connection.
    url = closed_url()
    port = unused_port()
    program = (
        "import uvicorn\n"
        "from wskit.asgi import asgi_app\n"
        "from wskit.hub import Hub\n"
        f"app = asgi_app(Hub(backplane={url!r}))\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, lifespan='on')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode != 0
    masked = url.replace(PASSWORD, "***")
    assert f"cannot reach the backplane's broker at {masked}" in result.stderr
    assert "Application startup failed" in result.stderr
    assert PASSWORD not in result.stderr
