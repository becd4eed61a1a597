"""Dispatch: run the handler of an event or request, and the hooks.

The hub hands every :class:`~wskit.hub.wire.Event` a client sends to
:meth:`Dispatcher.dispatch`, on a channel (``None`` is the default):

1. Reserved names (:data:`~wskit.hub.registry.RESERVED_EVENTS`) on the
   default channel are never dispatched from the wire.
2. The hub's middleware (:meth:`Hub.use <wskit.hub.hub.Hub.use>`) sees the
   event, in registration order: each may pass it on (changed or not), stop
   it or answer it (:data:`Middleware`).
3. One handler runs, the first of: the client's ``once``, the client's
   ``on``, the hub's ``once``, the hub's ``on`` (ws-server-wrapper's order);
   else the channel's catch-all (``on_any``: the client's, then the hub's).
4. Its arguments are converted by its type hints
   (:mod:`wskit.hub.convert`); a parameter annotated
   :class:`~wskit.hub.client.Client` receives the calling client.
5. A plain function runs inline; an ``async def`` (or a plain function
   that returns an awaitable) runs as a task, so a handler may itself
   ``await client.request(...)`` without blocking the reading of that
   client's messages. At most ``max_inflight`` such tasks run per client;
   the hub stops reading a client whose slots are all taken (see
   :mod:`wskit.hub.hub`), and what it must read meanwhile waits in
   ``client.parked``. A request's task can be cancelled by the peer.
6. A request is answered with the handler's return value. A handler that
   raises rejects it: :class:`~wskit.hub.errors.Reject` with its plain
   value, :class:`~wskit.hub.errors.ClientError` with its message, and any
   other exception with "Internal server error (error <id>)" only (its type
   and text too with ``debug``), the traceback logged with the same id
   (:func:`wskit.limits.report_failure`). Arguments that do not fit the
   handler's hints reject with the :class:`~wskit.hub.convert.ConversionError`'s
   message (it names the parameter and the type, nothing of the server's),
   logged at INFO under :data:`wskit.limits.client_caused`. When a type's
   own code refused the value (a ``__post_init__`` raising ``ValueError``),
   the text of its exception goes only to a DEBUG record, and to the client
   with ``debug``. Nothing a client sends stops the hub.

The client's values that messages and log records quote (event and channel
names, arguments) are cut short (:func:`wskit.hub.convert.short_repr`): an
answer or a record stays under a kilobyte whatever the client sent.

Hooks (``connect``, ``message``, ``error``, ``leave``...) are called by
:meth:`Dispatcher.fire_hook`: the client's first, then the hub's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from ..limits import client_caused, public_error_message, report_failure
from .background import discard
from .client import Client
from .convert import ConversionError, HandlerSignature, short_repr
from .errors import ClientError, Reject
from .registry import RESERVED_EVENTS, Handler, HandlerTable, Registry, Spawn, call_hooks
from .wire import Event, Result, WireProtocol

__all__ = ["Dispatcher", "Answer", "Middleware", "MiddlewareOutcome"]

logger = logging.getLogger("wskit.hub")


class Answer(NamedTuple):
    """What a middleware returns to answer a request itself: ``value`` is the answer.

    The handler does not run; an event (no request) is dropped.
    """

    value: Any


MiddlewareOutcome = Event | Answer | None
"""What a middleware decides: the event to pass on (the one it got, or a
changed one: ``event._replace(args=...)``), an :class:`Answer`, or ``None``
to stop it (a request is then rejected with "Event ... was refused"; raise
:class:`~wskit.hub.errors.ClientError` or :class:`~wskit.hub.errors.Reject`
to reject it with your own message or value)."""

Middleware = Callable[[Client, Event], MiddlewareOutcome | Awaitable[MiddlewareOutcome]]
"""``middleware(client, event)``, a plain function or ``async def``: see
:data:`MiddlewareOutcome`. An exception is handled as a handler's is."""


