"""An auth hook for ``wskit serve --metrics-auth metrics_auth:allow_header``."""

from __future__ import annotations

from wskit.protocol.http11 import Request


def allow_header(request: Request) -> bool:
    """Allow requests that carry ``X-Metrics: yes``."""
    return request.headers.get("X-Metrics") == "yes"
