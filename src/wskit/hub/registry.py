"""Registering handlers and hooks: what hub channels and client channels share.

Every channel, of the hub (:class:`~wskit.hub.hub.HubChannel`, and the
:class:`~wskit.hub.hub.Hub` itself for the default channel) or of one client
(:class:`~wskit.hub.client.ClientChannel`, and the
:class:`~wskit.hub.client.Client` itself), is a :class:`Registry`: a table
of ``on`` and ``once`` handlers (a :class:`HandlerTable`) that
:mod:`wskit.hub.dispatch` reads, and on the default channel the hooks.

A handler is read once, when it is registered (:func:`~wskit.hub.convert.signature_of`),
so that dispatch only binds arguments. The reserved names of the default
channel (:data:`RESERVED_EVENTS`) register hooks instead, of which there may
be several per name.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self, TypeVar, overload

from ..limits import report_failure
from .convert import HandlerSignature, signature_of
from .wire import RESERVED_EVENTS

__all__ = [
    "RESERVED_EVENTS",
    "Handler",
    "HandlerT",
    "Spawn",
    "HandlerTable",
    "Registry",
    "call_hooks",
]

logger = logging.getLogger("wskit.hub")

Handler = Callable[..., Any]
"""A handler or hook: a plain function or an ``async def``."""

HandlerT = TypeVar("HandlerT", bound=Handler)
"""The type of one handler: the registering decorators return the function unchanged, typed."""

Spawn = Callable[[Awaitable[Any]], "asyncio.Future[Any]"]
"""Runs an awaitable as one of the hub's background tasks (which ``Hub.close()`` waits for)."""

# The hook each reserved name registers (two names for connect and disconnect,
# as ws-server-wrapper and iris spell them).
_HOOK_NAMES: dict[str, str] = {
    "open": "connect",
    "connect": "connect",
    "close": "disconnect",
    "disconnect": "disconnect",
    "error": "error",
    "message": "message",
}


class HandlerTable:
    """The ``on`` and ``once`` handlers of one channel of a hub or a client.

    ``client_class`` is the hub's client class: a handler's parameter
    annotated with it receives the calling client.
    """

    __slots__ = ("on", "once", "any", "client_class")

    def __init__(self, client_class: type) -> None:
        self.on: dict[str, HandlerSignature] = {}
        self.once: dict[str, HandlerSignature] = {}
        #: The catch-all handler (``on_any``), for the events no other takes.
        self.any: Handler | None = None
        self.client_class = client_class


class Registry:
    """Registering handlers and hooks: shared by hub channels and client channels.

    On the default channel (``name is None``) the reserved names are hooks,
    of which there may be several: ``connect``/``open`` (hub only),
    ``disconnect``/``close`` (called with client, code, reason), ``error``
    (client, exception) and ``message`` (client, raw message). On a named
    channel every name is an ordinary event.
    """

    def __init__(self, name: str | None, client_class: type) -> None:
        #: The channel's name; ``None`` for the default channel.
        self.name = name
        #: The ``on`` and ``once`` handlers (read by dispatch).
        self.handlers = HandlerTable(client_class)
        #: The hook functions by hook name, ``None`` until the first is added
        #: (read by the hub for every message, and by dispatch).
        self.hooks: dict[str, list[Handler]] | None = None

    def _register(
        self, table: dict[str, HandlerSignature], event: str, handler: Handler | None, once: bool
    ) -> Any:
        hook = _HOOK_NAMES.get(event) if self.name is None else None

        def add(func: Handler) -> Handler:
            if hook is not None:
                self._add_hook(hook, func, once)
            else:
                table[event] = signature_of(func, self.handlers.client_class)
            return func

        if handler is None:
            return add
        add(handler)
        return self

    def _add_hook(self, hook: str, func: Handler, once: bool) -> None:
        hooks = self.hooks
        if hooks is None:
            hooks = self.hooks = {}
        if once:
            original = func

            def func(*args: Any) -> Any:
                hooks[hook].remove(func)
                return original(*args)

        hooks.setdefault(hook, []).append(func)

    @overload
    def on(self, event: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def on(self, event: str, handler: Handler) -> Self: ...
    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Handle ``event`` with ``handler`` (usable as ``@channel.on("event")``).

        One handler per event: registering again replaces it. Reserved
        names on the default channel register hooks instead (see above).
        As a decorator it returns the function unchanged (its type too);
        called with the handler, it returns the channel, for chaining.
        """
        return self._register(self.handlers.on, event, handler, once=False)

    @overload
    def once(self, event: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def once(self, event: str, handler: Handler) -> Self: ...
    def once(self, event: str, handler: Handler | None = None) -> Any:
        """Handle the next ``event`` only, then forget the handler (a decorator like :meth:`on`)."""
        return self._register(self.handlers.once, event, handler, once=True)

    def on_any(self, handler: HandlerT) -> HandlerT:
        """Handle, as ``handler(client, event, *args)``, every event no handler of its own takes.

        The catch-all of this channel (one: registering again replaces it):
        it runs where the client would otherwise read "No event listener";
        its arguments are as they came (not converted by type hints), and
        what it returns answers a request, as for any handler. It is not
        :meth:`~wskit.hub.hub.Hub.on_native`, which gets the messages that
        are not events at all; to see every event, handled or not, use
        :meth:`~wskit.hub.hub.Hub.use`.
        """
        self.handlers.any = handler
        return handler

    def off(self, event: str) -> None:
        """Remove the ``on`` and ``once`` handlers of ``event``."""
        self.handlers.on.pop(event, None)
        self.handlers.once.pop(event, None)


def call_hooks(hook: str, funcs: Iterable[Handler], args: tuple[Any, ...], spawn: Spawn) -> None:
    """Call each of ``funcs`` with ``args``; never raise.

    A hook that returns an awaitable (an ``async def``) runs in the
    background; an exception is logged, and the next hook is called.
    """
    for func in funcs:
        try:
            result = func(*args)
            if inspect.isawaitable(result):
                spawn(result)
        except Exception as exc:
            # A client can set a hook failing again and again: repeats are rate-limited.
            report_failure(logger, exc, f"the {hook} hook")
