"""websockets (asyncio API); broadcast with ``websockets.asyncio.server.broadcast``."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from ._common import MAX_SIZE, parse_args, parse_bcast, ready, run

args = parse_args(__doc__ or "")
conns: set[ServerConnection] = set()


async def handler(conn: ServerConnection) -> None:
    conns.add(conn)
    try:
        async for message in conn:
            if type(message) is str and len(message) < 32:
                if message == "count":
                    await conn.send(str(len(conns)))
                    continue
                if message.startswith("bcast "):
                    count, size = parse_bcast(message)
                    payload = bytes(size)
                    others = [c for c in conns if c is not conn]
                    for _ in range(count):
                        broadcast(others, payload)
                        await asyncio.sleep(0)
                    await conn.send(f"ok {count}")
                    continue
            await conn.send(message)
    except ConnectionClosed:
        pass  # the loader drops connections abruptly at the end
    finally:
        conns.discard(conn)


async def main() -> None:
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


run(main, args.loop)
