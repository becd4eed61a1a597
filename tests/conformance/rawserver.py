"""A raw WebSocket test server for checking ``wskit.connect`` clients.

:class:`RawServer` listens on a free port, reads each upgrade request,
answers it exactly as told (a proper 101, a wrong accept key, an extension
or subprotocol nobody offered, a 403 with a body...) and then hands the
connection, as a :class:`~rawclient.RawPeer` that does not mask, to a
*scenario* coroutine that sends whatever frames the test wants and checks
what the client answers. Nothing here uses wskit.

::

    async def scenario(peer: RawPeer) -> None:
        await peer.send_frame(OP_TEXT, b"hi", mask=True)  # servers must not mask
        await peer.expect_close_code(1002)

    async with RawServer(scenario) as server:
        async with wskit.connect(server.uri) as conn:
            ...

Leaving the ``async with`` block waits for the scenarios to finish and
re-raises the first assertion that failed in one of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from conformance.rawclient import (
    DEFAULT_TIMEOUT,
    RawPeer,
    accept_for,
    parse_deflate_response,
    read_http_head,
    stream_protocol_factory,
)

__all__ = ["RawServer", "Request", "Scenario"]

Scenario = Callable[[RawPeer], Awaitable[None]]


@dataclass
class Request:
    """An upgrade request as the raw server read it."""

    start_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


class RawServer:
    """Answers upgrade requests as configured, then runs ``scenario`` per connection.

    Args:
        scenario: what to do after the handshake; ``None`` for handshake tests.
        extensions: the ``Sec-WebSocket-Extensions`` value to answer with
            (the server decides; it is not checked against the offer, so a
            test can answer with something the client did not offer). The
            same agreement sets up the peer's deflater and inflater.
        subprotocol: the ``Sec-WebSocket-Protocol`` value to answer with.
        accept: a ``Sec-WebSocket-Accept`` value to send instead of the right one.
        status: a status other than 101 refuses the upgrade, with ``body``.
        extra_headers: more response headers.
        first_frames: bytes sent in the same write as the 101 response.
        omit: names of the usual 101 headers to leave out (``"Upgrade"``...).
        response_chunks: write the 101 (and ``first_frames``) in pieces of this size.
        strict_inflate: check the client's compressed frames against its window.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        extensions: str | None = None,
        subprotocol: str | None = None,
        accept: str | None = None,
        status: int = 101,
        body: bytes = b"",
        extra_headers: Sequence[tuple[str, str]] = (),
        first_frames: bytes = b"",
        omit: Sequence[str] = (),
        response_chunks: int | None = None,
        strict_inflate: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.scenario = scenario
        self.extensions = extensions
        self.subprotocol = subprotocol
        self.accept = accept
        self.status = status
        self.body = body
        self.extra_headers = list(extra_headers)
        self.first_frames = first_frames
        self.omit = {name.lower() for name in omit}
        self.response_chunks = response_chunks
        self.strict_inflate = strict_inflate
        self.timeout = timeout
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def __aenter__(self) -> RawServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            stream_protocol_factory(self._handle), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        # A failed scenario usually explains why the client side failed too,
        # so its error wins (the client's exception is chained as context).
        await self.finish()

    async def finish(self, *, raise_errors: bool = True) -> None:
        """Wait for the scenarios, stop listening, re-raise a scenario's failure."""
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.timeout * 2)
            for task in pending:
                task.cancel()
                self.errors.append(AssertionError("scenario did not finish in time"))
            if pending:
                await asyncio.wait(pending)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if raise_errors and self.errors:
            raise self.errors[0]

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self._tasks.add(task)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            start, headers = await read_http_head(reader, self.timeout)
            request = Request(start, headers)
            self.requests.append(request)
            if self.status != 101:
                reason = {403: "Forbidden", 404: "Not Found"}.get(self.status, "Refused")
                lines = [
                    f"HTTP/1.1 {self.status} {reason}",
                    "Content-Type: text/plain",
                    f"Content-Length: {len(self.body)}",
                    "Connection: close",
                ]
                lines += [f"{k}: {v}" for k, v in self.extra_headers]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + self.body)
                await writer.drain()
                writer.close()
                return
            key = request.get("Sec-WebSocket-Key") or ""
            accept = self.accept if self.accept is not None else accept_for(key)
            lines = [
                "HTTP/1.1 101 Switching Protocols",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Accept: {accept}",
            ]
            if self.extensions is not None:
                lines.append(f"Sec-WebSocket-Extensions: {self.extensions}")
            if self.subprotocol is not None:
                lines.append(f"Sec-WebSocket-Protocol: {self.subprotocol}")
            lines = [line for line in lines if line.split(":")[0].lower() not in self.omit]
            lines += [f"{k}: {v}" for k, v in self.extra_headers]
            response = ("\r\n".join(lines) + "\r\n\r\n").encode() + self.first_frames
            peer = RawPeer(reader, writer, mask=False)
            await peer.send_raw(response, chunks=self.response_chunks, delay=0.0005)
            deflate = None
            if self.extensions is not None:
                try:
                    deflate = parse_deflate_response(self.extensions)
                except AssertionError:
                    deflate = None  # a deliberately broken answer: no codec
            peer = RawPeer(
                reader, writer, mask=False, deflate=deflate, strict_inflate=self.strict_inflate
            )
            if self.scenario is not None:
                await self.scenario(peer)
        except BaseException as exc:
            self.errors.append(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            writer.close()
