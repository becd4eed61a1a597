"""Typed handlers: convert wire values to the types a handler's hints ask for.

:func:`signature_of` reads a handler once, when it is registered, and
returns a :class:`HandlerSignature` whose :meth:`~HandlerSignature.bind`
turns the event's raw arguments into the call's arguments. Supported hints:
``str``, ``int``, ``float``, ``bool``, ``bytes``, ``None``, ``Any``,
``datetime``/``date``/``time``, ``UUID``, ``Decimal``,
``list``/``tuple``/``set``/``dict`` of them, ``Optional``/unions,
``Literal``, enums, dataclasses, ``TypedDict`` and msgspec ``Struct`` classes. A
parameter annotated with the hub's client class receives the calling client.

Dates, times, UUIDs and decimals are read from text as msgspec reads them
(RFC 3339; a UUID's 32 hex digits, hyphens or not; a Decimal also from a
number), through ``msgspec.convert`` when msgspec is installed and the
built-in parsers otherwise, with the same results; enums and ``Literal``
take a value of the same type only (``True`` is not ``1``), as msgspec.
Results go out the same way (:func:`to_builtins`).

A ``bytes`` parameter takes base64 text (what the hub sends for ``bytes``,
as msgspec does), or an iris bytes value. An iris integer is read exactly,
whatever its size (not through ``float``).

A value that does not fit raises :class:`ConversionError`, whose message
names the argument and what was wrong, e.g. ``argument 'age': expected
int, got str``; the hub answers the request with it. The message quotes
the client's values cut short (:func:`short_repr`), so that whatever the
client sent, what it causes to be logged or answered stays under a
kilobyte. When a type's own code refuses a value (a dataclass's
``__post_init__``, a ``Struct``'s), the message names the argument and the
type only: that code's exception text may hold the server's data.

The way back, :func:`to_builtins` (a handler's result as JSON-ready
values), belongs to the encoders of :mod:`wskit.hub.wire` and is re-exported
here.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import inspect
import re
import reprlib
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..exceptions import WebSocketError
from .wire import IrisValue, is_struct, to_builtins

__all__ = [
    "ConversionError",
    "HandlerSignature",
    "signature_of",
    "convert",
    "to_builtins",
    "short_repr",
]

_MISSING = inspect.Parameter.empty

# What a client sent, as quoted in an error message: a few dozen characters
# of a string or number, four items of a container, three levels deep (so
# the work is bounded too), and at most _MAX_REPR characters in all.
_client_repr = reprlib.Repr()
_client_repr.maxstring = _client_repr.maxother = 60
_client_repr.maxlevel = 3
_client_repr.maxlist = _client_repr.maxtuple = _client_repr.maxdict = 4
_client_repr.maxset = _client_repr.maxfrozenset = _client_repr.maxdeque = 4

_MAX_REPR = 120
"""Characters of a client's value quoted in a message, at most."""

_MAX_TEXT = 300
"""Characters kept of a text written by others (msgspec's error, a type's exception)."""


def short_repr(value: Any) -> str:
    """``repr(value)`` cut short, for quoting a client's value in a message or a log.

    A string or number keeps at most about 60 characters (its head and tail
    around ``...``), a container its first four items, three levels deep,
    and the whole at most 120 characters; the cost does not grow with the
    value's size.
    """
    try:
        return _clip(_client_repr.repr(value), _MAX_REPR)
    except ValueError:  # an int of over 4,300 digits has no repr
        return f"<{type(value).__name__}>"


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    """``text`` cut to at most ``limit`` characters, its head and tail kept."""
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]}...{text[-half:]}"


class ConversionError(WebSocketError, ValueError):
    """A wire value does not fit the handler's type hint.

    A :class:`~wskit.WebSocketError` like every wskit exception, and still a
    :class:`ValueError`, which code that converts values catches.

    Its message is meant for the client: it names the argument and what was
    wrong, quoting the client's values cut short. When a type's own code
    refused the value, the exception that code raised is the error's
    ``__cause__``, left out of the message (it may hold the server's data);
    :attr:`detail` tells it, for logs at DEBUG and for a hub with ``debug``.
    """

    @property
    def detail(self) -> str | None:
        """The type and text of the exception of a type's own code (shortened), if any."""
        cause = self.__cause__
        if cause is None:
            return None
        return _clip(f"{type(cause).__name__}: {cause}")


def _argument(path: str) -> str:
    """``argument 'path'``: a path holds the client's dict keys, so it is cut short too."""
    return f"argument {short_repr(path)}"


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    return type(value).__name__


