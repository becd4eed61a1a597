"""websockets (asyncio API); broadcast with ``websockets.asyncio.server.broadcast``."""

from __future__ import annotations

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

from ._common import MAX_SIZE, echo_handler, parse_args, ready, run

args = parse_args(__doc__ or "")
handler = echo_handler(broadcast, ConnectionClosed)


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
