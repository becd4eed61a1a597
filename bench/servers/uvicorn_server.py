"""B8: a FastAPI echo app under uvicorn, with the WebSocket layer given by ``--ws``.

``--ws`` is what ``uvicorn --ws`` takes: ``wskit.uvicorn:WebSocketProtocol``,
``websockets``, ``websockets-sansio`` or ``wsproto``. Everything else is the
same for all four: FastAPI's ``WebSocket`` with the idiomatic echo loop
(``receive()``, then ``send_text`` or ``send_bytes``), uvicorn's default
HTTP layer (httptools when installed; it only reads the upgrade request),
no access log, uvicorn's defaults for pings, and messages of up to 4 MiB.
It echoes every message and answers the text message ``count`` with its
number of open connections; there is no ``bcast`` (B8 is an echo).
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from ._common import MAX_SIZE, run, serve_uvicorn

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--compression", action="store_true", help="ws_per_message_deflate on")
parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
parser.add_argument("--ws", required=True, help="uvicorn's --ws: a name or an import string")
args = parser.parse_args()

app = FastAPI()
connections: set[WebSocket] = set()


@app.websocket("/")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    connections.add(websocket)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await websocket.send_bytes(message["bytes"])
            elif text == "count":
                await websocket.send_text(str(len(connections)))
            else:
                await websocket.send_text(text)
    except WebSocketDisconnect:
        pass  # the loader drops connections abruptly at the end
    finally:
        connections.discard(websocket)


async def main() -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=args.port,
            ws=args.ws,
            lifespan="off",
            access_log=False,
            log_level="warning",
            ws_max_size=MAX_SIZE,
            ws_per_message_deflate=args.compression,
            backlog=4096,
        )
    )
    await serve_uvicorn(server, args.port)


run(main, args.loop)