def _fail(path: str, expected: Any, value: Any) -> ConversionError:
    return ConversionError(
        f"{_argument(path)}: expected {_type_name(expected)}, got {_value_type(value)}"
    )


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _from_iris(value: IrisValue, tp: Any, path: str) -> Any:
    """Read an iris value by the hint, whatever its (unreliable) tag says."""
    text = value.text
    try:
        if tp is str:
            return text
        if tp is bytes:
            return text.encode("latin-1")
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0", ""):
                return False
            raise ValueError(text)
        if tp is int:
            stripped = text.strip()
            digits = stripped[1:] if stripped[:1] in ("+", "-") else stripped
            if digits.isascii() and digits.isdecimal():
                return int(stripped)  # exactly, however large (within int's digit limit)
            number = float(text)  # "3.0", "1e3"
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if tp is float:
            return float(text)
    except ValueError:
        message = f"{_argument(path)}: {short_repr(text)} is not a {_type_name(tp)}"
        raise ConversionError(message) from None
    return convert(_natural(value, path), tp, path)


def _natural(value: IrisValue, path: str) -> Any:
    """``value.natural()``, its one error (JSON nested too deep) a :class:`ConversionError`."""
    try:
        return value.natural()
    except ValueError as exc:
        raise ConversionError(f"{_argument(path)}: {exc}") from None


