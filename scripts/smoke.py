"""Smoke test of an INSTALLED wskit (a wheel in a fresh environment).

    python -I scripts/smoke.py     # from a directory outside the source tree

``make test`` (its ``wheel`` stage) and cibuildwheel run it. It needs nothing
but the standard library and wskit, and fails loudly (a traceback, exit
status 1) unless all of these hold:

1. wskit is imported from the environment's site-packages, not a source
   tree, with its compiled kernels loaded (``wskit.speedups.ENABLED``, and
   on Linux the ``write`` kernel too: setup.py builds it there only);
2. an echo round trip, text and binary, through ``wskit.serve`` and
   ``wskit.connect``;
3. a ``Hub`` served by ``Hub.serve`` answers ``GET /wskit.js`` with the
   JavaScript client the package holds;
4. the ``wskit`` command prints ``wskit <version>`` for ``--version``.

``WSKIT_SMOKE_PURE=1`` expects the pure-Python package instead (the
``py3-none-any`` wheel): no kernels at all.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import wskit
from wskit import speedups
from wskit.hub import Hub
from wskit.hub.jsclient import classic_source

PURE = bool(os.environ.get("WSKIT_SMOKE_PURE"))


def check(condition: object, what: str) -> None:
    if not condition:
        raise SystemExit(f"smoke: FAILED: {what}")
    print(f"smoke: ok: {what}")


def check_installed() -> None:
    location = Path(wskit.__file__).resolve()
    site = {Path(sysconfig.get_path(name)).resolve() for name in ("purelib", "platlib")}
    check(
        any(location.is_relative_to(path) for path in site),
        f"wskit is imported from site-packages ({location})",
    )
    if PURE:
        check(not speedups.ENABLED and speedups.write_kernel is None, "no compiled kernels")
        return
    check(speedups.ENABLED, "the compiled frames kernels are loaded")
    if sys.platform.startswith("linux"):
        check(speedups.write_kernel is not None, "the compiled write kernel is loaded")


async def echo(conn: wskit.Conn) -> None:
    async for message in conn:
        await conn.send(message)


async def check_echo() -> None:
    async with (
        wskit.serve(echo, "127.0.0.1", 0) as server,
        wskit.connect(f"ws://127.0.0.1:{server.port}/") as conn,
    ):
        await conn.send("héllo")
        text = await conn.recv()
        await conn.send(bytes(range(256)) * 4)
        data = await conn.recv()
    check(text == "héllo" and data == bytes(range(256)) * 4, "an echo round trip")
    check(conn.close_code == 1000, "a normal close")


async def check_hub_script() -> None:
    server = await Hub().serve("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /wskit.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200 "), "GET /wskit.js answers 200")
    check(body == classic_source() and b"WskitClient" in body, "/wskit.js is the client")


def check_command() -> None:
    command = shutil.which("wskit", path=sysconfig.get_path("scripts"))
    check(command is not None, "the wskit command is installed")
    assert command is not None
    result = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=30)
    version = importlib.metadata.version("wskit")
    check(
        result.returncode == 0 and result.stdout.strip() == f"wskit {version}",
        f"wskit --version prints wskit {version} ({result.stdout.strip()!r})",
    )


async def main() -> None:
    check_installed()
    await asyncio.wait_for(check_echo(), 30)
    await asyncio.wait_for(check_hub_script(), 30)
    check_command()
    print("smoke: all passed")


if __name__ == "__main__":
    asyncio.run(main())
