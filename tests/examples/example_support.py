"""Run the programs of ``examples/`` as subprocesses, for the tests of ``tests/examples``.

Each example runs as a user would run it (``wskit serve``, ``python x.py``,
``uvicorn``), on a free loopback port, its output read line by line; every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"

#: Seconds any one wait (a port, a line, an exit) may take.
WAIT = 10.0


class Program:
    """A program of ``examples/`` in a subprocess, stdout and stderr read as one stream."""

    def __init__(self, process: asyncio.subprocess.Process, args: tuple[str, ...]) -> None:
        self.process = process
        self.args = args
        #: Every line read so far, for the failure messages.
        self.lines: list[str] = []

    @classmethod
    async def start(
        cls, *args: str, cwd: Path = EXAMPLES, env: dict[str, str] | None = None
    ) -> Program:
        """Start ``python -u <args>`` (``-m wskit ...``, a script...) in ``cwd``."""
        environment = dict(os.environ)
        environment.update(env or {})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            *args,
            cwd=cwd,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process, args)

    def _story(self) -> str:
        return f"{' '.join(self.args)} said:\n" + "\n".join(self.lines)

    async def line(self, timeout: float = WAIT) -> str:
        """The next line of output (an AssertionError at its end or after ``timeout``)."""
        assert self.process.stdout is not None
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise AssertionError(f"no output for {timeout} s; {self._story()}") from None
        if not raw:
            raise AssertionError(f"the output ended; {self._story()}")
        text = raw.decode(errors="replace").rstrip("\n")
        self.lines.append(text)
        return text

    async def expect(self, text: str, max_lines: int = 200) -> str:
        """Read lines until one contains ``text``; return it."""
        for _ in range(max_lines):
            line = await self.line()
            if text in line:
                return line
        raise AssertionError(f"{text!r} not in {max_lines} lines; {self._story()}")

    async def wait_port(self, port: int) -> None:
        """Wait until the program accepts connections on ``port`` (or say why it died)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            if self.process.returncode is not None:
                await self._drain()
                raise AssertionError(f"exited with {self.process.returncode}; {self._story()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if loop.time() > deadline:
                    raise AssertionError(f"nothing on port {port}; {self._story()}") from None
                await asyncio.sleep(0.05)
            else:
                writer.close()
                await writer.wait_closed()
                return

    async def _drain(self) -> None:
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), WAIT)
        self.lines.extend(rest.decode(errors="replace").splitlines())

    async def stop(self, signum: int | None = signal.SIGTERM) -> int:
        """Send ``signum`` (``None``: none), read the rest of the output, return the exit status."""
        if signum is not None and self.process.returncode is None:
            self.process.send_signal(signum)
        try:
            await self._drain()
            return await asyncio.wait_for(self.process.wait(), WAIT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"did not stop on signal {signum}; {self._story()}") from None

    async def kill(self) -> None:
        """Stop it at once (SIGKILL), as a crash would."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def __aenter__(self) -> Program:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # A test that failed half way must not leave its program running.
        await self.kill()
