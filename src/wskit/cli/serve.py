"""``wskit serve module:attr``: serve an application named on the command line.

:func:`load_app` imports ``module:attr`` and makes an :class:`App` of what it
finds: a :class:`~wskit.hub.Hub`, a connection handler
(``async def handler(conn)``), or a factory returning either.
:func:`run_serve` serves it in this process; ``--workers N`` runs N such
processes on one port instead (:mod:`wskit.cli.workers`).
"""

from __future__ import annotations

import importlib
import inspect
import os
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..asyncio.server import Handler, ProcessRequest, serve
from ..hub import Hub
from ..hub.backplane import BackplaneUnavailable
from .common import CommandError, serve_until_signal
from .metrics import MetricsOptions, start_in_process

__all__ = ["App", "load_app", "run_serve", "tls_context"]


@dataclass
class App:
    """What ``wskit serve`` runs: a connection handler and its HTTP hook."""

    handler: Handler
    process_request: ProcessRequest | None = None
    #: Whether the app is a hub (which serves ``/wskit.js``).
    is_hub: bool = False

    @property
    def hub(self) -> Hub | None:
        """The hub, when the app is one."""
        return self.handler if isinstance(self.handler, Hub) else None


def _required_positionals(func: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty)


def _as_app(target: Any) -> App | None:
    if isinstance(target, Hub):
        return App(target, target.process_request, is_hub=True)
    if callable(target) and _required_positionals(target) == 1:
        return App(target)
    return None


async def load_app(spec: str) -> App:
    """Import ``package.module:attr`` and make an :class:`App` of it.

    ``attr`` (dotted paths allowed) may be a :class:`~wskit.hub.Hub`, a
    connection handler taking one argument, or a factory taking none that
    returns (or, if async, resolves to) either of those.

    Raises:
        CommandError: ``spec`` is malformed, its module does not import, or
            it names something that cannot be served.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CommandError(f"expected module:attribute, got {spec!r}")
    # Like ``python -m``, find modules in the working directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name}: {exc}") from exc
    for name in attr.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CommandError(f"{module_name} has no attribute {attr!r}") from None
    app = _as_app(target)
    if app is None and callable(target) and _required_positionals(target) == 0:
        made = target()
        if inspect.isawaitable(made):
            made = await made
        app = _as_app(made)
    if app is None:
        raise CommandError(
            f"{spec} is not a Hub, a connection handler (async def handler(conn)), "
            "or a factory returning one"
        )
    return app


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context from a PEM certificate chain and its key (``None`` without).

    Raises:
        CommandError: a key without a certificate, or files that do not load.
    """
    if cert is None:
        if key is not None:
            raise CommandError("--tls-key needs --tls-cert")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CommandError(f"cannot load the TLS certificate or key: {exc}") from exc
    return context


async def run_serve(
    spec: str,
    host: str,
    port: int,
    *,
    path: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    compression: bool = True,
    max_size: int | None = 2**20,
    origins: Sequence[str] | None = None,
    reuse_port: bool = False,
    limits: Mapping[str, Any] | None = None,
    metrics: MetricsOptions | None = None,
) -> None:
    """Serve the app named by ``spec`` until SIGINT/SIGTERM (connections get 1001).

    ``limits`` holds :class:`~wskit.ServerOptions` fields for the server-wide
    limits (``max_connections``...); what it leaves out keeps its default.
    ``metrics`` says whether and where to serve the metrics and the status
    page (``wskit.cli.metrics``).

    A hub's backplane is started first and closed last (after the
    connections), so that what they emitted while closing is published.
    """
    app = await load_app(spec)
    context = tls_context(tls_cert, tls_key)
    if app.hub is not None:
        try:
            await app.hub.start()
        except BackplaneUnavailable as exc:
            raise CommandError(str(exc)) from None  # one line: the broker's URL and why
    server = await serve(
        app.handler,
        host,
        port,
        ssl=context,
        path=path,
        process_request=app.process_request,
        compression="deflate" if compression else None,
        max_size=max_size,
        origins=list(origins) if origins else None,
        reuse_port=reuse_port or None,
        **(limits or {}),
    )
    endpoints = [] if metrics is None else await start_in_process(metrics, server, app.hub)
    secure = "s" if context is not None else ""
    where = f"{host}:{server.port}"
    print(f"wskit serving {spec} on ws{secure}://{where}{path or '/'}", flush=True)
    if app.is_hub:
        print(f"JavaScript client: http{secure}://{where}/wskit.js (or /wskit.mjs)", flush=True)
    try:
        await serve_until_signal(server)
    finally:
        for endpoint in endpoints:
            await endpoint.aclose()
        if app.hub is not None:
            await app.hub.close()
