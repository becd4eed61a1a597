"""websockets (asyncio API); broadcast with ``websockets.asyncio.server.broadcast``."""

from __future__ import annotations

from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

from ._common import echo_handler, parse_args, run, serve_websockets_style

args = parse_args(__doc__ or "")
handler = echo_handler(broadcast, ConnectionClosed)


async def main() -> None:
    await serve_websockets_style(serve, handler, args)


run(main, args.loop)
