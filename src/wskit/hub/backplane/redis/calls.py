"""Node-to-node calls over Redis (what ``hub.cluster`` asks of every node).

A call is published on ``P:all`` (or on the channel of one client, whose
one subscriber is its node) as a request, ``{"k":"q","id":ID,"n":NODE,
"op":OP,"a":ARGS}``. ``PUBLISH`` says how many nodes got it, and the caller
waits, at most its timeout, for as many answers on its own channel
``P:node:NODE``: ``{"k":"r","id":ID,"n":NODE,"d":DATA}``, or ``"err"``
instead of ``"d"`` when the node's handler failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

from ..interface import Target
from .link import OUTAGE, Link, logger

__all__ = ["Calls", "PendingCall"]


class PendingCall:
    """The answers a call waits for."""

    __slots__ = ("expected", "answers", "done")

    def __init__(self) -> None:
        #: How many nodes got the request (``None`` until ``PUBLISH`` says).
        self.expected: int | None = None
        self.answers: list[Any] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check(self) -> None:
        """Resolve :attr:`done` once every expected answer came."""
        done = self.expected is not None and len(self.answers) >= self.expected
        if done and not self.done.done():
            self.done.set_result(None)


class Calls:
    """This node's calls to the others, and its answers to theirs."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._pending: dict[str, PendingCall] = {}

    async def call(
        self, op: str, args: dict[str, Any], client_id: str | None, timeout: float
    ) -> list[Any]:
        """Publish a call; collect as many answers as nodes received it, within ``timeout``."""
        link = self._link
        if link.client is None:
            return []
        call_id = uuid.uuid4().hex
        call = self._pending[call_id] = PendingCall()
        header = {"k": "q", "id": call_id, "n": link.options.node_id, "op": op, "a": args}
        if client_id is None:
            channel = link.keys.channel(Target.ALL, "")
        else:
            channel = link.keys.channel(Target.CLIENT, client_id)
        try:
            receivers = await link.client.execute_command(
                link.publish_command, channel, json.dumps(header) + "\n"
            )
            call.expected = int(receivers)
            call.check()
            if receivers:
                await asyncio.wait_for(asyncio.shield(call.done), timeout)
        except TimeoutError:
            logger.info("call %s: %d of %s node(s) answered", op, len(call.answers), call.expected)
        finally:
            del self._pending[call_id]
        return call.answers

    def request_received(self, header: dict[str, Any]) -> None:
        """Another node (or this one) asks: answer it, in the background."""
        self._link.spawn(self._answer(header))

    def answer_received(self, header: dict[str, Any]) -> None:
        """A node answered one of this node's calls (an error counts as ``None``)."""
        call = self._pending.get(header.get("id", ""))
        if call is not None:
            if "err" not in header:
                call.answers.append(header.get("d"))
            else:
                call.answers.append(None)
            call.check()

    async def _answer(self, header: dict[str, Any]) -> None:
        link = self._link
        assert link.node is not None and link.client is not None
        reply: dict[str, Any] = {"k": "r", "id": header.get("id"), "n": link.options.node_id}
        try:
            reply["d"] = await link.node.handle_call(str(header.get("op")), header.get("a") or {})
        except Exception as exc:
            reply["err"] = str(exc)
        with contextlib.suppress(*OUTAGE):
            await link.client.execute_command(
                link.publish_command,
                link.keys.key("node", str(header.get("n"))),
                json.dumps(reply) + "\n",
            )
