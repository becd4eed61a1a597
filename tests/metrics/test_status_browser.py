"""The status page (wskit.metrics.status) in headless Chromium: the numbers, the chart moving."""

from __future__ import annotations

from typing import TYPE_CHECKING

import wskit
from wskit.hub import Hub
from wskit.hub.metrics import watch_hub
from wskit.metrics import Metrics, serve_metrics, token_auth

if TYPE_CHECKING:
    from playwright.async_api import Browser


async def test_the_page_shows_the_numbers_and_the_chart_updates(chromium_browser: Browser) -> None:
    hub = Hub()

    @hub.on("join")
    def join(client: wskit.hub.Client, room: str) -> None:
        client.join(room)

    metrics = Metrics()
    watch_hub(metrics, hub)
    async with wskit.serve(hub, "127.0.0.1", 0) as server:
        metrics.watch(server)
        endpoint = await serve_metrics(
            metrics.snapshot, port=0, status=True, sample_interval=0.2, auth=token_auth("t")
        )
        page = await chromium_browser.new_page()
        try:
            base = f"http://127.0.0.1:{endpoint.port}"
            refused = await page.goto(f"{base}/")
            assert refused is not None and refused.status == 403
            response = await page.goto(f"{base}/?token=t")
            assert response is not None and response.status == 200
            conns = [await wskit.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(2)]
            for index, conn in enumerate(conns):
                await conn.send(f'{{"i": 1, "a": ["join", "room{index}"]}}')
                await conn.recv()
            text = "id => document.getElementById(id).textContent"
            await page.wait_for_function(
                f"() => ({text})('connections') === '2' && ({text})('rooms') === '2'",
                timeout=10000,
            )
            assert await page.evaluate(f"({text})('clients')") == "2"
            points = await page.evaluate("Number(document.getElementById('chart').dataset.points)")
            # Traffic: the rate of messages in goes up, the chart grows and draws it.
            for _ in range(20):
                await conns[0].send('{"a": ["noop"]}')  # an event nobody handles
            await page.wait_for_function(
                f"""() => Number(document.getElementById('chart').dataset.points) > {points}
                    && document.getElementById('line-in').getAttribute('points')
                        .split(' ').some(p => Number(p.split(',')[1]) < 155)
                    && Number(({text})('connections-total')) === 2""",
                timeout=10000,
            )
            await page.wait_for_function(
                f"() => Number(document.getElementById('chart').dataset.points) > {points} + 2",
                timeout=10000,
            )
            assert "cannot read" not in await page.evaluate(f"({text})('updated')")
            for conn in conns:
                await conn.close()
        finally:
            await page.close()
            await endpoint.aclose()
