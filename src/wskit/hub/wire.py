"""Wire protocols of the hub: how events, requests and responses look as messages.

A :class:`WireProtocol` turns a WebSocket message into a :class:`Packet` and
back. The hub only sees packets, so its handlers do not change with the wire
format. Two are built in: :class:`WsWrapperProtocol` (the default; the JSON
format of the npm ``ws-wrapper`` client and of ``wskit.js``) and
:class:`IrisProtocol` (the text format of the iris JavaScript client).

Bounds: a ws-wrapper message is JSON, and what it decodes to is bounded
beyond its size (``max_size`` of the connection): at most ``max_depth``
nested arrays and objects, and ``max_items`` arrays, objects and values in
all. A message over either is refused with :class:`WireError` (the hub
answers the request with an error, or closes with 1008). The checks cost
nothing for a message shorter than ``2 * max_depth`` characters, which
cannot nest deeper, and two or three ``str.count`` calls for the others;
only a message with more brackets than ``max_depth`` (or more commas than
``max_items``) is walked.

Values: an iris value arrives as an :class:`IrisValue` (its tag and raw
text), which :mod:`wskit.hub.convert` reads by the handler's type hints; what
a handler returns goes out through :func:`to_builtins`, which makes
dataclasses, enums, sets, bytes and msgspec structs JSON-ready.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "Packet",
    "Event",
    "Result",
    "Cancel",
    "WireProtocol",
    "WsWrapperProtocol",
    "IrisProtocol",
    "IrisValue",
    "WireError",
    "RESERVED_EVENTS",
]

HUB_CHANNEL = "_wskit"
"""The hub's own channel: the requests ``join``, ``leave`` (``client_rooms``)
and ``hello``, and recovery's notices (see :mod:`wskit.hub.recovery`)."""

SESSION_QUERY_KEY = "wskit"
"""The query parameter of the WebSocket URL that asks for a recovery session."""


# Packets are named tuples rather than frozen dataclasses: one is built per
# message received, and a tuple is several times cheaper to make.


class Event(NamedTuple):
    """An event, or a request when ``request_id`` is set.

    ``channel`` is ``None`` for the default channel. ``args`` are the event's
    arguments as they came off the wire (JSON values for ws-wrapper).
    """

    name: str
    args: tuple[Any, ...]
    channel: str | None = None
    request_id: int | str | None = None


class Result(NamedTuple):
    """The answer to a request: ``data`` when resolved, ``error`` when rejected.

    ``is_error`` tells which; ``error_object`` says the error is a serialized
    JavaScript ``Error`` (``{"message": ...}``) rather than a plain value.
    """

    request_id: int | str
    data: Any = None
    error: Any = None
    is_error: bool = False
    error_object: bool = False


class Cancel(NamedTuple):
    """The peer gave up waiting for a request; its handler should stop."""

    request_id: int | str


#: What a peer sends: an event (or a request), a result, or a cancel.
Packet = Event | Result | Cancel


