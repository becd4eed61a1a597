"""wskit through its Conn API: ``async for msg in conn: await conn.send(msg)``."""

from __future__ import annotations

import wskit

from ._common import MAX_SIZE, echo_handler, parse_args, ready, run

args = parse_args(__doc__ or "")
handler = echo_handler(wskit.broadcast, wskit.ConnectionClosed)


async def main() -> None:
    server = await wskit.serve(
        handler,
        "127.0.0.1",
        args.port,
        compression="deflate" if args.compression else None,
        max_size=MAX_SIZE,
        backlog=4096,
    )
    ready(server.port)
    await server.serve_forever()


run(main, args.loop)
