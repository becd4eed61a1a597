"""Attacks on the hub, against real servers: a hub under ``wskit serve``, and under uvicorn.

Each attack runs against both: ``wskit serve hub_attack_app:...`` in a
subprocess (its log read from its stderr), and the same hub mounted with
:func:`wskit.asgi.asgi_app` in a Starlette app under uvicorn in this process
(its log captured from the ``wskit`` logger). They assert mechanisms, not
speed: the close code or the reply, the counters, the log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.routing import WebSocketRoute

import wskit
from asgi.support import starlette_app, uvicorn_serving
from cli.process_support import APPS, start, stop
from wskit.asgi import asgi_app
from wskit.exceptions import ConnectionClosed
from wskit.limits import client_caused

TIMEOUT = 10

_spec = importlib.util.spec_from_file_location("hub_attack_app", APPS / "hub_attack_app.py")
assert _spec is not None and _spec.loader is not None
attack_app = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = attack_app  # its dataclass looks its module up
_spec.loader.exec_module(attack_app)


@dataclass
class Served:
    url: str
    log: str = ""  # the server's log, once it stopped


@contextlib.asynccontextmanager
async def hub_server(kind: str, factory: str = "make_hub") -> AsyncIterator[Served]:
    """Serve the attack app's hub made by ``factory``, in the way ``kind`` says."""
    if kind == "serve":
        process, port = start("serve", f"hub_attack_app:{factory}", "--log-level", "INFO")
        served = Served(f"ws://127.0.0.1:{port}/")
        try:
            yield served
        finally:
            _, served.log = stop(process)
        return
    client_caused.__init__()  # type: ignore[misc]  # the process's shared limiter: start afresh
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    wskit_logger = logging.getLogger("wskit")
    wskit_logger.addHandler(handler)
    level = wskit_logger.level
    wskit_logger.setLevel(logging.INFO)
    app = starlette_app(WebSocketRoute("/ws", asgi_app(getattr(attack_app, factory)())))
    try:
        async with uvicorn_serving(app) as running:
            served = Served(running.ws("/ws"))
            yield served
    finally:
        wskit_logger.removeHandler(handler)
        wskit_logger.setLevel(level)
        served.log = stream.getvalue()


SERVERS = pytest.mark.parametrize("kind", ["serve", "uvicorn"])


async def request(conn: wskit.ClientConn, request_id: int, *event: Any) -> dict[str, Any]:
    await conn.send(json.dumps({"i": request_id, "a": list(event)}))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT))
        if answer.get("i") == request_id:
            return answer


async def close_of(conn: wskit.ClientConn) -> tuple[int | None, str | None]:
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(TIMEOUT):
            while True:
                await conn.recv()
    return conn.close_code, conn.close_reason


@SERVERS
async def test_deep_json_is_refused_without_a_traceback(kind: str) -> None:
    async with hub_server(kind) as served, wskit.connect(served.url) as conn:
        deep = "[" * 50 + "]" * 50
        await conn.send(f'{{"i": 1, "a": ["typed", {deep}]}}')
        answer = json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT))
        assert answer["e"] == {"message": "message nested deeper than 32 levels"}
        await conn.send("[" * 100_000 + "]" * 100_000)
        assert await close_of(conn) == (1008, "message nested deeper than 32 levels")
    assert "Traceback" not in served.log and "RecursionError" not in served.log


@SERVERS
async def test_requests_to_a_slow_handler_wait_unread(kind: str) -> None:
    async with (
        hub_server(kind) as served,
        wskit.connect(served.url) as attacker,
        wskit.connect(served.url) as observer,
    ):
        sent = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):  # the server stops reading: sends block
                for i in range(10_000):
                    await attacker.send(json.dumps({"i": i, "a": ["slow"]}))
                    sent += 1
        assert sent > attack_app.MAX_INFLIGHT
        # The handlers start as the server reads; never more than MAX_INFLIGHT.
        counts = []
        for i in range(50):
            counts.append((await request(observer, i, "running"))["d"])
            if counts[-1] == attack_app.MAX_INFLIGHT and len(counts) > 5:
                break
            await asyncio.sleep(0.05)
        assert max(counts) == counts[-1] == attack_app.MAX_INFLIGHT
        # Released, the handlers end and the server reads the rest: all answered.
        await request(observer, 100, "release")
        async with asyncio.timeout(TIMEOUT):
            while json.loads(await attacker.recv())["i"] != sent - 1:
                pass


