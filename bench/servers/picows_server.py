"""picows through its callback API (WSListener): frames in, frames out.

picows hands the application frames, not messages; the echo answers each
frame with a frame of the same type and FIN bit, which is a correct echo of
fragmented messages too. picows has no permessage-deflate, so it sits out B5.
"""

from __future__ import annotations

import asyncio

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from ._common import MAX_SIZE, parse_args, parse_bcast, ready, run

args = parse_args(__doc__ or "")
listeners: set[Echo] = set()


class Echo(WSListener):
    transport: WSTransport

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        listeners.add(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        listeners.discard(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if msg_type is WSMsgType.TEXT and frame.fin and frame.payload_size < 32:
            text = frame.get_payload_as_ascii_text()
            if text == "count":
                transport.send(WSMsgType.TEXT, str(len(listeners)).encode())
                return
            if text.startswith("bcast "):
                count, size = parse_bcast(text)
                asyncio.get_running_loop().create_task(self.bcast(count, size))
                return
        transport.send(msg_type, frame.get_payload_as_memoryview(), frame.fin)

    async def bcast(self, count: int, size: int) -> None:
        payload = bytes(size)
        others = [lst.transport for lst in listeners if lst is not self]
        for _ in range(count):
            for transport in others:
                if not transport.is_disconnected:
                    transport.send(WSMsgType.BINARY, payload)
            await asyncio.sleep(0)
        self.transport.send(WSMsgType.TEXT, f"ok {count}".encode())


async def main() -> None:
    server = await ws_create_server(
        lambda _request: Echo(),
        "127.0.0.1",
        args.port,
        max_frame_size=MAX_SIZE,
        backlog=4096,
    )
    ready(args.port)
    async with server:
        await server.serve_forever()


run(main, args.loop)