class WireError(ValueError):
    """A message meant for the hub that it refuses: nested too deeply, too many values.

    ``request_id`` is the id of the request it carried, when it could be
    read (the hub then answers that request with this error; otherwise it
    closes the connection with 1008).
    """

    def __init__(self, message: str, request_id: int | str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def _over_bounds(value: Any, max_depth: int, max_items: int | None) -> str | None:
    """What is over a bound in a decoded JSON ``value``, or ``None`` if nothing is.

    Arrays and objects nest at most ``max_depth`` deep (the value itself is
    depth 1); arrays, objects and their values number at most ``max_items``.
    Iterative, so that a deep value cannot exhaust the stack.
    """
    items = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        children = container.values() if type(container) is dict else container
        items += len(children)
        if max_items is not None and items > max_items:
            return f"message has more than {max_items} values"
        for child in children:
            if type(child) is list or type(child) is dict:
                if depth >= max_depth:
                    return f"message nested deeper than {max_depth} levels"
                stack.append((child, depth + 1))
    return None


class WireProtocol:
    """How packets are written as WebSocket messages; subclass to add a format."""

    #: Short name used in logs and options.
    name: ClassVar[str] = "base"
    #: Whether request/response is part of the format.
    supports_requests: ClassVar[bool] = True
    #: Whether each client is also in a room named by its id (iris does this).
    client_id_room: ClassVar[bool] = False

    def decode(self, message: str | bytes) -> Packet | None:
        """Parse a message; ``None`` when it is not for the hub (ignored or native)."""
        raise NotImplementedError

    def encode_event(self, name: str, args: tuple[Any, ...], channel: str | None = None) -> str:
        """Write an event with its arguments."""
        raise NotImplementedError

    def encode_request(
        self, request_id: int, name: str, args: tuple[Any, ...], channel: str | None = None
    ) -> str:
        """Write a request (an event that expects an answer)."""
        raise NotImplementedError(f"the {self.name} protocol has no requests")

    def encode_result(self, result: Result) -> str:
        """Write the answer to a request."""
        raise NotImplementedError(f"the {self.name} protocol has no requests")

    def encode_cancel(self, request_id: int | str) -> str:
        """Write the cancellation of a request we sent."""
        raise NotImplementedError(f"the {self.name} protocol has no requests")


JsonDumps = Callable[[Any], str]
JsonLoads = Callable[[str | bytes], Any]


def is_struct(tp: Any) -> bool:
    """Whether ``tp`` is a msgspec ``Struct`` class (``False`` without msgspec)."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is optional
        return False
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def to_builtins(value: Any) -> Any:
    """Turn a handler's result into JSON-ready values, as msgspec writes them.

    Dataclasses and Structs become objects, enums their values, sets
    arrays, bytes base64, and datetimes, dates, times, UUIDs and Decimals
    text (RFC 3339, canonical, the digits as they are).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_builtins(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, str | int | float):
        return value  # JSON-native already (the items of the containers above and below)
    if isinstance(value, dict):
        return {k: to_builtins(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset | tuple):
        return [to_builtins(v) for v in value]
    if isinstance(value, bytes):
        # Base64, the usual way to put bytes in JSON (msgspec does the same).
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime | datetime.time):
        # RFC 3339 as msgspec writes it: "Z" for UTC.
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, datetime.date | uuid.UUID | decimal.Decimal):
        return str(value)  # ISO date, canonical UUID, the decimal's own digits (as msgspec)
    if is_struct(type(value)):
        import msgspec

        return msgspec.to_builtins(value)
    raise TypeError(f"cannot send a {type(value).__name__} over the wire")


# One encoder for every message: json.dumps with non-default arguments would
# build a new JSONEncoder on each call.
_compact_dumps: Callable[[Any], str] = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=to_builtins
).encode


def _fastest_dumps() -> JsonDumps:
    """msgspec's JSON encoder when installed (about ten times faster), else the stdlib's.

    Both write compact JSON with the same values: dataclasses, enums, sets
    and tuples as JSON does them, bytes in base64 (:func:`to_builtins`).
    """
    try:
        import msgspec
    except ImportError:
        return _compact_dumps
    encode = msgspec.json.Encoder(enc_hook=to_builtins).encode

    def dumps(value: Any) -> str:
        return encode(value).decode()

    return dumps


def _fastest_loads() -> JsonLoads:
    """msgspec's JSON decoder when installed (five times faster), else the stdlib's.

    Both raise a ``ValueError`` on malformed JSON and build the same values
    from what a JavaScript ``JSON.stringify`` sends.
    """
    try:
        import msgspec
    except ImportError:
        return json.loads
    decode: JsonLoads = msgspec.json.Decoder().decode
    return decode


RESERVED_EVENTS = frozenset(("open", "connect", "message", "error", "close", "disconnect"))
"""Event names of the default channel that are hooks, never wire events.

A ws-wrapper client keeps them for its own events: it drops an event or
request of the peer named so, so the hub refuses to send one
(``ValueError``), and registering one on the hub adds a hook. On a named
channel they are ordinary names."""


def _reserved(name: str) -> ValueError:
    return ValueError(
        f"{name!r} is a reserved event name on the default channel (a ws-wrapper client "
        "drops it): choose another name, or emit it on a named channel"
    )


