"""What every Python bench server shares: arguments, event loop, readiness line.

Every server echoes each message, answers the text message ``count`` with its
number of open connections, and on ``bcast <count> <size>`` broadcasts
``count`` binary messages of ``size`` bytes to every other connection
(yielding to the event loop between two messages, as messages arriving from
elsewhere would), then answers ``ok <count>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

#: Largest message every server accepts (B2 sends 1 MiB).
MAX_SIZE = 4 * 2**20


@dataclass(frozen=True)
class Args:
    port: int
    compression: bool
    loop: str


def parse_args(description: str) -> Args:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--compression", action="store_true", help="accept permessage-deflate (B5 only)"
    )
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ns = parser.parse_args()
    return Args(port=ns.port, compression=ns.compression, loop=ns.loop)


def parse_bcast(text: str) -> tuple[int, int]:
    """``"bcast 100 64"`` → ``(100, 64)``."""
    _, count, size = text.split()
    return int(count), int(size)


def ready(port: int) -> None:
    """Tell the runner that the server listens."""
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()


async def serve_uvicorn(server: Any, port: int) -> None:
    """Run ``server`` (a ``uvicorn.Server``) until killed, saying :func:`ready` once it listens."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise SystemExit("uvicorn exited before starting")
        await asyncio.sleep(0.01)
    ready(port)
    await task


def run(main: Callable[[], Coroutine[Any, Any, None]], loop: str) -> None:
    """Run ``main()`` on the chosen event loop until the runner kills the process."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


Broadcast = Callable[[list[Any], bytes], Any]
Handler = Callable[[Any], Coroutine[Any, Any, None]]


async def broadcast_loop(broadcast: Broadcast, others: list[Any], command: str) -> None:
    """Carry out ``bcast COUNT SIZE``: COUNT broadcasts of SIZE bytes to ``others``.

    Yields to the event loop between two messages, as messages arriving from
    elsewhere would.
    """
    count, size = parse_bcast(command)
    payload = bytes(size)
    for _ in range(count):
        broadcast(others, payload)
        await asyncio.sleep(0)


def echo_handler(broadcast: Broadcast, closed: type[BaseException]) -> Handler:
    """The connection handler of the servers with a websockets-style API.

    Echoes every message; ``count`` answers the number of connections;
    ``bcast COUNT SIZE`` broadcasts COUNT messages of SIZE bytes to the other
    connections with the library's own ``broadcast`` and then acks ``ok COUNT``.
    """
    conns: set[Any] = set()

    async def handler(conn: Any) -> None:
        conns.add(conn)
        try:
            async for message in conn:
                if type(message) is str and len(message) < 32:
                    if message == "count":
                        await conn.send(str(len(conns)))
                        continue
                    if message.startswith("bcast "):
                        others = [c for c in conns if c is not conn]
                        await broadcast_loop(broadcast, others, message)
                        await conn.send(f"ok {parse_bcast(message)[0]}")
                        continue
                await conn.send(message)
        except closed:
            pass  # the loader drops connections abruptly at the end
        finally:
            conns.discard(conn)

    return handler


async def serve_websockets_style(serve: Callable[..., Any], handler: Handler, args: Args) -> None:
    """Serve ``handler`` with a websockets-compatible ``serve`` (wskit's too) until killed."""
    async with serve(
        handler,
        "127.0.0.1",
        args.port,
        compression="deflate" if args.compression else None,
        max_size=MAX_SIZE,
        backlog=4096,
    ) as server:
        ready(args.port)
        await server.serve_forever()