@SERVERS
async def test_a_handlers_secret_is_not_sent(kind: str) -> None:
    async with hub_server(kind) as served, wskit.connect(served.url) as conn:
        answer = await request(conn, 1, "secret")
    message = answer["e"]["message"]
    assert "hunter2" not in message
    match = re.fullmatch(r"Internal server error \(error ([0-9a-f]{8})\)", message)
    assert match is not None
    assert f"error {match[1]} in the handler of 'secret'" in served.log
    assert "KeyError: 'db-password=hunter2'" in served.log  # the traceback, for the operator


@SERVERS
async def test_badly_typed_requests_log_a_bounded_number_of_lines(kind: str) -> None:
    async with hub_server(kind) as served, wskit.connect(served.url) as conn:
        for i in range(100):
            answer = await request(conn, i, "typed", "not a number")
            assert answer["e"] == {"message": "argument 'x': expected int, got str"}
    lines = [line for line in served.log.splitlines() if "bad arguments" in line]
    assert 1 <= len(lines) <= 10


@SERVERS
async def test_a_client_over_its_rate_is_closed(kind: str) -> None:
    async with hub_server(kind, "make_limited_hub") as served, wskit.connect(served.url) as conn:
        for i in range(5):
            assert await request(conn, i, "typed", i) == {"i": i, "d": i}
        await conn.send(json.dumps({"i": 5, "a": ["typed", 5]}))
        assert await close_of(conn) == (1008, "rate limit exceeded")


@SERVERS
async def test_a_types_secret_is_not_sent_nor_logged(kind: str) -> None:
    async with hub_server(kind) as served, wskit.connect(served.url) as conn:
        answer = await request(conn, 1, "account", {"number": -1})
        assert answer["e"] == {"message": "argument 'a': not a valid Account"}
        assert await request(conn, 2, "account", {"number": 7}) == {"i": 2, "d": 7}
    assert "not a valid Account" in served.log
    assert "s3cret" not in served.log


@SERVERS
async def test_request_ids_are_ints_or_strings_never_bools(kind: str) -> None:
    async with hub_server(kind) as served, wskit.connect(served.url) as conn:
        await conn.send(json.dumps({"i": True, "a": ["typed", 1]}))
        await conn.send(json.dumps({"i": False, "a": ["typed", 2]}))
        await conn.send(json.dumps({"i": 3, "a": ["typed", 3]}))
        # Not requests: nothing answers them, the first answer is request 3's.
        assert json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT)) == {"i": 3, "d": 3}


HUGE = "9" * 1_000_000


@SERVERS
async def test_what_a_client_sends_is_quoted_cut_short(kind: str) -> None:
    async with hub_server(kind) as served, wskit.connect(served.url) as conn:
        answers = [
            await request(conn, 1, "typed", "x" + HUGE),
            await request(conn, 2, "x" + HUGE),
            await request(conn, 3, "account", {"number": -1, "x" * 500_000: 1}),
        ]
        for answer in answers:
            assert len(json.dumps(answer)) < 1000
    lines = served.log.splitlines()
    assert lines and max(len(line) for line in lines) < 1000


@SERVERS
async def test_iris_tags_and_values_a_client_makes_up(kind: str) -> None:
    async with hub_server(kind, "make_iris_hub") as served, wskit.connect(served.url) as conn:
        prefix = "iris-websocket-message:"
        await conn.send(f"{prefix}echo;{'1' * 4400};x")  # int() of the tag would raise
        await conn.send(f"{prefix}echo;7;unknown tag")
        await conn.send(f"{prefix}add;1;{HUGE}")  # no handler: nothing happens
        await conn.send(f"{prefix}typed;1;x{HUGE}")  # not an int: logged, cut short
        await conn.send(f"{prefix}echo;0;still here")
        answer = await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert answer == f"{prefix}echo;0;still here"
    assert "Traceback" not in served.log
    assert "'typed'" in served.log and "is not a int" in served.log
    assert max(len(line) for line in served.log.splitlines()) < 1000
