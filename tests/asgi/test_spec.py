"""wskit.asgi.spec: reading an ASGI scope."""

from __future__ import annotations

from asgi.support import FakeServer
from wskit.asgi.spec import request_from_scope


def test_request_from_scope() -> None:
    scope = FakeServer(path="/a b").scope
    scope["raw_path"] = b"/a%20b"
    request = request_from_scope(scope)
    assert (request.method, request.target, request.version) == ("GET", "/a%20b?a=1", "HTTP/1.1")
    assert request.headers["Host"] == "127.0.0.1:8000"
    del scope["raw_path"]
    assert request_from_scope(scope).target == "/a%20b?a=1"
