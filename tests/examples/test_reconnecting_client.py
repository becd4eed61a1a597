"""examples/reconnecting_client.py against ``wskit echo``, killed and started again.

The client must notice the loss, retry with growing delays, reconnect to the
server started again on the same port, send again what was never echoed,
count on, and exit 0 on SIGTERM, connected or waiting to retry.
"""

from __future__ import annotations

import re
import signal

from conftest import unused_port
from examples.example_support import Program

CLIENT_OPTIONS = ("--interval", "0.05", "--initial-delay", "0.05", "--max-delay", "0.4")


async def echo_server(port: int) -> Program:
    server = await Program.start("-m", "wskit", "echo", "--host", "127.0.0.1", "--port", str(port))
    await server.wait_port(port)
    return server


async def read_echoes(client: Program, until: int) -> list[int]:
    """The ticks echoed until ``until`` (other lines are skipped, at most 200)."""
    ticks: list[int] = []
    for _ in range(200):
        line = await client.line()
        if line.startswith("echo: tick "):
            ticks.append(int(line.removeprefix("echo: tick ")))
            if ticks[-1] >= until:
                return ticks
    raise AssertionError(f"no echo of tick {until}: {client.lines}")


async def test_reconnects_and_goes_on() -> None:
    port = unused_port()
    url = f"ws://127.0.0.1:{port}/"
    server = await echo_server(port)
    async with (
        server,
        await Program.start("reconnecting_client.py", url, *CLIENT_OPTIONS) as client,
    ):
        assert await client.line() == f"connected to {url}"
        before = await read_echoes(client, until=3)

        # The server dies: the connection is lost (no close frame), and the
        # attempts that follow fail, each after a delay.
        await server.kill()
        lost = await client.expect("lost the connection")
        assert re.fullmatch(r"lost the connection \(1006\); retry 1 in 0\.\d\d s", lost), lost
        refused = await client.expect("cannot connect")
        assert re.fullmatch(r"cannot connect \(.*\); retry 2 in 0\.\d\d s", refused), refused

        # Started again on the same port: the client is back and counts on.
        async with await echo_server(port) as server:
            assert (await client.expect("connected to")) == f"connected to {url}"
            after = await read_echoes(client, until=before[-1] + 5)
            # Every tick echoed once, in order: those the dead server never
            # echoed were sent again on the new connection.
            ticks = before + [tick for tick in after if tick > before[-1]]
            assert ticks == list(range(1, len(ticks) + 1))
            retries = [line for line in client.lines if "; retry " in line]
            delays = [float(line.split(" in ")[1].removesuffix(" s")) for line in retries]
            # Attempt n waits between half and all of min(0.4, 0.05 * 2 ** (n - 1)).
            for attempt, delay in enumerate(delays, 1):
                ceiling = min(0.4, 0.05 * 2 ** (attempt - 1))
                assert ceiling / 2 - 0.005 <= delay <= ceiling + 0.005, (attempt, delays)

            assert await client.stop(signal.SIGTERM) == 0
            assert client.lines[-1] == "stopped"
            assert await server.stop() == 0


async def test_stops_while_waiting_to_retry() -> None:
    port = unused_port()
    url = f"ws://127.0.0.1:{port}/"
    options = ("--initial-delay", "30", "--max-delay", "30")  # a long wait, cut short
    async with await Program.start("reconnecting_client.py", url, *options) as client:
        assert "; retry 1 in " in await client.expect("cannot connect")
        assert await client.stop(signal.SIGINT) == 0
        assert client.lines[-1] == "stopped"


async def test_gives_up() -> None:
    port = unused_port()
    url = f"ws://127.0.0.1:{port}/"
    options = ("--initial-delay", "0.01", "--max-attempts", "3")
    async with await Program.start("reconnecting_client.py", url, *options) as client:
        assert await client.stop(None) == 1
        assert client.lines[-1].endswith("; giving up after 3 attempts")
        assert sum("; retry " in line for line in client.lines) == 3
