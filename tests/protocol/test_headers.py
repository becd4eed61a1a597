"""Unit tests for wskit.protocol.headers (RFC 9110 section 5, RFC 6455 section 9.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.protocol.headers import (
    Headers,
    is_token,
    parse_extension_list,
    parse_token_list,
    serialize_extension_list,
)

# --------------------------------------------------------------------------- Headers


def test_headers_case_insensitive_lookup_keeps_spelling() -> None:
    h = Headers([("Content-Type", "text/plain"), ("X-Thing", "1")])
    assert h["content-type"] == "text/plain"
    assert h["CONTENT-TYPE"] == "text/plain"
    assert "x-thing" in h
    assert "X-THING" in h
    assert "missing" not in h
    assert 42 not in h
    assert list(h) == ["Content-Type", "X-Thing"]
    assert h.raw_items() == [("Content-Type", "text/plain"), ("X-Thing", "1")]


def test_headers_repeated_fields() -> None:
    h = Headers()
    h.add("Sec-WebSocket-Protocol", "chat")
    h.add("Host", "example.com")
    h.add("sec-websocket-protocol", "superchat")
    assert len(h) == 3
    assert h.get_all("SEC-WEBSOCKET-PROTOCOL") == ["chat", "superchat"]
    # Joined with ", " (RFC 9110 section 5.3).
    assert h["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert h.get("sec-websocket-protocol") == "chat, superchat"
    # Iteration yields each name once, first spelling, in order.
    assert list(h) == ["Sec-WebSocket-Protocol", "Host"]


def test_headers_missing() -> None:
    h = Headers()
    with pytest.raises(KeyError):
        h["Host"]
    assert h.get("Host") is None
    assert h.get("Host", "default") == "default"
    assert h.get_all("Host") == []
    assert h.pop("Host") == []
    assert len(h) == 0


def test_headers_setitem_replaces_all() -> None:
    h = Headers([("Set-Cookie", "a=1"), ("Other", "x"), ("set-cookie", "b=2")])
    h["SET-COOKIE"] = "c=3"
    assert h.get_all("set-cookie") == ["c=3"]
    assert h.raw_items() == [("Other", "x"), ("SET-COOKIE", "c=3")]


def test_headers_pop() -> None:
    h = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert h.pop("a") == ["1", "3"]
    assert h.raw_items() == [("b", "2")]


def test_headers_constructors() -> None:
    from_pairs = Headers([("A", "1"), ("B", "2")])
    from_mapping = Headers({"A": "1", "B": "2"})
    from_headers = Headers(from_pairs)
    assert from_pairs == from_mapping == from_headers
    # A copy does not share storage.
    from_headers.add("C", "3")
    assert "C" not in from_pairs
    h = Headers([("A", "1")])
    h.update({"B": "2"})
    h.update([("A", "3")])
    h.update(Headers([("D", "4")]))
    assert h.raw_items() == [("A", "1"), ("B", "2"), ("A", "3"), ("D", "4")]


def test_headers_equality() -> None:
    assert Headers([("Host", "x")]) == Headers([("host", "x")])
    # Values are case-sensitive, order matters.
    assert Headers([("Host", "x")]) != Headers([("Host", "X")])
    assert Headers([("A", "1"), ("B", "2")]) != Headers([("B", "2"), ("A", "1")])
    assert Headers() != {"a": "b"}
    assert "Host" in repr(Headers([("Host", "x")]))


def test_headers_serialize() -> None:
    h = Headers([("Upgrade", "websocket"), ("Connection", "Upgrade"), ("X", "é")])
    assert h.serialize() == b"Upgrade: websocket\r\nConnection: Upgrade\r\nX: \xe9\r\n"
    assert Headers().serialize() == b""


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1)
_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@given(st.lists(st.tuples(_names, _values), max_size=10))
def test_headers_multimap_model(items: list[tuple[str, str]]) -> None:
    h = Headers(items)
    assert len(h) == len(items)
    assert h.raw_items() == items
    for name, _ in items:
        expected = [v for n, v in items if n.lower() == name.lower()]
        assert h.get_all(name.swapcase()) == expected
        assert h[name.upper()] == ", ".join(expected)
    lines = h.serialize().decode("latin-1").split("\r\n")
    assert lines[-1] == ""
    assert [tuple(line.split(": ", 1)) for line in lines[:-1]] == items


# --------------------------------------------------------------------------- tokens


def test_is_token() -> None:
    assert is_token("websocket")
    assert is_token("permessage-deflate")
    assert is_token("!#$%&'*+-.^_`|~09azAZ")
    for bad in ["", "a b", "a,b", "a;b", 'a"', "a=b", "é", "a/b", "(a)", "a\t"]:
        assert not is_token(bad), bad


def test_parse_token_list() -> None:
    assert parse_token_list("Upgrade") == ["Upgrade"]
    assert parse_token_list("keep-alive, Upgrade") == ["keep-alive", "Upgrade"]
    # Empty elements and optional whitespace are tolerated (RFC 9110 5.6.1).
    assert parse_token_list(" ,, a ,\tb ,") == ["a", "b"]
    assert parse_token_list("") == []
    assert parse_token_list(["a, b", "c"]) == ["a", "b", "c"]
    assert parse_token_list([]) == []


@pytest.mark.parametrize("value", ["a b", "a;b", "chat, sup er", '"quoted"', "a/b", "é"])
def test_parse_token_list_errors(value: str) -> None:
    with pytest.raises(ValueError):
        parse_token_list(value)


# --------------------------------------------------------------------------- extensions


def test_parse_extension_list_simple() -> None:
    assert parse_extension_list("permessage-deflate") == [("permessage-deflate", [])]
    assert parse_extension_list("") == []
    assert parse_extension_list(" , ") == []


def test_parse_extension_list_params() -> None:
    value = "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
    assert parse_extension_list(value) == [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        )
    ]


def test_parse_extension_list_several_offers_and_values() -> None:
    values = [
        "permessage-deflate; server_no_context_takeover, permessage-deflate",
        "x-foo;a=1;b",
    ]
    assert parse_extension_list(values) == [
        ("permessage-deflate", [("server_no_context_takeover", None)]),
        ("permessage-deflate", []),
        ("x-foo", [("a", "1"), ("b", None)]),
    ]


def test_parse_extension_list_quoted_values() -> None:
    assert parse_extension_list('foo; bits="10"') == [("foo", [("bits", "10")])]
    # Escapes are undone and the result must still be a token.
    assert parse_extension_list(r'foo; x="a\b"') == [("foo", [("x", "ab")])]
    # A comma or semicolon inside quotes does not split (but is not a token).
    with pytest.raises(ValueError):
        parse_extension_list('foo; x="a,b"')
    with pytest.raises(ValueError):
        parse_extension_list('foo; x="a;b"')


def test_parse_extension_list_whitespace() -> None:
    assert parse_extension_list("  foo ;  a = 1 ;\tb  ,bar  ") == [
        ("foo", [("a", "1"), ("b", None)]),
        ("bar", []),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "foo; ",  # empty parameter
        "foo;;a",  # empty parameter in the middle
        "; a=1",  # missing name
        "fo o",  # name not a token
        "foo; a b=1",  # parameter name not a token
        "foo; a=",  # empty value
        "foo; a=b c",  # value not a token
        'foo; a="unterminated',
        'foo; a="x"y"',  # stray quote
        'foo; a="x\\"',  # dangling escape (the quote is escaped)
        'foo; a=""',  # empty quoted string is not a token
        'foo; a="sp ace"',  # quoted value must be a token once unquoted
        "foo; a=é",
    ],
)
def test_parse_extension_list_errors(value: str) -> None:
    with pytest.raises(ValueError):
        parse_extension_list(value)


def test_serialize_extension_list() -> None:
    offers = [
        (
            "permessage-deflate",
            [("client_max_window_bits", None), ("server_max_window_bits", "10")],
        ),
        ("x-foo", []),
    ]
    text = serialize_extension_list(offers)
    assert text == ("permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-foo")
    assert serialize_extension_list([]) == ""


_tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~", min_size=1)
_offers = st.lists(
    st.tuples(_tokens, st.lists(st.tuples(_tokens, st.none() | _tokens), max_size=4)),
    max_size=4,
)


@given(_offers)
def test_extension_list_round_trip(offers: list[tuple[str, list[tuple[str, str | None]]]]) -> None:
    assert parse_extension_list(serialize_extension_list(offers)) == offers


@given(st.lists(_tokens, max_size=6))
def test_token_list_round_trip(tokens: list[str]) -> None:
    assert parse_token_list(", ".join(tokens)) == tokens
