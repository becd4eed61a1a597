"""picows through its websockets-compatible API (``picows.websockets``)."""

from __future__ import annotations

from picows.websockets import broadcast, serve
from picows.websockets.exceptions import ConnectionClosed

from ._common import echo_handler, parse_args, run, serve_websockets_style

args = parse_args(__doc__ or "")
handler = echo_handler(broadcast, ConnectionClosed)


async def main() -> None:
    await serve_websockets_style(serve, handler, args)


run(main, args.loop)
