"""The JavaScript client, ``wskit.js``, as the hub serves it.

One source, ``static/wskit.mjs`` (an ES module, no build step), is served
as is at ``/wskit.mjs`` and, turned into a classic script that defines
``window.WskitClient``, at ``/wskit.js``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from ..protocol.handshake import reject
from ..protocol.http11 import Response

__all__ = ["module_source", "classic_source", "script_response"]


@cache
def module_source() -> bytes:
    """The ES module."""
    return resources.files("wskit.hub").joinpath("static/wskit.mjs").read_bytes()


@cache
def classic_source() -> bytes:
    """The classic-script build of the module (filled in by the JS client work)."""
    raise NotImplementedError


def script_response(path: str) -> Response | None:
    """A 200 response with the client for ``/wskit.js`` or ``/wskit.mjs``; else ``None``."""
    if path == "/wskit.mjs":
        body = module_source()
    elif path == "/wskit.js":
        body = classic_source()
    else:
        return None
    return reject(200, body, [("Content-Type", "text/javascript; charset=utf-8")])
