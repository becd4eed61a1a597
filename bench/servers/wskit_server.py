"""wskit through its Conn API: ``async for msg in conn: await conn.send(msg)``."""

from __future__ import annotations

import wskit

from ._common import echo_handler, parse_args, run, serve_websockets_style

args = parse_args(__doc__ or "")
handler = echo_handler(wskit.broadcast, wskit.ConnectionClosed)


async def main() -> None:
    await serve_websockets_style(wskit.serve, handler, args)


run(main, args.loop)
