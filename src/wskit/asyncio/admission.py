"""Server-wide limits: which new connections a server takes, and the 503 for the others.

Theory of operation
===================

A server asks :meth:`Admission.admit` once per new TCP connection, before it
has read a byte of the request, and calls :meth:`Admission.release` when that
connection is gone. A connection counts from its first byte to its last,
so one that never completes its handshake (a slowloris holding sockets)
counts like any other. Three limits apply, each optional:

* ``max_connections``: connections held at once. Its default is derived
  from the process's file descriptor limit (:func:`default_max_connections`),
  so that a full server answers 503 instead of failing ``accept()`` with
  ``EMFILE``;
* ``max_connections_per_ip``: connections held at once from one address;
* ``handshake_rate`` and ``handshake_burst``: new connections per second from
  one address, as a token bucket per address in a bounded table
  (:class:`~wskit.limits.KeyedBuckets`).

Each refusal is a prepared ``503 Service Unavailable`` with a readable body
naming the limit (and ``Retry-After`` for the rate), and a count in
:class:`ServerCounters`. The limits are those of one :class:`Admission`,
that is of one server in one process: under ``wskit serve --workers N``
each worker applies them on its own.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ..limits import KeyedBuckets, client_caused
from ..protocol.handshake import reject
from ..protocol.http11 import Response, serialize_response

__all__ = [
    "Admission",
    "Refusal",
    "ServerCounters",
    "default_max_connections",
    "DESCRIPTOR_HEADROOM",
]

DESCRIPTOR_HEADROOM = 64
"""File descriptors kept free for everything but connections (at least; see below)."""


def default_max_connections() -> int | None:
    """The default ``max_connections``: what the file descriptor limit leaves for sockets.

    The soft ``RLIMIT_NOFILE`` minus a tenth of it, and at least
    :data:`DESCRIPTOR_HEADROOM`, for the listening sockets, the event loop,
    log files, a Redis backplane, and the sockets accepted only to be
    refused. ``None`` (no limit) where the limit is unknown or unlimited.
    With the usual soft limit of 1024: 921 connections.
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    return max(1, soft - max(DESCRIPTOR_HEADROOM, soft // 10))


@dataclass
class ServerCounters:
    """What a server refused and what failed, since it started (for tests and metrics)."""

    #: Connections refused with 503 because the server held ``max_connections``.
    refused_max_connections: int = 0
    #: Connections refused with 503 because their address held ``max_connections_per_ip``.
    refused_max_connections_per_ip: int = 0
    #: Connections refused with 503 because their address was over ``handshake_rate``.
    refused_handshake_rate: int = 0
    #: Opening handshakes refused for the request itself (4xx) or by a hook.
    handshakes_refused: int = 0
    #: Connections dropped because their handshake took over ``handshake_timeout``.
    handshake_timeouts: int = 0
    #: Exceptions raised by the connection handler or a hook (answered 1011 or 500).
    handler_errors: int = 0


@dataclass(frozen=True)
class Refusal:
    """A refusal prepared once: the counter it raises, the response, its bytes."""

    #: The :class:`ServerCounters` field this refusal counts in.
    counter: str
    #: The limit, as the log names it (``"max_connections"``...).
    limit: str
    response: Response
    #: ``response`` serialized, ready to write.
    wire: bytes

    def log(self, logger: logging.Logger, what: str, address: str | None) -> None:
        """Log this refusal (``what``: "refused a connection"...) of ``address``, rate-limited.

        A WARNING when the server is at its own capacity, worth an operator's
        look; one client's excess is INFO. Through ``client_caused``, one kind
        per limit, since clients cause these.
        """
        level = logging.WARNING if self.limit == "max_connections" else logging.INFO
        client_caused.log(
            logger,
            level,
            ("refused", self.limit),
            "%s from %s with 503: over %s",
            what,
            address,
            self.limit,
        )


def _refusal(counter: str, limit: str, body: str, headers: list[tuple[str, str]]) -> Refusal:
    response = reject(503, body, headers)
    return Refusal(counter, limit, response, serialize_response(response))


class Admission:
    """The server-wide limits of one server: admit or refuse each new connection.

    Args:
        max_connections: connections held at most; ``None``: no limit.
        max_connections_per_ip: connections held at most from one address; ``None``: no limit.
        handshake_rate: new connections per second allowed from one address,
            on average; ``None``: no limit.
        handshake_burst: new connections allowed at once from one address
            before ``handshake_rate`` applies.
        max_addresses: addresses whose handshake rate is remembered at most.
    """

    def __init__(
        self,
        max_connections: int | None = None,
        max_connections_per_ip: int | None = None,
        handshake_rate: float | None = None,
        handshake_burst: int = 10,
        max_addresses: int = 4096,
    ) -> None:
        for name, value in (
            ("max_connections", max_connections),
            ("max_connections_per_ip", max_connections_per_ip),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, or None for no limit")
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.buckets = (
            KeyedBuckets(handshake_rate, handshake_burst, max_addresses)
            if handshake_rate is not None
            else None
        )
        #: Connections admitted and not yet released.
        self.open = 0
        # Connections held per address; an address leaves when its count is 0,
        # so the table is never larger than the number of open connections.
        self._per_address: dict[str, int] = {}
        self.counters = ServerCounters()
        self.full = _refusal(
            "refused_max_connections",
            "max_connections",
            "Too many connections: the server is at its limit. Try again later.\n",
            [],
        )
        self.full_for_address = _refusal(
            "refused_max_connections_per_ip",
            "max_connections_per_ip",
            "Too many connections from your address: close one and try again.\n",
            [],
        )
        wait = math.ceil(1 / handshake_rate) if handshake_rate else 1
        self.too_fast = _refusal(
            "refused_handshake_rate",
            "handshake_rate",
            f"Too many new connections from your address. Retry after {wait} s.\n",
            [("Retry-After", str(wait))],
        )

    def admit(self, address: str | None) -> Refusal | None:
        """Take a new connection from ``address`` (``None``: unknown), or say why not.

        An admitted connection must be :meth:`release`-d exactly once, with
        the same address; a refused one is counted and not held.
        """
        refusal: Refusal | None = None
        if address is not None and self.buckets is not None and not self.buckets.take(address):
            # Every attempt spends a token, so a flood stays limited while the server is full.
            refusal = self.too_fast
        elif self.max_connections is not None and self.open >= self.max_connections:
            refusal = self.full
        elif address is not None and self.max_connections_per_ip is not None:
            held = self._per_address.get(address, 0)
            if held >= self.max_connections_per_ip:
                refusal = self.full_for_address
            else:
                self._per_address[address] = held + 1
        if refusal is not None:
            counters = self.counters
            setattr(counters, refusal.counter, getattr(counters, refusal.counter) + 1)
            return refusal
        self.open += 1
        return None

    def release(self, address: str | None) -> None:
        """A connection admitted from ``address`` is gone."""
        self.open -= 1
        if address is not None and self.max_connections_per_ip is not None:
            held = self._per_address.pop(address, 0) - 1
            if held > 0:
                self._per_address[address] = held

    def held_by(self, address: str) -> int:
        """How many admitted connections ``address`` holds (counted with a per-IP limit only)."""
        return self._per_address.get(address, 0)
