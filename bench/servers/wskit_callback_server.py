"""wskit through its callback path: ``conn.on_message`` answers with ``send_nowait``.

No task wakes up per message: the callback runs in the event loop's own call
(``Conn.on_message``), the way picows' listener does. ``bcast`` starts a task
that broadcasts with ``wskit.broadcast``, as the Conn API server does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import wskit

from ._common import broadcast_loop, parse_args, run, serve_websockets_style

args = parse_args(__doc__ or "")
conns: set[wskit.Conn] = set()
tasks: set[asyncio.Task[None]] = set()


async def bcast(conn: wskit.Conn, command: str) -> None:
    await broadcast_loop(wskit.broadcast, [c for c in conns if c is not conn], command)
    conn.send_nowait(f"ok {command.split()[1]}")


async def handler(conn: wskit.Conn) -> None:
    def on_message(message: Any) -> None:
        try:
            if type(message) is str and len(message) < 32:
                if message == "count":
                    conn.send_nowait(str(len(conns)))
                    return
                if message.startswith("bcast "):
                    task = asyncio.get_running_loop().create_task(bcast(conn, message))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    return
            conn.send_nowait(message)
        except wskit.ConnectionClosed:
            pass  # the loader drops connections abruptly at the end

    conns.add(conn)
    try:
        conn.on_message = on_message
        await conn.wait_closed()
    finally:
        conns.discard(conn)


async def main() -> None:
    await serve_websockets_style(wskit.serve, handler, args)


run(main, args.loop)
