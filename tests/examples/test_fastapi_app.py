"""examples/fastapi_app.py under uvicorn: the HTTP route, the echo endpoint and the hub.

The application runs as users run it, in a subprocess: the ``uvicorn``
command, and ``python fastapi_app.py`` (uvicorn started from Python with
wskit's shutdown first); real clients go through it.
"""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

import wskit
from conftest import unused_port
from examples.example_support import Program
from wskit.hub import HubClient, RequestError

#: How each way of running it starts, and the close code its clients see on SIGTERM.
RUNS = {
    "uvicorn": (("-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port"), 1012),
    "python": (("fastapi_app.py", "--host", "127.0.0.1", "--port"), 1001),
}


@pytest.mark.parametrize("how", sorted(RUNS))
async def test_fastapi_app(how: str) -> None:
    command, close_code = RUNS[how]
    port = unused_port()
    async with await Program.start(*command, str(port)) as program:
        await program.wait_port(port)
        base = f"127.0.0.1:{port}"

        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://{base}/health", timeout=5)
            assert health.json() == {"status": "ok", "hub clients": 0}
            script = await http.get(f"http://{base}/hub/wskit.js", timeout=5)
            assert script.status_code == 200 and "WskitClient" in script.text

        async with wskit.connect(f"ws://{base}/echo") as echo:
            await echo.send("hello")
            assert await echo.recv() == "hello"
            await echo.send(b"\x00\x01")
            assert await echo.recv() == b"\x00\x01"

        url = f"ws://{base}/hub"
        async with HubClient(url) as alice, HubClient(url) as bob:
            assert await alice.request("add", 2, 3) == 5
            with pytest.raises(RequestError, match="argument 'b'"):
                await alice.request("add", 2, "three")
            heard: asyncio.Queue[str] = asyncio.Queue()
            bob.on("shouted", heard.put_nowait)
            await alice.join("lobby")
            await bob.join("lobby")
            await alice.emit("shout", "lobby", "hello")
            assert await asyncio.wait_for(heard.get(), 5) == "HELLO"
            async with httpx.AsyncClient() as http:
                health = await http.get(f"http://{base}/health", timeout=5)
                assert health.json()["hub clients"] == 2

        # On SIGTERM an open connection is closed with 1012 by the uvicorn
        # command, with 1001 by the program (install_uvicorn_shutdown).
        conn = await wskit.connect(f"ws://{base}/echo")
        program.process.terminate()
        await asyncio.wait_for(conn.wait_closed(), 10)
        assert conn.close_code == close_code
        # uvicorn raises the signal again once it has shut down, so that the
        # exit status says what stopped it.
        assert await program.stop(None) == -signal.SIGTERM
