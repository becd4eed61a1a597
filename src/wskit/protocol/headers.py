"""HTTP header values used by the opening handshake.

:class:`Headers` is a case-insensitive multi-map that keeps the order and
spelling of what was received. The parsers follow the grammar of RFC 9110
section 5.6 (token lists) and RFC 6455 section 9.1 (extension lists): they
are lenient about optional whitespace and empty list elements and strict
about everything else, raising :class:`ValueError` with a readable message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "Headers",
    "ExtensionOffer",
    "parse_token_list",
    "parse_extension_list",
    "serialize_extension_list",
    "is_token",
]

ExtensionParams = list[tuple[str, str | None]]
ExtensionOffer = tuple[str, ExtensionParams]
"""One element of a ``Sec-WebSocket-Extensions`` header: name and parameters."""

_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_token(value: str) -> bool:
    """Tell whether ``value`` is an RFC 9110 token (non-empty, tchars only)."""
    return bool(value) and all(c in _TCHARS for c in value)


class Headers:
    """An ordered, case-insensitive multi-map of HTTP header fields.

    ``headers["name"]`` returns the only value, or all values joined by
    ``", "`` when the field is repeated (RFC 9110 section 5.3); use
    :meth:`get_all` to see them one by one.
    """

    __slots__ = ("_items",)

    def __init__(
        self, items: Iterable[tuple[str, str]] | Mapping[str, str] | Headers | None = None
    ) -> None:
        self._items: list[tuple[str, str]] = []
        if items is not None:
            self.update(items)

    def update(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | Headers) -> None:
        """Append every field of ``items`` (pairs, a mapping or :class:`Headers`)."""
        if isinstance(items, Mapping):
            pairs: Iterable[tuple[str, str]] = items.items()
        elif isinstance(items, Headers):
            pairs = items.raw_items()
        else:
            pairs = items
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any earlier field of the same name."""
        self._items.append((name, value))

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every field called ``name`` with one of value ``value``."""
        self.pop(name)
        self._items.append((name, value))

    def pop(self, name: str) -> list[str]:
        """Remove every field called ``name``; return their values."""
        key = name.lower()
        removed = [v for n, v in self._items if n.lower() == key]
        if removed:
            self._items = [(n, v) for n, v in self._items if n.lower() != key]
        return removed

    def get_all(self, name: str) -> list[str]:
        """Return the values of every field called ``name``, in order."""
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return ``headers[name]``, or ``default`` when the field is absent."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._items)

    def raw_items(self) -> list[tuple[str, str]]:
        """Return every field as a ``(name, value)`` pair, repeats included."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [(n.lower(), v) for n, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def serialize(self) -> bytes:
        """Encode the fields as ``Name: value\\r\\n`` lines (no blank line)."""
        return "".join(f"{n}: {v}\r\n" for n, v in self._items).encode("latin-1")


def parse_token_list(values: str | Iterable[str]) -> list[str]:
    """Parse comma-separated tokens, from one header value or several.

    Empty elements are skipped (RFC 9110 section 5.6.1). Tokens keep their
    case; compare them with ``.lower()`` where the header is case-insensitive.

    Raises:
        ValueError: an element is not a token.
    """
    if isinstance(values, str):
        values = [values]
    tokens: list[str] = []
    for value in values:
        for element in value.split(","):
            element = element.strip(" \t")
            if not element:
                continue
            if not is_token(element):
                raise ValueError(f"invalid token {element!r} in {value!r}")
            tokens.append(element)
    return tokens


def _parse_param_value(raw: str, header: str) -> str:
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            raise ValueError(f"unterminated quoted string in {header!r}")
        inner = raw[1:-1]
        value = []
        escaped = False
        for c in inner:
            if escaped:
                value.append(c)
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                raise ValueError(f"stray quote in {header!r}")
            else:
                value.append(c)
        if escaped:
            raise ValueError(f"dangling escape in {header!r}")
        result = "".join(value)
        # RFC 6455 section 9.1: a quoted extension parameter value must
        # still match the token grammar once unquoted.
        if not is_token(result):
            raise ValueError(f"invalid quoted parameter value {raw!r} in {header!r}")
        return result
    if not is_token(raw):
        raise ValueError(f"invalid parameter value {raw!r} in {header!r}")
    return raw


def _split_outside_quotes(value: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for c in value:
        if escaped:
            escaped = False
        elif quoted and c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(c)
    parts.append("".join(current))
    return parts


def parse_extension_list(values: str | Iterable[str]) -> list[ExtensionOffer]:
    """Parse ``Sec-WebSocket-Extensions`` values (RFC 6455 section 9.1).

    Returns ``[(name, [(param, value or None), ...]), ...]`` in order; a
    parameter without ``=`` (such as a bare ``client_max_window_bits``) has
    the value ``None``. Names keep their case.

    Raises:
        ValueError: the header does not follow the grammar.
    """
    if isinstance(values, str):
        values = [values]
    offers: list[ExtensionOffer] = []
    for value in values:
        for element in _split_outside_quotes(value, ","):
            if not element.strip(" \t"):
                continue
            pieces = _split_outside_quotes(element, ";")
            name = pieces[0].strip(" \t")
            if not is_token(name):
                raise ValueError(f"invalid extension name {name!r} in {value!r}")
            params: ExtensionParams = []
            for piece in pieces[1:]:
                piece = piece.strip(" \t")
                if not piece:
                    raise ValueError(f"empty extension parameter in {value!r}")
                key, eq, raw = piece.partition("=")
                key = key.strip(" \t")
                if not is_token(key):
                    raise ValueError(f"invalid extension parameter {key!r} in {value!r}")
                params.append((key, _parse_param_value(raw.strip(" \t"), value) if eq else None))
            offers.append((name, params))
    return offers


def serialize_extension_list(offers: Iterable[ExtensionOffer]) -> str:
    """Format extensions for a ``Sec-WebSocket-Extensions`` header."""
    return ", ".join(
        "; ".join([name, *(k if v is None else f"{k}={v}" for k, v in params)])
        for name, params in offers
    )
