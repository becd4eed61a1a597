"""picows through its websockets-compatible API (``picows.websockets``)."""

from __future__ import annotations

from picows.websockets import broadcast, serve
from picows.websockets.exceptions import ConnectionClosed

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
