"""aiohttp's WebSocketResponse; aiohttp has no broadcast helper, so a loop of sends."""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from ._common import MAX_SIZE, parse_args, parse_bcast, ready, run

args = parse_args(__doc__ or "")
conns: set[web.WebSocketResponse] = set()


async def handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=args.compression, max_msg_size=MAX_SIZE)
    await ws.prepare(request)
    conns.add(ws)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                text: str = msg.data
                if len(text) < 32:
                    if text == "count":
                        await ws.send_str(str(len(conns)))
                        continue
                    if text.startswith("bcast "):
                        count, size = parse_bcast(text)
                        payload = bytes(size)
                        others = [c for c in conns if c is not ws]
                        for _ in range(count):
                            # The documented aiohttp way: await each send. A peer
                            # that stops reading can hold this loop up.
                            for other in others:
                                if not other.closed:
                                    await other.send_bytes(payload)
                            await asyncio.sleep(0)
                        await ws.send_str(f"ok {count}")
                        continue
                await ws.send_str(text)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
    finally:
        conns.discard(ws)
    return ws


async def main() -> None:
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    ready(args.port)
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()


run(main, args.loop)
