"""``wskit serve --metrics-port --status`` (:mod:`wskit.cli.metrics`), as real processes.

The endpoints are scraped over HTTP and the exposition is read with
prometheus_client's own parser; under ``--workers 2`` the supervisor
serves the sum of both workers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import wskit
from cli.process_support import app_env, start, stop
from conftest import unused_port, wait_for_port
from wskit.cli.common import CommandError
from wskit.cli.metrics import STATUS_PORT, metrics_options
from wskit.cli.parser import build_parser


def parse(*argv: str) -> Any:
    return build_parser().parse_args(["serve", "app:hub", *argv])


def test_off_by_default_and_the_options_read() -> None:
    assert metrics_options(parse()) is None
    options = metrics_options(parse("--status"))
    assert options is not None
    assert (options.port, options.status_port, options.host) == (None, STATUS_PORT, "127.0.0.1")
    assert options.auth is None and not options.rooms
    options = metrics_options(
        parse("--metrics-port", "9100", "--metrics-host", "::1", "--metrics-token", "t")
    )
    assert options is not None and options.auth is not None
    assert (options.port, options.status_port, options.host) == (9100, None, "::1")
    with pytest.raises(CommandError, match="not both"):
        metrics_options(parse("--status", "--metrics-token", "t", "--metrics-auth", "a:b"))
    with pytest.raises(CommandError, match="cannot load"):
        metrics_options(parse("--status", "--metrics-auth", "no_such_module_here:f"))


def fetch(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def samples(text: bytes) -> dict[str, float]:
    """The unlabelled samples of an exposition, by name."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if not sample.labels
    }


async def test_one_process_with_a_token_and_the_status_page_on_the_same_port() -> None:
    port = unused_port()
    process, ws_port = await asyncio.to_thread(
        start,
        "serve",
        "sample_app:hub",
        "--metrics-port",
        str(port),
        "--status",
        str(port),
        "--metrics-token",
        "s3cret",
    )
    try:
        await asyncio.to_thread(wait_for_port, port)
        base = f"http://127.0.0.1:{port}"
        assert (await asyncio.to_thread(fetch, f"{base}/metrics"))[0] == 403
        conns = [await wskit.connect(f"ws://127.0.0.1:{ws_port}/") for _ in range(3)]
        await conns[0].send(json.dumps({"i": 1, "a": ["add", 2, 3]}))
        assert json.loads(await conns[0].recv()) == {"i": 1, "d": 5}
        status, body = await asyncio.to_thread(
            fetch, f"{base}/metrics", Authorization="Bearer s3cret"
        )
        assert status == 200
        found = samples(body)
        assert found["wskit_connections_open"] == 3
        assert found["wskit_hub_clients"] == 3
        assert found["wskit_messages_received_total"] == 1
        assert found["wskit_processes"] == 1
        status, page = await asyncio.to_thread(fetch, f"{base}/?token=s3cret")
        assert status == 200 and b"wskit status" in page
        # Room names only with --metrics-rooms.
        assert (await asyncio.to_thread(fetch, f"{base}/rooms.json?token=s3cret"))[0] == 404
        for conn in conns:
            await conn.close()
    finally:
        code, err = await asyncio.to_thread(stop, process)
    assert code == 0, err


async def test_an_auth_hook_named_on_the_command_line() -> None:
    port = unused_port()
    argv = ["serve", "sample_app:shout", "--status", str(port), "--metrics-rooms"]
    argv += ["--metrics-auth", "metrics_auth:allow_header"]
    process, _ = await asyncio.to_thread(start, *argv)
    try:
        await asyncio.to_thread(wait_for_port, port)
        base = f"http://127.0.0.1:{port}"
        assert (await asyncio.to_thread(fetch, f"{base}/status.json"))[0] == 403
        allowed = {"X-Metrics": "yes"}
        status, body = await asyncio.to_thread(fetch, f"{base}/status.json", **allowed)
        assert status == 200 and json.loads(body)["processes"] == 1
        status, body = await asyncio.to_thread(fetch, f"{base}/rooms.json", **allowed)
        assert (status, json.loads(body)) == (200, {})
        # The status endpoint serves the metrics too, behind the same hook.
        assert (await asyncio.to_thread(fetch, f"{base}/metrics"))[0] == 403
    finally:
        code, err = await asyncio.to_thread(stop, process)
    assert code == 0, err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT is Linux's")
async def test_two_workers_are_summed_by_the_supervisor() -> None:
    ws_port, port = unused_port(), unused_port()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "wskit", "serve", "sample_app:shout", "--workers", "2"],
        *["--host", "127.0.0.1", "--port", str(ws_port), "--metrics-port", str(port)],
        *["--status", str(port), "--status-interval", "0.2"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=app_env(),
    )
    try:
        assert process.stdout is not None
        serving = 0
        async with asyncio.timeout(30):
            while serving < 2:
                line = (await process.stdout.readline()).decode()
                assert line, "the supervisor closed its stdout"
                serving += line.startswith("wskit serving")
        base = f"http://127.0.0.1:{port}"
        # Enough connections that the kernel gives both workers some (it
        # spreads them by a hash of the client's port): read which from /proc
        # would be Linux-only detail; the sum is what matters.
        conns = [await wskit.connect(f"ws://127.0.0.1:{ws_port}/") for _ in range(8)]
        for conn in conns:
            assert (await conn.recv()).startswith("path ")
            await conn.send("hi")
            assert await conn.recv() == "HI"
        found: dict[str, float] = {}
        for _ in range(100):  # the workers' sockets appear as they start
            status, body = await asyncio.to_thread(fetch, f"{base}/metrics")
            assert status == 200
            found = samples(body)
            if found["wskit_processes"] == 2:
                break
            await asyncio.sleep(0.1)
        assert found["wskit_processes"] == 2
        assert found["wskit_connections_open"] == 8
        assert found["wskit_connections_total"] == 8
        assert found["wskit_messages_received_total"] == 8
        assert found["wskit_messages_sent_total"] == 16
        status, body = await asyncio.to_thread(fetch, f"{base}/metrics.json")
        assert json.loads(body)["handshakes"] == {"101": 8}
        # The status page samples the sum too.
        page: dict[str, Any] = {}
        for _ in range(100):
            page = json.loads((await asyncio.to_thread(fetch, f"{base}/status.json"))[1])
            if page["connections_open"] == 8:
                break
            await asyncio.sleep(0.1)
        assert (page["connections_open"], page["processes"]) == (8, 2)
        for conn in conns:
            await conn.close()
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
