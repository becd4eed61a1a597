"""Dispatch: run the handler of an event or request, and the hooks.

The hub hands every :class:`~wskit.hub.wire.Event` a client sends to
:meth:`Dispatcher.dispatch`, on a channel (``None`` is the default):

1. Reserved names (:data:`~wskit.hub.registry.RESERVED_EVENTS`) on the
   default channel are never dispatched from the wire.
2. One handler runs, the first of: the client's ``once``, the client's
   ``on``, the hub's ``once``, the hub's ``on`` (ws-server-wrapper's order).
3. Its arguments are converted by its type hints
   (:mod:`wskit.hub.convert`); a parameter annotated
   :class:`~wskit.hub.client.Client` receives the calling client.
4. A plain function runs inline; an ``async def`` runs as a task, so a
   handler may itself ``await client.request(...)`` without blocking the
   reading of that client's messages. A request's task can be cancelled by
   the peer.
5. A request is answered with the handler's return value, or rejected with
   the exception's message (:class:`~wskit.hub.errors.Reject` rejects with a
   plain value). Nothing a client sends stops the hub.

Hooks (``connect``, ``message``, ``error``, ``leave``...) are called by
:meth:`Dispatcher.fire_hook`: the client's first, then the hub's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from .client import Client
from .convert import ConversionError, HandlerSignature
from .errors import Reject
from .registry import RESERVED_EVENTS, Handler, HandlerTable, Registry, Spawn, call_hooks
from .wire import Event, Result, WireProtocol

__all__ = ["Dispatcher"]

logger = logging.getLogger("wskit.hub")


class Dispatcher:
    """Finds and runs the handlers of a hub's events, answers its requests, calls its hooks.

    Args:
        hub: the hub's default channel (its handlers and hooks).
        channels: the hub's named channels, by name (the hub's own dict).
        protocol: encodes the answers.
        spawn: runs ``async`` handlers and hooks as the hub's background tasks.
        debug: name the exception's type in error answers.
    """

    def __init__(
        self,
        hub: Registry,
        channels: Mapping[str, Registry],
        protocol: WireProtocol,
        spawn: Spawn,
        debug: bool,
    ) -> None:
        assert hub.hooks is not None, "the hub's hooks are a table from the start"
        self._hub_handlers: HandlerTable = hub.handlers
        self._hub_hooks: dict[str, list[Handler]] = hub.hooks
        self._channels = channels
        self.protocol = protocol
        self.debug = debug
        self._spawn = spawn

    # -- hooks -----------------------------------------------------------------------------

    def fire_hook(self, hook: str, client: Client, *args: Any) -> None:
        """Call the client's hooks named ``hook``, then the hub's, with ``(client, *args)``."""
        client_hooks = client.hooks
        funcs = [
            *(client_hooks.get(hook, ()) if client_hooks is not None else ()),
            *self._hub_hooks.get(hook, ()),
        ]
        if funcs:
            call_hooks(hook, funcs, (client, *args), self._spawn)

    # -- events and requests ---------------------------------------------------------------

    def _find_handler(self, client: Client, event: Event) -> HandlerSignature | bool | None:
        """The handler for ``event``; ``None`` if there is none, ``False`` if no such channel."""
        name = event.name
        if event.channel is None:
            client_side: HandlerTable | None = client.handlers
            hub_side: HandlerTable | None = self._hub_handlers
        else:
            client_channel = client.channels.get(event.channel)
            hub_channel = self._channels.get(event.channel)
            if client_channel is None and hub_channel is None:
                return False
            client_side = client_channel.handlers if client_channel is not None else None
            hub_side = hub_channel.handlers if hub_channel is not None else None
        for handlers in (client_side, hub_side):
            if handlers is None:
                continue
            handler = handlers.once.pop(name, None)
            if handler is not None:
                return handler
            handler = handlers.on.get(name)
            if handler is not None:
                return handler
        return None

    def dispatch(self, client: Client, event: Event) -> None:
        """Run the handler of ``event`` from ``client``; answer it if it is a request."""
        request_id = event.request_id
        if event.channel is None and event.name in RESERVED_EVENTS:
            if request_id is not None:
                self._reject(client, request_id, f"'{event.name}' is a reserved event name")
            return
        handler = self._find_handler(client, event)
        if not handler:
            if request_id is not None:
                if handler is False:
                    self._reject(client, request_id, f"Channel '{event.channel}' does not exist")
                else:
                    where = f" on channel '{event.channel}'" if event.channel is not None else ""
                    self._reject(client, request_id, f"No event listener for '{event.name}'{where}")
            return
        assert isinstance(handler, HandlerSignature)
        try:
            args = handler.bind(client, event.args)
        except Exception as exc:
            if not isinstance(exc, ConversionError):
                # A type's own validation failed: still the client's bad arguments.
                exc = ConversionError(f"bad arguments for '{event.name}': {exc}")
            logger.info("bad arguments for %r from %s: %s", event.name, client.id, exc)
            self.fire_hook("error", client, exc)
            if request_id is not None:
                self._reject(client, request_id, str(exc))
            return
        if handler.is_async:
            task = self._spawn(self._run_async(client, event, handler, args))
            if request_id is not None:
                client.request_tasks[request_id] = task
            return
        try:
            result = handler.func(*args)
        except Exception as exc:
            self._handler_failed(client, event, exc)
            return
        if result is not None and inspect.isawaitable(result):
            self._spawn(self._await_result(client, event, result))
        elif request_id is not None:
            self._answer(client, request_id, result)

    async def _run_async(
        self, client: Client, event: Event, handler: HandlerSignature, args: list[Any]
    ) -> None:
        await self._await_result(client, event, handler.func(*args))

    async def _await_result(self, client: Client, event: Event, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if event.request_id is not None:
                client.request_tasks.pop(event.request_id, None)
            return
        except Exception as exc:
            self._handler_failed(client, event, exc)
        else:
            if event.request_id is not None:
                self._answer(client, event.request_id, result)
        finally:
            if event.request_id is not None:
                client.request_tasks.pop(event.request_id, None)

    def _handler_failed(self, client: Client, event: Event, exc: Exception) -> None:
        if isinstance(exc, Reject):
            if event.request_id is not None and self.protocol.supports_requests:
                result = Result(event.request_id, error=exc.value, is_error=True)
                client.send(self.protocol.encode_result(result))
            return
        logger.exception("error in the handler of %r", event.name, exc_info=exc)
        self.fire_hook("error", client, exc)
        if event.request_id is not None:
            message = str(exc) or type(exc).__name__
            if self.debug:
                message = f"{type(exc).__name__}: {message}"
            self._reject(client, event.request_id, message)

    def _answer(self, client: Client, request_id: int | str, data: Any) -> None:
        try:
            message = self.protocol.encode_result(Result(request_id, data=data))
        except (TypeError, ValueError) as exc:
            self._reject(client, request_id, f"cannot send the result: {exc}")
            return
        client.send(message)

    def _reject(self, client: Client, request_id: int | str, message: str) -> None:
        if not self.protocol.supports_requests:
            return
        result = Result(request_id, error={"message": message}, is_error=True, error_object=True)
        client.send(self.protocol.encode_result(result))