class WsWrapperProtocol(WireProtocol):
    """The ws-wrapper JSON protocol.

    ``{"a": [event, ...args]}`` is an event; with ``"i"`` it is a request;
    ``{"i": id, "d": data}`` resolves a request and ``{"i": id, "e": error}``
    rejects it (``"_": 1`` marks ``e`` as a serialized ``Error``);
    ``{"i": id, "x": 1}`` cancels it; ``"c"`` names the channel. A message
    with ``"ws-wrapper": false``, or that is not JSON, or matches none of
    these shapes, is not for the hub.

    Args:
        dumps: the JSON encoder (msgspec's when installed, else the stdlib's).
        loads: the JSON decoder (likewise).
        max_depth: arrays and objects nest at most this deep in a message
            (the message's own object is level 1).
        max_items: arrays, objects and values in a message at most (the
            message's size bounds its text; this bounds the Python objects it
            decodes to, up to about 24 times larger); ``None``: any.

    A message over ``max_depth`` or ``max_items`` raises :class:`WireError`.
    """

    name = "ws-wrapper"

    def __init__(
        self,
        dumps: JsonDumps | None = None,
        loads: JsonLoads | None = None,
        *,
        max_depth: int = 32,
        max_items: int | None = 10_000,
    ) -> None:
        if max_depth < 3:
            raise ValueError("max_depth must be at least 3: a request is nested 2 deep")
        self.dumps = dumps if dumps is not None else _fastest_dumps()
        self.loads = loads if loads is not None else _fastest_loads()
        self.max_depth = max_depth
        self.max_items = max_items

    def decode(self, message: str | bytes) -> Packet | None:
        """Parse a ws-wrapper message (see the class docstring).

        Raises:
            WireError: the message is nested too deeply or has too many values.
        """
        try:
            obj = self.loads(message)
        except RecursionError:
            # Deeper than the decoder's own stack allows: far over max_depth.
            raise WireError(f"message nested deeper than {self.max_depth} levels") from None
        except ValueError:
            return None
        if type(obj) is not dict or obj.get("ws-wrapper", True) is False:
            return None
        # Valid JSON nested n deep is at least 2n characters long: the usual
        # short message needs no further check.
        if len(message) > 2 * self.max_depth:
            self._check_bounds(message, obj)
        request_id = obj.get("i")
        # ``type() is``, not isinstance: JSON's true and false are ints to
        # isinstance, and an id is never a bool.
        if request_id is not None and type(request_id) is not int and type(request_id) is not str:
            return None
        channel = obj.get("c")
        if channel is not None and not isinstance(channel, str):
            return None
        args = obj.get("a")
        if args is not None:
            if type(args) is not list or not args or not isinstance(args[0], str):
                return None
            return Event(args[0], tuple(args[1:]), channel, request_id)
        if request_id is None:
            return None
        if "x" in obj:
            return Cancel(request_id)
        if "e" in obj:
            error_object = bool(obj.get("_"))
            return Result(request_id, error=obj["e"], is_error=True, error_object=error_object)
        if "d" in obj:
            return Result(request_id, data=obj["d"])
        # A resolution with no data: ws-wrapper drops "d" when it is undefined.
        return Result(request_id)

    def _check_bounds(self, message: str | bytes, obj: dict[str, Any]) -> None:
        """Raise :class:`WireError` if ``obj`` (decoded from ``message``) is over a bound.

        Counting characters is far cheaper than walking the value: a message
        with no more brackets than ``max_depth`` cannot nest deeper, and each
        value but the first of an array or object follows a comma.
        """
        if isinstance(message, str):
            opens = message.count("[") + message.count("{")
            commas = message.count(",") if self.max_items is not None else 0
        else:
            opens = message.count(b"[") + message.count(b"{")
            commas = message.count(b",") if self.max_items is not None else 0
        max_items = self.max_items
        if opens <= self.max_depth and (max_items is None or opens + commas < max_items):
            return
        problem = _over_bounds(obj, self.max_depth, max_items)
        if problem is not None:
            request_id = obj.get("i")
            if type(request_id) is not int and type(request_id) is not str:
                request_id = None
            raise WireError(problem, request_id if "a" in obj else None)

    def encode_event(self, name: str, args: tuple[Any, ...], channel: str | None = None) -> str:
        """``{"c": channel, "a": [name, *args]}``.

        Raises:
            ValueError: ``name`` is reserved on the default channel
                (:data:`RESERVED_EVENTS`), where a ws-wrapper client
                would drop it unread.
        """
        if channel is None:
            if name in RESERVED_EVENTS:
                raise _reserved(name)
            return self.dumps({"a": [name, *args]})
        return self.dumps({"c": channel, "a": [name, *args]})

    def encode_request(
        self, request_id: int, name: str, args: tuple[Any, ...], channel: str | None = None
    ) -> str:
        """``{"i": id, "c": channel, "a": [name, *args]}``.

        Raises:
            ValueError: ``name`` is reserved on the default channel, as for
                :meth:`encode_event`.
        """
        if channel is None:
            if name in RESERVED_EVENTS:
                raise _reserved(name)
            return self.dumps({"i": request_id, "a": [name, *args]})
        return self.dumps({"i": request_id, "c": channel, "a": [name, *args]})

    def encode_result(self, result: Result) -> str:
        """``{"i": id, "d": data}`` or ``{"i": id, "e": error[, "_": 1]}``."""
        if not result.is_error:
            return self.dumps({"i": result.request_id, "d": result.data})
        if result.error_object:
            return self.dumps({"i": result.request_id, "e": result.error, "_": 1})
        return self.dumps({"i": result.request_id, "e": result.error})

    def encode_cancel(self, request_id: int | str) -> str:
        """``{"i": id, "x": 1}``."""
        return self.dumps({"i": request_id, "x": 1})