def convert(value: Any, tp: Any, path: str = "value") -> Any:
    """Convert one wire value to ``tp``; raise :class:`ConversionError` if it does not fit."""
    if isinstance(value, IrisValue):
        return _from_iris(value, tp, path)
    if tp is Any or tp is _MISSING or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        raise _fail(path, type(None), value)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        errors = []
        for member in members:
            if member is type(None):
                continue
            try:
                return convert(value, member, path)
            except ConversionError as exc:
                errors.append(str(exc))
        raise ConversionError(
            f"{_argument(path)}: {_value_type(value)} fits none of {_type_name(tp)}"
        )
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        # Of the same type too, as msgspec says: True is not 1, nor 1.0.
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return value
        raise ConversionError(f"{_argument(path)}: {short_repr(value)} is not one of {choices}")
    if origin is typing.Annotated:
        return convert(value, typing.get_args(tp)[0], path)
    if tp is bool:
        if type(value) is bool:
            return value
        raise _fail(path, bool, value)
    if tp is int:
        if type(value) is int:
            return value
        # JSON numbers from JavaScript are doubles: 3.0 is an integer.
        if type(value) is float and value.is_integer():
            return int(value)
        raise _fail(path, int, value)
    if tp is float:
        if type(value) in (int, float):
            return float(value)
        raise _fail(path, float, value)
    if tp is str:
        if type(value) is str:
            return value
        raise _fail(path, str, value)
    if tp is bytes:
        if isinstance(value, str):
            # Base64: what the hub sends for bytes (to_builtins), and msgspec reads.
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                raise ConversionError(f"{_argument(path)}: not valid base64") from None
        if isinstance(value, bytes):
            return value
        raise _fail(path, bytes, value)
    if tp in _PARSERS:
        return _convert_text_type(value, tp, path)
    if origin in (list, Sequence, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
        return _convert_sequence(value, tp, origin or tp, path)
    if origin in (dict, Mapping) or tp is dict:
        if type(value) is not dict:
            raise _fail(path, dict, value)
        args = typing.get_args(tp)
        value_type = args[1] if len(args) == 2 else Any
        return {
            convert(k, args[0] if args else Any, f"{path}.<key>"): convert(
                v, value_type, f"{path}.{k}"
            )
            for k, v in value.items()
        }
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            # By value, of the same type too (as msgspec: True is not 1, nor 1.0).
            try:
                member = tp._value2member_map_.get(value)
            except TypeError:  # an unhashable value
                member = None
            if member is not None and type(member.value) is type(value):
                return member
            message = f"{_argument(path)}: {short_repr(value)} is not a {tp.__name__}"
            raise ConversionError(message)
        if dataclasses.is_dataclass(tp):
            return _convert_dataclass(value, tp, path)
        if _is_typeddict(tp):
            return _convert_typeddict(value, tp, path)
        if is_struct(tp):
            return _convert_struct(value, tp, path)
        if isinstance(value, tp):
            return value
        raise _fail(path, tp, value)
    raise ConversionError(f"{_argument(path)}: unsupported type hint {tp!r}")


# -- dates, times, UUIDs and decimals, as msgspec reads them -------------------------------

_OFFSET = r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2}))?"
_TIME = r"(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?:\.(?P<frac>\d+))?" + _OFFSET
_DATE = r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
_DATE_RE = re.compile(_DATE)
_TIME_RE = re.compile(_TIME)
_DATETIME_RE = re.compile(_DATE + "[Tt ]" + _TIME)
_UUID_RE = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _parse_datetime(text: str) -> datetime.datetime:
    """RFC 3339, as msgspec reads it: fractions rounded to the microsecond."""
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    g = match.group
    tz: datetime.tzinfo | None = None
    if g("z"):
        tz = datetime.UTC
    elif g("sign"):
        minutes = int(g("oh")) * 60 + int(g("om"))
        tz = datetime.timezone(
            datetime.timedelta(minutes=-minutes if g("sign") == "-" else minutes)
        )
    whole = datetime.datetime(
        int(g("y")), int(g("m")), int(g("d")), int(g("H")), int(g("M")), int(g("S")), tzinfo=tz
    )
    # Round half up to the microsecond, as msgspec does (a carry may change the second).
    frac = (g("frac") or "")[:7].ljust(7, "0")
    return whole + datetime.timedelta(microseconds=(int(frac) + 5) // 10)


def _parse_time(text: str) -> datetime.time:
    if _TIME_RE.fullmatch(text) is None:
        raise ValueError(text)
    return _parse_datetime("2000-01-01T" + text).timetz()


def _parse_date(text: str) -> datetime.date:
    if _DATE_RE.fullmatch(text) is None:
        raise ValueError(text)
    return datetime.date.fromisoformat(text)


def _parse_uuid(text: str) -> uuid.UUID:
    if _UUID_RE.fullmatch(text) is None:
        raise ValueError(text)
    return uuid.UUID(text)


def _parse_decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(text) from None


_PARSERS: dict[Any, Callable[[str], Any]] = {
    datetime.datetime: _parse_datetime,
    datetime.date: _parse_date,
    datetime.time: _parse_time,
    uuid.UUID: _parse_uuid,
    decimal.Decimal: _parse_decimal,
}
"""The types read from text like msgspec reads them: through ``msgspec.convert``
when msgspec is installed, else through these parsers, with the same results."""

_msgspec_convert: Callable[[Any, Any], Any] | None
_ValidationError: type[Exception]
try:
    import msgspec

    _msgspec_convert, _ValidationError = msgspec.convert, msgspec.ValidationError
except ImportError:  # pragma: no cover - msgspec is optional
    _msgspec_convert, _ValidationError = None, ValueError


def _convert_text_type(value: Any, tp: Any, path: str) -> Any:
    """Read ``value`` as one of :data:`_PARSERS`' types (a Decimal also from a number)."""
    if tp is decimal.Decimal and type(value) in (int, float):
        return decimal.Decimal(repr(value))  # 0.1 is Decimal("0.1"), as msgspec says
    if type(value) is not str:
        raise _fail(path, tp, value)
    try:
        if _msgspec_convert is not None:
            return _msgspec_convert(value, tp)
        return _PARSERS[tp](value)
    except (ValueError, _ValidationError):
        message = f"{_argument(path)}: {short_repr(value)} is not a valid {_type_name(tp)}"
        raise ConversionError(message) from None


def _convert_sequence(value: Any, tp: Any, origin: Any, path: str) -> Any:
    if type(value) is not list:
        raise _fail(path, tp, value)
    args = typing.get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            message = f"{_argument(path)}: expected {len(args)} items, got {len(value)}"
            raise ConversionError(message)
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(convert(v, t, f"{path}[{i}]") for i, (v, t) in pairs)
    item_type = args[0] if args else Any
    items = [convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return tuple(items)
    if origin in (set, frozenset):
        try:
            return origin(items)
        except TypeError as exc:  # unhashable items, e.g. set[list[int]]
            raise ConversionError(f"{_argument(path)}: {exc}") from None
    return items


def _convert_dataclass(value: Any, tp: type, path: str) -> Any:
    if type(value) is not dict:
        raise _fail(path, tp, value)
    hints = typing.get_type_hints(tp)
    kwargs = {}
    for field in dataclasses.fields(tp):
        if not field.init:
            continue
        if field.name in value:
            kwargs[field.name] = convert(
                value[field.name], hints.get(field.name, Any), f"{path}.{field.name}"
            )
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConversionError(f"{_argument(path)}: missing field {field.name!r}")
    try:
        return tp(**kwargs)
    except ConversionError:
        raise  # wskit's own message, from a __post_init__ that converts
    except (TypeError, ValueError) as exc:
        # A __post_init__ that validates is part of converting to the type,
        # but its text is the server's: the client reads the type's name.
        raise ConversionError(f"{_argument(path)}: not a valid {tp.__name__}") from exc


def _convert_typeddict(value: Any, tp: Any, path: str) -> Any:
    if type(value) is not dict:
        raise _fail(path, tp, value)
    hints = typing.get_type_hints(tp)
    for key in tp.__required_keys__:
        if key not in value:
            raise ConversionError(f"{_argument(path)}: missing key {key!r}")
    return {
        key: convert(item, hints[key], f"{path}.{key}")
        for key, item in value.items()
        if key in hints
    }


def _convert_struct(value: Any, tp: type, path: str) -> Any:
    import msgspec

    try:
        return msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        if exc.__cause__ is not None:
            # Raised by the Struct's __post_init__: the server's text, not msgspec's.
            message = f"{_argument(path)}: not a valid {tp.__name__}"
            raise ConversionError(message) from exc.__cause__
        # msgspec's own message, from the schema; it quotes the whole value.
        raise ConversionError(f"{_argument(path)}: {_clip(str(exc))}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class _Param:
    name: str
    hint: Any
    inject: bool
    required: bool
    default: Any


class HandlerSignature:
    """How to call one handler with the arguments of an event.

    Built once per handler by :func:`signature_of`; :meth:`bind` runs per
    event. Parameters annotated with ``client_type`` receive the client;
    the others take the event's arguments in order.
    """

    __slots__ = ("func", "is_async", "_params", "_varargs", "_plain", "_leading")

    def __init__(self, func: Callable[..., Any], client_type: type) -> None:
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        try:
            hints = typing.get_type_hints(func)
        except (NameError, TypeError):
            hints = {}
        params: list[_Param] = []
        self._varargs: Any = None
        for param in inspect.signature(func).parameters.values():
            hint = hints.get(param.name, param.annotation)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                self._varargs = hint if hint is not _MISSING else Any
                continue
            if param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
                continue
            inject = isinstance(hint, type) and issubclass(hint, client_type)
            required = param.default is _MISSING
            params.append(_Param(param.name, hint, inject, required, param.default))
        self._params = tuple(params)
        # The common cases skip conversion entirely: no hints (or ``Any``) on
        # the wire arguments, and the client, if asked for, first.
        leading = 0
        while leading < len(params) and params[leading].inject:
            leading += 1
        wire = params[leading:]
        self._plain = all(
            p.hint in (_MISSING, Any) and not p.inject for p in wire
        ) and self._varargs in (None, Any)
        self._leading = leading

    def bind(self, client: Any, args: Sequence[Any]) -> list[Any]:
        """Build the call's positional arguments from the event's ``args``.

        Raises:
            ConversionError: an argument does not fit, or too few/many were sent.
        """
        if args and type(args[-1]) is IrisValue and self._varargs is None:
            # An iris event always carries a value, even when the client sent
            # none; a handler that takes no value (iris's ``func()``) ignores it.
            wanted = sum(1 for p in self._params if not p.inject)
            if len(args) > wanted:
                args = args[:wanted]
        if self._plain:
            leading = self._leading
            try:
                values = [a.natural() if type(a) is IrisValue else a for a in args]
            except ValueError as exc:  # an iris JSON value nested deeper than json's stack
                name = self._params[leading].name if len(self._params) > leading else "*0"
                raise ConversionError(f"{_argument(name)}: {exc}") from None
            wanted = len(self._params) - leading
            if self._varargs is None and len(values) > wanted:
                raise ConversionError(f"expected at most {wanted} arguments, got {len(values)}")
            if len(values) < wanted:
                missing = [p.name for p in self._params[leading + len(values) :] if p.required]
                if missing:
                    raise ConversionError(f"missing argument {missing[0]!r}")
            return [client, *values] if leading == 1 else [client] * leading + values
        result: list[Any] = []
        position = 0
        for param in self._params:
            if param.inject:
                result.append(client)
                continue
            if position < len(args):
                result.append(convert(args[position], param.hint, param.name))
                position += 1
            elif param.required:
                raise ConversionError(f"missing argument {param.name!r}")
            else:
                result.append(param.default)
        rest = args[position:]
        if rest:
            if self._varargs is None:
                raise ConversionError(f"expected at most {position} arguments, got {len(args)}")
            result.extend(convert(a, self._varargs, f"*{i}") for i, a in enumerate(rest))
        return result


def signature_of(func: Callable[..., Any], client_type: type) -> HandlerSignature:
    """Read ``func``'s parameters and hints once, for fast binding per event."""
    return HandlerSignature(func, client_type)
