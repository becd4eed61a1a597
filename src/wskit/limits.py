"""Rate limits that no client can push past, and logging that no client can flood.

Every layer of wskit needs the same two things when a peer misbehaves:

* a **token bucket**, to cap how often something may happen (events from a
  client, handshakes from an IP address, log records of one kind), with a
  bounded table when the buckets are kept per key, so that the table itself
  cannot grow without bound under a flood of new keys;
* **limited logging**: a record a client can cause (a bad argument, a
  timed-out ping, a handler's failure) goes through :class:`LogLimiter`, which
  lets a burst through and then a steady trickle, and says how many records
  it held back when the next one passes. Whatever a client does, the log
  grows at a bounded rate.

:func:`report_failure` is the one rule for an exception that a client caused
to be raised but must not see: the traceback is logged with a short error id
(rate-limited per kind of failure) and the client is told only the id.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = [
    "TokenBucket",
    "KeyedBuckets",
    "LogLimiter",
    "client_caused",
    "new_error_id",
    "report_failure",
    "public_error_message",
]


class TokenBucket:
    """Allow ``burst`` actions at once, then ``rate`` per second on average.

    Args:
        rate: tokens added per second.
        burst: the most tokens the bucket holds (and starts with).
        clock: the time source, in seconds (:func:`time.monotonic`; tests pass their own).
    """

    __slots__ = ("rate", "burst", "_tokens", "_stamp", "_clock")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` and return ``True``, or return ``False`` if there are not enough."""
        now = self._clock()
        level = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if level < tokens:
            self._tokens = level
            return False
        self._tokens = level - tokens
        return True

    def full(self) -> bool:
        """Tell whether the bucket has refilled completely (nothing to remember)."""
        now = self._clock()
        return self._tokens + (now - self._stamp) * self.rate >= self.burst


class KeyedBuckets:
    """One :class:`TokenBucket` per key (a client IP, a kind of log record), in a bounded table.

    When the table holds ``max_keys`` keys, the least recently used one is
    forgotten: a flood of new keys costs a bounded amount of memory, and a
    forgotten key starts again with a full bucket, which errs on the side of
    letting a rare, well-behaved key through.

    Args:
        rate: tokens per second, for each key.
        burst: the size of each key's bucket.
        max_keys: how many keys to remember at most.
        clock: the time source.
    """

    __slots__ = ("rate", "burst", "max_keys", "_buckets", "_clock")

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        TokenBucket(rate, burst, clock)  # validates the arguments once
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable, tokens: float = 1.0) -> bool:
        """Spend ``tokens`` from ``key``'s bucket; ``False`` when it has not enough."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
            bucket = buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
        else:
            buckets.move_to_end(key)
        return bucket.take(tokens)

    def __len__(self) -> int:
        """How many keys are remembered now."""
        return len(self._buckets)


class LogLimiter:
    """Let log records of each kind through at a bounded rate, counting those held back.

    A *kind* is any hashable key naming where a record comes from (for
    example ``("bad-arguments", event_name)``); each kind has its own bucket
    of ``burst`` records refilled at ``rate`` per second, and at most
    ``max_kinds`` kinds are remembered. The next record that passes after some
    were held back says how many.

    Args:
        rate: records per second per kind, once the burst is spent.
        burst: records of one kind let through at once.
        max_kinds: kinds remembered at most (the least recently seen go first).
        clock: the time source.
    """

    def __init__(
        self,
        rate: float = 0.2,
        burst: int = 5,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = KeyedBuckets(rate, burst, max_kinds, clock)
        self._held: dict[Hashable, int] = {}
        self.max_kinds = max_kinds
        #: Records held back since this limiter was made, all kinds together.
        self.suppressed = 0

    def allow(self, kind: Hashable) -> int | None:
        """Ask to log a record of ``kind``.

        Returns ``None`` when the record must be dropped, or else the number of
        records of that kind dropped since the last one that passed.
        """
        if self._buckets.take(kind):
            return self._held.pop(kind, 0)
        self.suppressed += 1
        held = self._held
        if kind in held:
            held[kind] += 1
        elif len(held) < self.max_kinds:
            held[kind] = 1
        return None

    def log(
        self,
        logger: logging.Logger,
        level: int,
        kind: Hashable,
        msg: str,
        *args: object,
        exc_info: BaseException | bool | None = None,
    ) -> bool:
        """Log ``msg % args`` at ``level`` unless ``kind`` is over its rate; tell whether it was.

        The level is checked first, so a record nobody would see costs no token.
        """
        if not logger.isEnabledFor(level):
            return False
        dropped = self.allow(kind)
        if dropped is None:
            return False
        if dropped:
            msg = f"{msg} (and {dropped} more like this, not logged)"
        logger.log(level, msg, *args, exc_info=exc_info)
        return True


#: The limiter for records that peers can cause, shared by every layer of wskit.
client_caused = LogLimiter()


def new_error_id() -> str:
    """A short random id that ties what a client is told to the server's log record."""
    return secrets.token_hex(4)


def report_failure(
    logger: logging.Logger,
    exc: BaseException,
    where: str,
    limiter: LogLimiter | None = None,
) -> str:
    """Log an unexpected exception with its traceback and a new error id; return the id.

    Repeats of one failure (same exception type raised from the same line) are
    rate-limited by ``limiter`` (the shared :data:`client_caused` by default),
    so a client that triggers a bug over and over cannot flood the log.

    Args:
        logger: where to log.
        exc: the exception.
        where: what was running, for the record ("the handler of 'join'").
        limiter: the rate limit for repeats.
    """
    error_id = new_error_id()
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    origin = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else None
    kind = ("failure", type(exc), origin)
    (limiter or client_caused).log(
        logger, logging.ERROR, kind, "error %s in %s", error_id, where, exc_info=exc
    )
    return error_id


def public_error_message(exc: BaseException, error_id: str, debug: bool) -> str:
    """What a client is told about an unexpected exception: its text only with ``debug``."""
    if debug:
        text = str(exc)
        name = type(exc).__name__
        return f"{name}: {text} (error {error_id})" if text else f"{name} (error {error_id})"
    return f"Internal server error (error {error_id})"
