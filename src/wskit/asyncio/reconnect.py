"""Reconnecting: ``async for conn in wskit.connect(uri)``, with backoff and jitter.

Iterating over :func:`~wskit.connect` yields a new open connection each time
the previous one is over::

    async for conn in wskit.connect("ws://127.0.0.1:8765/"):
        try:
            async for message in conn:
                print(message)
        except wskit.ConnectionClosed:
            continue  # lost: the loop connects again

Each ``async for`` step closes the connection it gave last (if the body did
not), waits a short random delay, and connects again; an attempt that fails
with a transient error (:func:`is_retryable`) is retried after a delay that
grows exponentially, with jitter, up to a maximum (:class:`Backoff`). An
error that retrying cannot fix ends the loop by raising it. ``break`` ends
it too, and leaves the connection it gave last open, for the code after the
loop (close it, or ``async with conn:`` in the body).

What is retried, and what stops the loop
========================================

Retried: the server cannot be reached (:exc:`OSError`: refused, reset,
unreachable, a name that does not resolve yet), ``open_timeout`` passed
(:exc:`TimeoutError`), the connection closed or broke during the handshake
(:exc:`~wskit.InvalidResponse`), the server answered 408, 425, 429, 500,
502, 503 or 504 (:exc:`~wskit.HandshakeRejected`: it is restarting, overloaded
or behind a proxy whose upstream is down), and a proxy that cannot be reached
(:exc:`~wskit.ProxyError` caused by an :exc:`OSError`).

Stopping, raised from the ``async for``: a malformed URI or redirect
(:exc:`~wskit.InvalidURI`), any other refusal of the handshake (401, 403,
404...: the same request would be refused again), too many redirects, a
proxy that refuses (wrong credentials, a port it does not allow, an upstream
it cannot reach: it cannot tell the two apart for us), TLS errors other than
a connection cut during the TLS handshake (a certificate that does not
verify will not verify next time), and anything that is not a network error
(a bad option, a bug).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ..exceptions import HandshakeRejected, InvalidResponse, ProxyError

__all__ = ["Backoff", "Reconnecting", "is_retryable", "RETRY_STATUSES"]

logger = logging.getLogger("wskit")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Handshake refusals worth retrying: the server is busy, restarting or behind a failing proxy."""


class _Closable(Protocol):
    async def close(self) -> Any: ...


C = TypeVar("C", bound=_Closable)


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts: exponential, with jitter, bounded.

    The first delay is random between 0 and ``initial`` seconds (clients
    that a restarting server dropped all at once come back spread out);
    the ``n``-th after it is ``initial * factor ** n``, capped at
    ``maximum``, times a random factor between 0.5 and 1.

    Raises:
        ValueError: ``initial`` is not positive, ``factor`` is below 1, or
            ``maximum`` is below ``initial``.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0

    def __post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"backoff_initial must be positive, not {self.initial!r}")
        if not self.factor >= 1:
            raise ValueError(f"backoff_factor must be at least 1, not {self.factor!r}")
        if not self.maximum >= self.initial:
            raise ValueError(
                f"backoff_max ({self.maximum!r}) must be at least backoff_initial "
                f"({self.initial!r})"
            )

    def delays(self, random: Callable[[], float] = random.random) -> Iterator[float]:
        """The delays, in seconds, before each of the next attempts; endless.

        ``random()`` returns a float in [0, 1) (the default: :func:`random.random`).
        """
        yield self.initial * random()
        delay = self.initial
        while True:
            delay = min(delay * self.factor, self.maximum)
            yield delay * (0.5 + 0.5 * random())


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed attempt to connect is worth another (see the module's docstring)."""
    if isinstance(exc, HandshakeRejected):
        return exc.status in RETRY_STATUSES
    if isinstance(exc, ProxyError):
        return isinstance(exc.__cause__, OSError)
    if isinstance(exc, InvalidResponse):
        return True
    if isinstance(exc, ssl.SSLError):
        # Before OSError, which it is: a failed verification is not transient,
        # a connection cut in the middle of the TLS handshake may be.
        return isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError))
    return isinstance(exc, (OSError, TimeoutError))


class Reconnecting(Generic[C]):
    """The async iterator behind ``async for conn in wskit.connect(uri)``.

    Args:
        open: opens one connection (one attempt, redirects included).
        backoff: the delays between attempts.
        uri: for the log.
    """

    def __init__(self, open: Callable[[], Awaitable[C]], backoff: Backoff, uri: str) -> None:
        self._open = open
        self.backoff = backoff
        self.uri = uri
        self._current: C | None = None

    def __aiter__(self) -> Reconnecting[C]:
        return self

    async def __anext__(self) -> C:
        """Close the previous connection, wait, and connect again until it works or cannot."""
        delays: Iterator[float] | None = None
        previous = self._current
        if previous is not None:
            self._current = None
            await previous.close()
            delays = self.backoff.delays()
            await self._wait(next(delays), None)
        while True:
            try:
                conn = await self._open()
            except Exception as exc:
                if not is_retryable(exc):
                    raise
                if delays is None:
                    delays = self.backoff.delays()
                await self._wait(next(delays), exc)
                continue
            self._current = conn
            return conn

    async def _wait(self, delay: float, error: Exception | None) -> None:
        if error is None:
            logger.info("reconnecting to %s in %.3f s", self.uri, delay)
        else:
            logger.info("connecting to %s failed (%s); retrying in %.3f s", self.uri, error, delay)
        await asyncio.sleep(delay)
