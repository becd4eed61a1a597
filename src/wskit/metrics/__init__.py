"""Metrics of a server and its hub: counters, gauges, Prometheus, OpenTelemetry, a status page.

Off by default, and then free: nothing on a connection's path checks for
them. On, a :class:`Metrics` counts what a production server needs
(connections open and total, handshakes by status, messages and bytes in
and out, close codes, refused writes, the server-wide limits' refusals)
and, with :func:`wskit.hub.metrics.watch_hub`, what its hub does (clients,
rooms, deliveries, overflow drops, requests in flight, handler durations,
the backplane's counts and lag)::

    metrics = Metrics()
    server = await wskit.serve(handler, "127.0.0.1", 8000)
    metrics.watch(server)
    print(metrics.snapshot().connections_open)

Under an ASGI server, ``metrics.watch(endpoint)`` counts the connections of
an :func:`~wskit.asgi.asgi_app` endpoint (:mod:`wskit.metrics.asgi`), and
:func:`wskit.metrics.uvicorn.watch_uvicorn` every WebSocket of uvicorn run
with ``--ws wskit.metrics.uvicorn:MeteredWebSocketProtocol``;
:func:`metrics_app` answers ``/metrics`` from the application itself
(``app.routes.append(metrics_route(metrics))``).

A :class:`MetricsSnapshot` holds plain numbers. :func:`serve_metrics`
serves them over HTTP (Prometheus' text format with ``prometheus_client``,
JSON, and the live status page), behind an auth hook and on 127.0.0.1 by
default; :func:`~wskit.metrics.otel.observe_with_meter` hands them to an
OpenTelemetry meter. ``wskit serve --metrics-port 9100 --status`` does it
all from the command line, summed over ``--workers``
(:mod:`wskit.metrics.aggregate`).

Modules: ``snapshot`` (the numbers), ``server`` (counting, :class:`Metrics`),
``asgi`` (ASGI endpoints, :func:`metrics_app`), ``uvicorn`` (uvicorn's
WebSocket class; imported on demand, it needs uvicorn), ``prometheus``,
``otel``, ``endpoint`` (HTTP), ``status`` (the page), ``aggregate`` (workers).
"""

from .aggregate import WorkerMetrics
from .asgi import MeteredAsgiConn, MetricsApp, metrics_app, metrics_route
from .endpoint import Auth, MetricsEndpoint, serve_metrics, token_auth
from .otel import observe_with_meter
from .prometheus import PrometheusCollector, exposition
from .server import CountingConn, MeteredServerConn, Metrics
from .snapshot import Histogram, HistogramSnapshot, MetricsSnapshot, combine

__all__ = [
    "Auth",
    "CountingConn",
    "Histogram",
    "HistogramSnapshot",
    "MeteredAsgiConn",
    "MeteredServerConn",
    "Metrics",
    "MetricsApp",
    "MetricsEndpoint",
    "MetricsSnapshot",
    "PrometheusCollector",
    "WorkerMetrics",
    "combine",
    "exposition",
    "metrics_app",
    "metrics_route",
    "observe_with_meter",
    "serve_metrics",
    "token_auth",
]