@dataclass(frozen=True, slots=True)
class IrisValue:
    """A value as the iris client sent it: its type tag and its raw text.

    The seed's client tags values loosely (``true``, ``3.14`` and ``"42"``
    all arrive as type 1, "int"), so the hub converts the raw text by the
    handler's type hint rather than trusting the tag.
    """

    type: int
    text: str

    def natural(self) -> Any:
        """The value as its tag says, falling back to the text when the tag lies."""
        if self.type == IrisProtocol.INT:
            try:
                return int(self.text)
            except ValueError:
                pass
            try:
                return float(self.text)
            except ValueError:
                pass
            if self.text in ("true", "false"):
                return self.text == "true"
            return self.text
        if self.type == IrisProtocol.BOOL:
            return self.text == "true"
        if self.type == IrisProtocol.JSON:
            try:
                return json.loads(self.text)
            except ValueError:
                return self.text
            except RecursionError:
                # Deeper than the decoder's stack: the client's bad argument, not our bug.
                raise ValueError("JSON value nested too deep") from None
        return self.text


class IrisProtocol(WireProtocol):
    """The iris websocket text protocol: ``<prefix><event>;<type>;<data>``.

    Types: 0 string, 1 int, 2 bool, 3 bytes, 4 JSON. Events carry at most
    one value. There are no channels and no requests; messages without the
    prefix are native messages, handed to the hub's native-message handler.
    Every client is also in a room named by its id, as in iris.
    """

    name = "iris"
    supports_requests = False
    client_id_room = True

    STRING = 0
    INT = 1
    BOOL = 2
    BYTES = 3
    JSON = 4

    def __init__(self, prefix: str = "iris-websocket-message:") -> None:
        self.prefix = prefix

    def decode(self, message: str | bytes) -> Packet | None:
        """Parse an iris message; ``None`` for a native message.

        A message with the prefix but no event name, or a type tag other than
        the five known ones (``"0"`` to ``"4"``), is not an event either.
        """
        if isinstance(message, bytes):
            try:
                message = message.decode()
            except UnicodeDecodeError:
                return None
        if not message.startswith(self.prefix):
            return None
        event, sep, rest = message[len(self.prefix) :].partition(";")
        if not sep or not event:
            return None
        tag, sep, data = rest.partition(";")
        # Only the five known tags, looked up rather than parsed: int() of a
        # client's tag raises on "²", and on a tag of over 4,300 digits.
        type_tag = _IRIS_TAGS.get(tag) if sep else None
        if type_tag is None:
            return None
        return Event(event, (IrisValue(type_tag, data),))

    def encode_event(self, name: str, args: tuple[Any, ...], channel: str | None = None) -> str:
        """Write an event with one value (or none), tagged by its Python type."""
        if channel is not None:
            raise ValueError("the iris protocol has no channels")
        if len(args) > 1:
            raise ValueError("an iris event carries at most one value")
        value = args[0] if args else ""
        if isinstance(value, bool):
            tag, text = self.BOOL, "true" if value else "false"
        elif isinstance(value, int):
            tag, text = self.INT, str(value)
        elif isinstance(value, str):
            tag, text = self.STRING, value
        elif isinstance(value, bytes | bytearray):
            tag, text = self.BYTES, bytes(value).decode("latin-1")
        else:
            tag, text = self.JSON, _compact_dumps(value)
        return f"{self.prefix}{name};{tag};{text}"


_IRIS_TAGS = {
    str(tag): tag
    for tag in (
        IrisProtocol.STRING,
        IrisProtocol.INT,
        IrisProtocol.BOOL,
        IrisProtocol.BYTES,
        IrisProtocol.JSON,
    )
}
"""The iris type tags as they are written, and their numbers."""
