"""The hub's exceptions: a failed request, and the rejections a handler means a client to read.

A request handler that raises answers its request with an error. What the
client reads depends on what was raised:

* :class:`Reject` (``value``) rejects with that plain value, as it is;
* :class:`ClientError` (``message``) rejects with an ``Error`` carrying that
  message;
* any other exception may carry the server's secrets (a ``KeyError`` naming
  a key, a database error quoting a query), so the client reads only a
  generic message with an error id, and the server logs the traceback with
  the same id (see :func:`wskit.limits.report_failure`), unless the hub
  runs with ``debug=True``.

They sit below every other module of the hub, which all raise or catch them,
and under :class:`wskit.WebSocketError` with every exception of wskit.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import WebSocketError

__all__ = ["RequestError", "Reject", "ClientError"]


class RequestError(WebSocketError):
    """A request was rejected by the peer, timed out, or its client went away.

    ``data`` is the rejection value as the peer sent it (for a serialized
    JavaScript ``Error``, a dict with ``message``).
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


class Reject(WebSocketError):
    """Raise it in a request handler to reject with ``value`` as it is.

    ``Reject(value)`` sends ``value`` itself, so the client's promise
    rejects with that plain value. To reject with an ``Error`` (what a
    JavaScript client's ``catch`` usually expects), raise :class:`ClientError`.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


class ClientError(WebSocketError):
    """Raise it in a handler to reject the request with an ``Error`` carrying ``message``.

    The message is meant for the client and sent as it is
    (``{"message": ...}``, with ``_: 1`` in ws-wrapper), and nothing is
    logged: the client asked for something it may not have. Any other
    exception is a failure of the server, which the client only reads as
    "Internal server error (error <id>)".
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
