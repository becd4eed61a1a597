"""The live status page: :class:`RateHistory` and the page itself, :data:`STATUS_PAGE`.

The page is one HTML document with a few lines of JavaScript and no
dependency (no CDN, no npm): it polls ``status.json`` as often as the
server samples (every two seconds by default)
and draws the message rates of the last minutes as an inline SVG chart,
beside the numbers of now (connections, hub clients, rooms). The rates
come from :class:`RateHistory`, which samples the totals at a fixed
interval and keeps a bounded window of them; each rate is the difference
between two samples over the time between them.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .snapshot import MetricsSnapshot

__all__ = ["STATUS_PAGE", "RateHistory"]

#: What each sample keeps of a snapshot: the totals rates are made of, and the gauges.
_SAMPLED = (
    "messages_received",
    "messages_sent",
    "bytes_received",
    "bytes_sent",
    "connections_open",
    "hub_clients",
    "hub_rooms",
)


class RateHistory:
    """Samples of a snapshot's totals, every ``interval`` seconds over the last ``span``.

    Args:
        source: makes the snapshot (``Metrics.snapshot``, or an async
            function: the supervisor of ``--workers`` asks its workers).
        interval: seconds between samples.
        span: seconds of history kept (the chart's width).
    """

    def __init__(
        self,
        source: Callable[[], MetricsSnapshot | Awaitable[MetricsSnapshot]],
        interval: float = 2.0,
        span: float = 600.0,
    ) -> None:
        self.source = source
        self.interval = interval
        self.samples: collections.deque[tuple[float, dict[str, int]]] = collections.deque(
            maxlen=max(2, int(span / interval) + 1)
        )
        #: The latest snapshot sampled.
        self.latest = MetricsSnapshot()

    def add(self, snapshot: MetricsSnapshot, when: float | None = None) -> None:
        """Keep a sample of ``snapshot`` taken at ``when`` (``time.monotonic()`` by default)."""
        when = time.monotonic() if when is None else when
        self.samples.append((when, {name: getattr(snapshot, name) for name in _SAMPLED}))
        self.latest = snapshot

    async def sample(self) -> None:
        """Take a snapshot from the source and keep a sample of it."""
        made = self.source()
        snapshot = made if isinstance(made, MetricsSnapshot) else await made
        self.add(snapshot)

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        import asyncio

        while True:
            await self.sample()
            await asyncio.sleep(self.interval)

    def series(self) -> list[dict[str, float]]:
        """Per interval: its end (seconds ago), the rates per second, the gauges at its end."""
        now = time.monotonic()
        points: list[dict[str, float]] = []
        previous: tuple[float, dict[str, int]] | None = None
        for when, values in self.samples:
            if previous is not None:
                elapsed = max(when - previous[0], 1e-9)
                before = previous[1]
                # A total that went down (a worker restarted) reads as no traffic.
                points.append(
                    {
                        "ago": round(now - when, 3),
                        "messages_in": max(
                            0, values["messages_received"] - before["messages_received"]
                        )
                        / elapsed,
                        "messages_out": max(0, values["messages_sent"] - before["messages_sent"])
                        / elapsed,
                        "bytes_in": max(0, values["bytes_received"] - before["bytes_received"])
                        / elapsed,
                        "bytes_out": max(0, values["bytes_sent"] - before["bytes_sent"]) / elapsed,
                        "connections": values["connections_open"],
                    }
                )
            previous = (when, values)
        return points

    def status(self) -> dict[str, Any]:
        """What ``status.json`` serves: the numbers of now and the series."""
        latest = self.latest
        return {
            "connections_open": latest.connections_open,
            "connections_total": latest.connections_total,
            "hub_clients": latest.hub_clients,
            "hub_rooms": latest.hub_rooms,
            "messages_received": latest.messages_received,
            "messages_sent": latest.messages_sent,
            "processes": latest.processes,
            "interval": self.interval,
            "series": self.series(),
        }


STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wskit status</title>
<meta name="viewport" content="width=device-width">
<style>
body{font:15px system-ui,sans-serif;margin:2em;color:#222}
dl{display:grid;grid-template-columns:max-content auto;gap:.3em 1.5em}
dt{color:#666}dd{margin:0;font-weight:600}
svg{border:1px solid #ccc;background:#fafafa}
.in{stroke:#1565c0}.out{stroke:#c62828}polyline{fill:none;stroke-width:2}
small{color:#666}
</style></head><body>
<h1>wskit status</h1>
<dl>
<dt>Connections open</dt><dd id="connections">-</dd>
<dt>Connections since start</dt><dd id="connections-total">-</dd>
<dt>Hub clients</dt><dd id="clients">-</dd>
<dt>Rooms</dt><dd id="rooms">-</dd>
<dt>Messages in per second</dt><dd id="rate-in">-</dd>
<dt>Messages out per second</dt><dd id="rate-out">-</dd>
<dt>Processes</dt><dd id="processes">-</dd>
</dl>
<h2>Messages per second <small>(<span class="in">in</span>, <span class="out">out</span>;
last minutes, newest on the right)</small></h2>
<svg id="chart" width="600" height="160" viewBox="0 0 600 160" data-points="0">
<polyline id="line-in" class="in" points=""/><polyline id="line-out" class="out" points=""/>
<text id="chart-max" x="4" y="14" font-size="12">0</text></svg>
<p><small id="updated">waiting for data</small></p>
<script>
"use strict";
const query = location.search;  // carries ?token=... to the JSON too
function draw(series, span) {
  const top = Math.max(1, ...series.map(p => Math.max(p.messages_in, p.messages_out)));
  const line = key => series.map(p => {
    const x = 600 - (p.ago / span) * 600, y = 155 - (p[key] / top) * 145;
    return x.toFixed(1) + "," + y.toFixed(1);
  }).join(" ");
  document.getElementById("line-in").setAttribute("points", line("messages_in"));
  document.getElementById("line-out").setAttribute("points", line("messages_out"));
  document.getElementById("chart-max").textContent = top.toFixed(1) + "/s";
  document.getElementById("chart").dataset.points = String(series.length);
}
let delay = 2000;  // then the server's sampling interval
async function poll() {
  try {
    const response = await fetch("status.json" + query, {cache: "no-store"});
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    const s = await response.json();
    const last = s.series[s.series.length - 1] || {messages_in: 0, messages_out: 0};
    const set = (id, value) => { document.getElementById(id).textContent = value; };
    set("connections", s.connections_open);
    set("connections-total", s.connections_total);
    set("clients", s.hub_clients);
    set("rooms", s.hub_rooms);
    set("rate-in", last.messages_in.toFixed(1));
    set("rate-out", last.messages_out.toFixed(1));
    set("processes", s.processes);
    draw(s.series, Math.max(60, s.series.length * s.interval));
    set("updated", "updated " + new Date().toLocaleTimeString());
    delay = Math.max(100, s.interval * 1000);
  } catch (error) {
    document.getElementById("updated").textContent = "cannot read status.json: " + error;
  }
  setTimeout(poll, delay);
}
poll();
</script></body></html>
"""
"""The status page's HTML (``/`` and ``/status`` of the status endpoint)."""
