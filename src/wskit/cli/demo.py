"""``wskit demo``: the chat of :mod:`wskit.demo`."""

from __future__ import annotations

from ..demo import serve_demo
from .common import serve_until_signal

__all__ = ["run_demo"]


async def run_demo(host: str, port: int) -> None:
    """Run the chat demo (page, JavaScript client and hub on one port)."""
    server = await serve_demo(host, port)
    print(f"wskit demo: a chat on http://{host}:{server.port}/", flush=True)
    await serve_until_signal(server)
