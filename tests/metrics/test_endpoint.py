"""wskit.metrics.endpoint: the HTTP endpoint over a real socket, with its auth hook."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wskit.metrics import MetricsSnapshot, serve_metrics, token_auth
from wskit.protocol.headers import Headers
from wskit.protocol.http11 import Request


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` in a thread (urllib blocks); the status, headers and body, errors too."""

    def fetch() -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(fetch)


def request(target: str, **headers: str) -> Request:
    return Request("GET", target, Headers(list(headers.items())))


def test_token_auth_takes_a_bearer_token_or_a_query_parameter() -> None:
    allowed = token_auth("s3cret")
    assert allowed(request("/metrics", Authorization="Bearer s3cret"))
    assert allowed(request("/status.json?token=s3cret"))
    assert not allowed(request("/metrics"))
    assert not allowed(request("/metrics", Authorization="Bearer wrong"))
    assert not allowed(request("/metrics?token=s3cre"))


async def test_paths_auth_and_formats() -> None:
    snapshot = MetricsSnapshot(connections_open=4, handshakes={101: 4})
    seen: list[str] = []

    async def rooms() -> dict[str, int]:
        return {"lobby": 3}

    def auth(req: Request) -> bool:
        seen.append(req.path)
        return token_auth("t")(req)

    async with await serve_metrics(lambda: snapshot, port=0, rooms=rooms, auth=auth) as endpoint:
        base = f"http://127.0.0.1:{endpoint.port}"
        status, _, _ = await get(f"{base}/metrics")
        assert status == 403
        status, headers, body = await get(f"{base}/metrics", Authorization="Bearer t")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["wskit_connections_open"].samples[0].value == 4
        status, headers, body = await get(f"{base}/metrics.json?token=t")
        assert (status, headers["Content-Type"]) == (200, "application/json")
        assert MetricsSnapshot.from_dict(json.loads(body)) == snapshot
        status, _, body = await get(f"{base}/rooms.json?token=t")
        assert (status, json.loads(body)) == (200, {"lobby": 3})
        # The status page is off unless asked for.
        status, _, _ = await get(f"{base}/status?token=t")
        assert status == 404
        assert seen == ["/metrics", "/metrics", "/metrics.json", "/rooms.json", "/status"]

        def delete() -> int:
            req = urllib.request.Request(f"{base}/metrics", method="DELETE")
            try:
                urllib.request.urlopen(req, timeout=10)
            except urllib.error.HTTPError as error:
                return error.code
            return 200

        assert await asyncio.to_thread(delete) == 405


async def test_without_rooms_no_room_names_are_served() -> None:
    async with await serve_metrics(MetricsSnapshot, port=0) as endpoint:
        status, _, _ = await get(f"http://127.0.0.1:{endpoint.port}/rooms.json")
        assert status == 404


async def test_the_status_page_and_its_series() -> None:
    totals = {"messages_received": 0}

    def source() -> MetricsSnapshot:
        totals["messages_received"] += 10
        return MetricsSnapshot(connections_open=2, **totals)

    endpoint = await serve_metrics(source, port=0, status=True, sample_interval=0.05)
    try:
        base = f"http://127.0.0.1:{endpoint.port}"
        status, headers, body = await get(f"{base}/")
        assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
        assert b"<svg" in body and b"status.json" in body
        assert b"://" not in body  # nothing from elsewhere: no CDN
        assert endpoint.history is not None
        for _ in range(200):
            if len(endpoint.history.samples) >= 3:
                break
            await asyncio.sleep(0.05)
        status, _, body = await get(f"{base}/status.json")
        data: dict[str, Any] = json.loads(body)
        assert status == 200
        assert data["connections_open"] == 2
        assert len(data["series"]) >= 2
        assert all(point["messages_in"] > 0 for point in data["series"])
    finally:
        await endpoint.aclose()
    assert endpoint._sampler is None


async def test_binds_the_loopback_by_default() -> None:
    async with await serve_metrics(MetricsSnapshot, port=0) as endpoint:
        assert endpoint.server is not None
        assert {sock.getsockname()[0] for sock in endpoint.server.sockets} == {"127.0.0.1"}


def test_prometheus_missing_is_a_501(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from wskit.metrics.endpoint import MetricsEndpoint

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    endpoint = MetricsEndpoint(MetricsSnapshot)
    response = asyncio.run(endpoint.process_request(None, request("/metrics")))  # type: ignore[arg-type]
    assert response.status == 501
    assert b"wskit[prometheus]" in response.body
