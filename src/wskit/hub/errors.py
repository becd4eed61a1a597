"""The hub's exceptions: a request that failed, and a handler's plain rejection.

They sit below every other module of the hub, which all raise or catch them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RequestError", "Reject"]


class RequestError(Exception):
    """A request was rejected by the peer, timed out, or its client went away.

    ``data`` is the rejection value as the peer sent it (for a serialized
    JavaScript ``Error``, a dict with ``message``).
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


class Reject(Exception):
    """Raise it in a request handler to reject with ``value`` as it is.

    Any other exception rejects with a JavaScript ``Error`` carrying the
    exception's message (``{"message": ...}`` with ``_: 1`` in ws-wrapper);
    ``Reject(value)`` sends ``value`` itself, so the client's promise
    rejects with that plain value.
    """

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value
