"""``wskit serve --metrics-port P --status``: the metrics endpoint and the status page.

Both are off by default, bind 127.0.0.1 unless ``--metrics-host`` says
otherwise, and answer only what the auth hook allows (``--metrics-token``
or ``--metrics-auth module:function``). :func:`add_arguments` holds the
options; :func:`metrics_options` reads them into a :class:`MetricsOptions`.

In one process, :func:`start_in_process` watches the server (and its hub)
with a :class:`~wskit.metrics.Metrics` and serves it. Under ``--workers``
the supervisor makes a private directory and passes it to every worker
(``--metrics-socket``), which serves its own snapshot on a Unix socket
there, without auth (the directory is the supervisor's user's alone); the
supervisor serves their sum (:func:`start_supervisor`,
:class:`~wskit.metrics.WorkerMetrics`).
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..asyncio.server import Server
from ..hub import Hub
from ..hub.metrics import watch_hub
from ..metrics import (
    Auth,
    Metrics,
    MetricsEndpoint,
    MetricsSnapshot,
    WorkerMetrics,
    serve_metrics,
    token_auth,
)
from .common import CommandError

__all__ = [
    "STATUS_PORT",
    "MetricsOptions",
    "add_arguments",
    "metrics_options",
    "start_in_process",
    "start_supervisor",
]

STATUS_PORT = 9101
"""The port of ``--status`` given without one."""


@dataclass
class MetricsOptions:
    """What the metrics and status options of ``wskit serve`` asked for."""

    #: The port of ``/metrics`` (and ``/metrics.json``); ``None``: not served.
    port: int | None = None
    #: The port of the status page; ``None``: not served. The same as ``port``: one endpoint.
    status_port: int | None = None
    #: The address both bind.
    host: str = "127.0.0.1"
    #: Sees each request; ``None`` answers all.
    auth: Auth | None = None
    #: Serve ``/rooms.json``, the members per room.
    rooms: bool = False
    #: Seconds between the status page's samples.
    status_interval: float = 2.0
    #: In a worker: the directory of the supervisor's sockets.
    socket_dir: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the metrics and status options to the ``serve`` parser."""
    group = parser.add_argument_group("metrics and status page (off by default)")
    group.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on /metrics (and JSON on /metrics.json); "
        "needs prometheus-client for /metrics: pip install 'wskit[prometheus]'",
    )
    group.add_argument(
        "--status",
        nargs="?",
        type=int,
        const=STATUS_PORT,
        metavar="PORT",
        help=f"serve a live status page (default port {STATUS_PORT}; the metrics port serves both)",
    )
    group.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address of the metrics and status endpoints (default 127.0.0.1)",
    )
    group.add_argument(
        "--metrics-token",
        metavar="TOKEN",
        help="answer only requests with 'Authorization: Bearer TOKEN' or ?token=TOKEN",
    )
    group.add_argument(
        "--metrics-auth",
        metavar="module:function",
        help="answer only requests for which function(request) returns true",
    )
    group.add_argument(
        "--metrics-rooms",
        action="store_true",
        help="also serve the members per room on /rooms.json (room names are your data)",
    )
    group.add_argument(
        "--status-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between the status page's samples (default 2)",
    )
    group.add_argument("--metrics-socket", help=argparse.SUPPRESS)


def _load_auth(spec: str) -> Auth:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CommandError(f"--metrics-auth: expected module:function, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for name in attr.split("."):
            target = getattr(target, name)
    except (ImportError, AttributeError) as exc:
        raise CommandError(f"--metrics-auth: cannot load {spec}: {exc}") from exc
    if not callable(target):
        raise CommandError(f"--metrics-auth: {spec} is not callable")
    hook: Auth = target
    return hook


def metrics_options(args: argparse.Namespace) -> MetricsOptions | None:
    """The :class:`MetricsOptions` of the parsed arguments; ``None`` when all is off.

    Raises:
        CommandError: both ``--metrics-token`` and ``--metrics-auth``, or a
            hook that does not load.
    """
    if args.metrics_port is None and args.status is None and args.metrics_socket is None:
        return None
    if args.metrics_token and args.metrics_auth:
        raise CommandError("give --metrics-token or --metrics-auth, not both")
    auth: Auth | None = None
    if args.metrics_token:
        auth = token_auth(args.metrics_token)
    elif args.metrics_auth:
        auth = _load_auth(args.metrics_auth)
    return MetricsOptions(
        port=args.metrics_port,
        status_port=args.status,
        host=args.metrics_host,
        auth=auth,
        rooms=args.metrics_rooms,
        status_interval=args.status_interval,
        socket_dir=args.metrics_socket,
    )


async def _serve_endpoints(
    options: MetricsOptions,
    source: Callable[[], Any],
    rooms: Callable[[], Any] | None,
) -> list[MetricsEndpoint]:
    """The endpoints ``options`` ask for: one, or two on two ports."""
    endpoints: list[MetricsEndpoint] = []
    kwargs: dict[str, Any] = {
        "rooms": rooms if options.rooms else None,
        "auth": options.auth,
        "sample_interval": options.status_interval,
    }
    try:
        if options.port is not None:
            status = options.status_port == options.port
            endpoints.append(
                await serve_metrics(source, options.host, options.port, status=status, **kwargs)
            )
            print(
                f"wskit metrics on http://{options.host}:{endpoints[-1].port}/metrics", flush=True
            )
        if options.status_port is not None and options.status_port != options.port:
            endpoints.append(
                await serve_metrics(
                    source, options.host, options.status_port, status=True, **kwargs
                )
            )
        if options.status_port is not None:
            print(f"wskit status on http://{options.host}:{endpoints[-1].port}/", flush=True)
    except BaseException:
        for endpoint in endpoints:
            await endpoint.aclose()
        raise
    return endpoints


async def start_in_process(
    options: MetricsOptions, server: Server, hub: Hub | None
) -> list[MetricsEndpoint]:
    """Watch ``server`` (and ``hub``) and serve the metrics as ``options`` say.

    In a worker (``options.socket_dir``), serve them on the worker's socket
    for the supervisor instead.
    """
    metrics = Metrics()
    if hub is not None:
        watch_hub(metrics, hub)
    metrics.watch(server)

    def source() -> MetricsSnapshot:
        return metrics.snapshot()

    if options.socket_dir is not None:
        path = WorkerMetrics(options.socket_dir).socket_for(os.getpid())
        endpoint = await serve_metrics(source, rooms=metrics.rooms, unix_path=path)
        return [endpoint]
    return await _serve_endpoints(options, source, metrics.rooms)


async def start_supervisor(options: MetricsOptions, directory: str) -> list[MetricsEndpoint]:
    """Serve the sum of the metrics of the workers whose sockets are in ``directory``."""
    workers = WorkerMetrics(directory)
    return await _serve_endpoints(options, workers.snapshot, workers.rooms)
