"""A client that stays connected: it reconnects with backoff and jitter and goes on.

Run it against any echo server, for instance wskit's own::

    wskit echo --port 9001 &
    python reconnecting_client.py ws://127.0.0.1:9001/ --interval 0.5

It sends ``tick 1``, ``tick 2``... every ``--interval`` seconds and prints
each echo (``echo: tick 1``). Stop the echo server and start it again: the
client says it lost the connection, retries after a growing, randomized
delay, reconnects, sends again the ticks whose echo never came, and counts
on from there. Ctrl-C or SIGTERM closes the connection (1000) and exits
with status 0, also while it waits to retry; after ``--max-attempts``
failed attempts in a row it gives up with status 1.

The delay before attempt ``n`` is ``min(max, initial * 2 ** (n - 1))``,
multiplied by a random factor between 0.5 and 1, so that clients cut off
together do not all come back at the same moment. (The hub's clients,
``wskit.hub.HubClient`` and ``wskit.js``, do this by themselves.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
from collections import deque
from dataclasses import dataclass, field

import wskit

#: Ticks sent and not yet echoed, at most: past it, sending waits for echoes.
MAX_UNANSWERED = 32


@dataclass
class Backoff:
    """Exponential backoff with jitter, bounded by ``maximum`` seconds."""

    initial: float = 0.1
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1, 2, ...)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass
class Ticker:
    """What the client is doing, kept across connections: the ticks and their echoes."""

    next_tick: int = 1
    #: Ticks sent whose echo has not come yet, oldest first.
    unanswered: deque[int] = field(default_factory=deque)

    async def send(self, conn: wskit.ClientConn, interval: float) -> None:
        # First what the last connection lost, then new ticks.
        for tick in list(self.unanswered):
            await conn.send(f"tick {tick}")
        while True:
            if len(self.unanswered) < MAX_UNANSWERED:
                self.unanswered.append(self.next_tick)
                await conn.send(f"tick {self.next_tick}")
                self.next_tick += 1
            await asyncio.sleep(interval)

    async def receive(self, conn: wskit.ClientConn) -> None:
        async for message in conn:  # ends when the connection closes
            if self.unanswered and message == f"tick {self.unanswered[0]}":
                self.unanswered.popleft()
            print(f"echo: {message!s}", flush=True)


async def talk(
    conn: wskit.ClientConn, ticker: Ticker, interval: float, stop: asyncio.Event
) -> None:
    """Run the ticker on ``conn`` until the connection ends or ``stop`` is set."""
    tasks = [
        asyncio.create_task(ticker.send(conn, interval)),
        asyncio.create_task(ticker.receive(conn)),
        asyncio.create_task(stop.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # A send on a connection that just closed raises: that is the loss we handle.
        await asyncio.gather(*tasks, return_exceptions=True)


def permanent(exc: Exception) -> bool:
    """Whether retrying cannot help: a bad URI, or a refusal that is not about load."""
    if isinstance(exc, wskit.InvalidURI):
        return True
    if isinstance(exc, wskit.HandshakeRejected):
        return 400 <= exc.status < 500 and exc.status not in (408, 429)
    return False


async def run(
    url: str, interval: float, backoff: Backoff, max_attempts: int, stop: asyncio.Event
) -> int:
    """Stay connected to ``url`` until ``stop`` is set (0) or it cannot be done (1)."""
    ticker = Ticker()
    attempt = 0
    while not stop.is_set():
        try:
            conn = await wskit.connect(url, open_timeout=5)
        except (OSError, TimeoutError, wskit.WebSocketError) as exc:
            if permanent(exc):
                print(f"cannot connect: {exc}; giving up", flush=True)
                return 1
            reason = f"cannot connect ({str(exc) or type(exc).__name__})"
        else:
            attempt = 0
            print(f"connected to {url}", flush=True)
            await talk(conn, ticker, interval, stop)
            if stop.is_set():
                with contextlib.suppress(wskit.WebSocketError, OSError):
                    await conn.close(1000, "bye")
                break
            reason = f"lost the connection ({conn.close_code})"
        attempt += 1
        if attempt > max_attempts:
            print(f"{reason}; giving up after {max_attempts} attempts", flush=True)
            return 1
        delay = backoff.delay(attempt)
        print(f"{reason}; retry {attempt} in {delay:.2f} s", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)  # returns early on Ctrl-C
    print("stopped", flush=True)
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description="Send ticks to an echo server, reconnecting.")
    parser.add_argument("url", help="ws:// or wss:// URL of an echo server")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    parser.add_argument("--initial-delay", type=float, default=0.1, help="first retry delay (s)")
    parser.add_argument("--max-delay", type=float, default=10.0, help="longest retry delay (s)")
    parser.add_argument("--max-attempts", type=int, default=100, help="failed attempts in a row")
    args = parser.parse_args()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    backoff = Backoff(args.initial_delay, args.max_delay)
    return await run(args.url, args.interval, backoff, args.max_attempts, stop)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