class Dispatcher:
    """Finds and runs the handlers of a hub's events, answers its requests, calls its hooks.

    Args:
        hub: the hub's default channel (its handlers and hooks).
        channels: the hub's named channels, by name (the hub's own dict).
        protocol: encodes the answers.
        spawn: runs ``async`` handlers and hooks as the hub's background tasks.
        debug: tell clients the type and text of a handler's unexpected exception.
        max_inflight: handlers running at once per client, at most.
    """

    def __init__(
        self,
        hub: Registry,
        channels: Mapping[str, Registry],
        protocol: WireProtocol,
        spawn: Spawn,
        debug: bool,
        max_inflight: int = 16,
    ) -> None:
        assert hub.hooks is not None, "the hub's hooks are a table from the start"
        self._hub_handlers: HandlerTable = hub.handlers
        self._hub_hooks: dict[str, list[Handler]] = hub.hooks
        self._channels = channels
        self.protocol = protocol
        self.debug = debug
        self.max_inflight = max_inflight
        #: The hub's middleware, in the order they run (``Hub.use`` appends).
        self.middleware: list[Middleware] = []
        self._spawn = spawn

    def time_handlers(self, inline: Callable[[float], None], task: Callable[[float], None]) -> None:
        """From now on, report how long handlers take, in seconds (for :mod:`wskit.hub.metrics`).

        ``inline`` gets the time each :meth:`dispatch` took (a plain
        handler's whole run; an async one's start), ``task`` the run of each
        async handler's task. Off by default, and then not even checked: this
        replaces the two methods on this instance (the hub reads ``dispatch``
        once per connection, so connections that began before stay untimed).
        """
        clock = time.perf_counter
        dispatch, await_result = self.dispatch, self._await_result

        def timed_dispatch(client: Client, event: Event) -> None:
            start = clock()
            try:
                dispatch(client, event)
            finally:
                inline(clock() - start)

        async def timed_await_result(
            client: Client, event: Event, awaitable: Awaitable[Any]
        ) -> None:
            start = clock()
            try:
                await await_result(client, event, awaitable)
            finally:
                task(clock() - start)

        self.dispatch = timed_dispatch  # type: ignore[method-assign]
        self._await_result = timed_await_result  # type: ignore[method-assign]

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
        """Run the handler of ``event`` from ``client``; answer it if it is a request.

        The middleware is not run here: the hub calls :meth:`dispatch_through_middleware`
        instead when it has some (deciding once per connection keeps a
        check off the path of every event).
        """
        request_id = event.request_id
        if event.channel is None and event.name in RESERVED_EVENTS:
            if request_id is not None:
                self.reject(client, request_id, f"'{event.name}' is a reserved event name")
            return
        handler = self._find_handler(client, event)
        if not handler:
            if handler is None and self._catch_all(client, event):
                return
            if request_id is not None:
                channel = short_repr(event.channel)
                if handler is False:
                    self.reject(client, request_id, f"Channel {channel} does not exist")
                else:
                    where = f" on channel {channel}" if event.channel is not None else ""
                    name = short_repr(event.name)
                    self.reject(client, request_id, f"No event listener for {name}{where}")
            return
        assert isinstance(handler, HandlerSignature)
        try:
            args = handler.bind(client, event.args)
        except ConversionError as exc:
            self._bad_arguments(client, event, exc)
            return
        except (TypeError, ValueError) as exc:
            # A type's own validation failed: still the client's bad arguments,
            # but the text is the server's (told only with debug).
            error = ConversionError(f"bad arguments for {short_repr(event.name)}")
            error.__cause__ = exc
            self._bad_arguments(client, event, error)
            return
        except Exception as exc:
            self._handler_failed(client, event, exc)
            return
        if handler.is_async:
            self._start(client, event, handler.func(*args))
            return
        try:
            result = handler.func(*args)
        except Exception as exc:
            self._handler_failed(client, event, exc)
            return
        if result is not None and inspect.isawaitable(result):
            self._start(client, event, result)
        elif request_id is not None:
            self._answer(client, event, result)

    def _catch_all(self, client: Client, event: Event) -> bool:
        """Run the channel's ``on_any`` handler for ``event``, if it has one; whether it did."""
        tables: tuple[HandlerTable, ...]
        if event.channel is None:
            tables = (client.handlers, self._hub_handlers)
        else:
            channels = (client.channels.get(event.channel), self._channels.get(event.channel))
            tables = tuple(channel.handlers for channel in channels if channel is not None)
        func = next((table.any for table in tables if table.any is not None), None)
        if func is None:
            return False
        try:
            result = func(client, event.name, *event.args)
        except Exception as exc:
            self._handler_failed(client, event, exc)
            return True
        if inspect.isawaitable(result):
            self._start(client, event, result)
        elif event.request_id is not None:
            self._answer(client, event, result)
        return True

    # -- middleware --------------------------------------------------------------------------

    def dispatch_through_middleware(self, client: Client, event: Event) -> None:
        """Run the middleware on ``event``, then (if they pass it on) :meth:`dispatch` it.

        The first middleware that awaits goes on, with the rest, in a task
        that takes one of the client's slots.
        """
        if event.channel is None and event.name in RESERVED_EVENTS:
            self.dispatch(client, event)  # never an event: refused before any middleware
            return
        outcome: MiddlewareOutcome | Awaitable[MiddlewareOutcome] = event
        for index, func in enumerate(self.middleware):
            try:
                outcome = func(client, event)
            except Exception as exc:
                self._handler_failed(client, event, exc)
                return
            if inspect.isawaitable(outcome):
                # The task takes a slot; it answers nothing itself (no request
                # id): what the middleware decides does.
                rest = self._await_middleware(client, event, outcome, index + 1)
                self._start(client, event._replace(request_id=None), rest)
                return
            if type(outcome) is not Event:
                break
            event = outcome
        self._decided(client, event, outcome)

    async def _await_middleware(
        self, client: Client, event: Event, pending: Awaitable[MiddlewareOutcome], index: int
    ) -> None:
        try:
            outcome = await pending
            for func in self.middleware[index:]:
                if type(outcome) is not Event:
                    break
                event = outcome
                decided = func(client, event)
                outcome = await decided if inspect.isawaitable(decided) else decided
        except Exception as exc:
            self._handler_failed(client, event, exc)
            return
        self._decided(client, event, outcome)

    def _decided(self, client: Client, event: Event, outcome: object) -> None:
        """Act on what the middleware decided of ``event`` (see :data:`MiddlewareOutcome`)."""
        if type(outcome) is Event:
            self.dispatch(client, outcome)
        elif event.request_id is None:
            return
        elif type(outcome) is Answer:
            self._answer(client, event, outcome.value)
        else:
            self.reject(client, event.request_id, f"Event {short_repr(event.name)} was refused")

    def _bad_arguments(self, client: Client, event: Event, exc: ConversionError) -> None:
        name = short_repr(event.name)
        client_caused.log(
            logger,
            logging.INFO,
            ("bad-arguments",),
            "bad arguments for %s from %s: %s",
            name,
            client.id,
            exc,
        )
        detail = exc.detail
        if detail is not None:
            logger.debug("bad arguments for %s from %s: %s (%s)", name, client.id, exc, detail)
        self.fire_hook("error", client, exc)
        if event.request_id is not None:
            message = str(exc)
            if detail is not None and self.debug:
                message = f"{message} ({detail})"
            self.reject(client, event.request_id, message)

    # -- handlers in flight ----------------------------------------------------------------

    def _start(self, client: Client, event: Event, awaitable: Awaitable[Any]) -> None:
        """Run a handler's ``awaitable`` as a task, if ``client`` has a free slot; else park it."""
        if client.inflight >= self.max_inflight:
            # Only read while the client owes us an answer (the hub stops
            # reading otherwise): hold a few, refuse the rest.
            if len(client.parked) < self.max_inflight:
                client.parked.append((event, awaitable))
            else:
                discard(awaitable)
                self.refuse(client, event, "too many requests in flight")
            return
        client.inflight += 1
        task = self._spawn(self._await_result(client, event, awaitable))
        # A callback, not a finally: a task cancelled before it starts runs no code.
        task.add_done_callback(lambda _: self._finished(client))
        if event.request_id is not None:
            client.request_tasks[event.request_id] = task

    def _finished(self, client: Client) -> None:
        client.inflight -= 1
        if client.parked and not client.closed:
            event, awaitable = client.parked.popleft()
            self._start(client, event, awaitable)
        else:
            client.wake_reader()

    def cancel(self, client: Client, request_id: int | str) -> None:
        """The client cancelled its request ``request_id``: stop its handler, running or parked."""
        task = client.request_tasks.pop(request_id, None)
        if task is not None:
            task.cancel()
            return
        for item in client.parked:
            if item[0].request_id == request_id:
                client.parked.remove(item)
                discard(item[1])
                return

    def refuse(self, client: Client, event: Event, reason: str) -> None:
        """Refuse ``event`` from ``client`` and count it; a request is answered with ``reason``."""
        client.refused += 1
        client_caused.log(
            logger,
            logging.INFO,
            ("refused", reason),
            "%s from %s: %s",
            short_repr(event.name),
            client.id,
            reason,
        )
        if event.request_id is not None:
            self.reject(client, event.request_id, reason)

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
                self._answer(client, event, result)
        finally:
            if event.request_id is not None:
                client.request_tasks.pop(event.request_id, None)

    def _handler_failed(self, client: Client, event: Event, exc: Exception) -> None:
        request_id = event.request_id
        if isinstance(exc, Reject):
            if request_id is not None and self.protocol.supports_requests:
                result = Result(request_id, error=exc.value, is_error=True)
                client.send(self.protocol.encode_result(result))
            return
        if isinstance(exc, ClientError):
            if request_id is not None:
                self.reject(client, request_id, exc.message)
            return
        # Any other exception may carry the server's data: the client reads an id only.
        error_id = report_failure(logger, exc, f"the handler of {short_repr(event.name)}")
        self.fire_hook("error", client, exc)
        if request_id is not None:
            self.reject(client, request_id, public_error_message(exc, error_id, self.debug))

    def _answer(self, client: Client, event: Event, data: Any) -> None:
        assert event.request_id is not None
        try:
            message = self.protocol.encode_result(Result(event.request_id, data=data))
        except (TypeError, ValueError) as exc:
            error_id = report_failure(logger, exc, f"the result of {short_repr(event.name)}")
            self.reject(client, event.request_id, public_error_message(exc, error_id, self.debug))
            return
        client.send(message)

    def reject(self, client: Client, request_id: int | str, message: str) -> None:
        """Answer request ``request_id`` of ``client`` with an ``Error`` carrying ``message``."""
        if not self.protocol.supports_requests:
            return
        result = Result(request_id, error={"message": message}, is_error=True, error_object=True)
        client.send(self.protocol.encode_result(result))
