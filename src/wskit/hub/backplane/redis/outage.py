"""How the Redis backplane tells of an outage: one record when it begins, one when it ends.

Theory of operation
===================

The backplane is *live* while both its connections to Redis work (the
outbox's and the subscriber's). When it stops being live an outage begins,
and :meth:`Outage.begin` logs one WARNING that names Redis (its URL, the
password masked: :func:`masked_url`) and the last error. Meanwhile every
failed attempt to reach Redis is a DEBUG record (:meth:`~.link.Link.failed`),
so a long outage does not fill the log. When the backplane is live again,
:meth:`Outage.end` logs one INFO: how long it lasted, how many messages the
outbox buffered for Redis (those waiting when it began and those emitted
during it) and how many of them it dropped (past ``buffer``, the oldest).

A degraded start (Redis out of reach when the hub starts, and the backplane
asked to start anyway) begins an outage too, with a WARNING that says so;
closing the backplane during an outage says what was not published.
"""

from __future__ import annotations

import time

from .connect import masked_url
from .link import Link, logger
from .outbox import Outbox

__all__ = ["Outage", "masked_url"]


class Outage:
    """The outage under way, if any: when it began, and the counters it began with.

    Args:
        link: what the parts of the backplane share (its counters, its last error).
        outbox: the messages waiting for Redis.
        url: where Redis is, as the records say it (password masked).
    """

    def __init__(self, link: Link, outbox: Outbox, url: str) -> None:
        self._link = link
        self._outbox = outbox
        self.url = url
        #: When the outage began (``time.monotonic()``), ``None`` when there is none.
        self.since: float | None = None
        # Messages waiting when it began, minus those added to the outbox before it.
        self._base = 0
        self._dropped = 0

    @property
    def ongoing(self) -> bool:
        """Whether an outage is under way."""
        return self.since is not None

    def buffered(self) -> int:
        """Messages buffered for Redis since the outage began (some perhaps dropped since)."""
        return self._base + self._outbox.messages_added

    def dropped(self) -> int:
        """Messages dropped since the outage began."""
        return self._link.stats.dropped - self._dropped

    def begin(self, degraded_start: bool = False) -> None:
        """Redis went out of reach (or was at start): one WARNING, and start counting."""
        if self.since is not None:
            return
        link, outbox = self._link, self._outbox
        self.since = time.monotonic()
        self._base = outbox.messages_waiting() - outbox.messages_added
        self._dropped = link.stats.dropped
        options = link.options
        reason = link.last_error or "no answer"
        if degraded_start:
            logger.warning(
                "redis backplane %s: redis at %s unreachable at start (%s); degraded start: "
                "serving local clients only until it comes, buffering up to %d messages",
                options.node_id,
                self.url,
                reason,
                options.buffer,
            )
        else:
            logger.warning(
                "redis backplane %s: redis at %s unreachable (%s); serving local clients only "
                "until it comes back, buffering up to %d messages",
                options.node_id,
                self.url,
                reason,
                options.buffer,
            )

    def end(self) -> None:
        """Redis is back: one INFO with the outage's length and counts."""
        if self.since is None:
            return
        logger.info(
            "redis backplane %s: redis at %s reachable again after %.1f s; "
            "%d message(s) buffered during the outage, %d of them dropped (buffer %d)",
            self._link.options.node_id,
            self.url,
            time.monotonic() - self.since,
            self.buffered(),
            self.dropped(),
            self._link.options.buffer,
        )
        self.since = None

    def closed(self) -> None:
        """The backplane closes during the outage: one WARNING says what was not published."""
        if self.since is None:
            return
        logger.warning(
            "redis backplane %s: closed while redis at %s was unreachable (for %.1f s); "
            "%d message(s) not published, %d more dropped during the outage",
            self._link.options.node_id,
            self.url,
            time.monotonic() - self.since,
            self._outbox.messages_waiting(),
            self.dropped(),
        )
        self.since = None
