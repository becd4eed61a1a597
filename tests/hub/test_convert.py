"""Unit tests of typed handlers (``wskit.hub.convert``)."""

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

import msgspec
import pytest

import wskit.hub.convert as convert_module
from hub.hub_support import SECRET, Account, StructAccount
from wskit.hub import Client
from wskit.hub.convert import ConversionError, convert, short_repr, signature_of, to_builtins
from wskit.hub.wire import IrisProtocol, IrisValue


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Inner:
    n: int


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    items: list[Inner] = dataclasses.field(default_factory=list)
    note: str | None = None
    hidden: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass
class Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("must not be negative")


class Movie(TypedDict):
    title: str
    year: int
    rating: NotRequired[float]


class Partial(TypedDict, total=False):
    a: int


class User(msgspec.Struct):
    name: str
    age: int = 0


# --------------------------------------------------------------------------- convert: accepted


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        ("s", str, "s"),
        (3, int, 3),
        (3.0, int, 3),  # a JavaScript number that happens to be whole
        (3, float, 3.0),
        (2.5, float, 2.5),
        (True, bool, True),
        (None, None, None),
        (None, type(None), None),
        ("AAH/", bytes, b"\x00\x01\xff"),  # base64, as the hub sends bytes
        ("", bytes, b""),
        ({"any": [1]}, Any, {"any": [1]}),
        ([1, 2], list[int], [1, 2]),
        ([1, 2], list, [1, 2]),
        ([[1], [2, 3]], list[list[int]], [[1], [2, 3]]),
        ([1, "a"], tuple[int, str], (1, "a")),
        ([1, 2, 3], tuple[int, ...], (1, 2, 3)),
        ([1, 1, 2], set[int], {1, 2}),
        ([1], frozenset[int], frozenset({1})),
        ({"a": 1.5, "b": 2}, dict[str, float], {"a": 1.5, "b": 2.0}),
        ({"a": [True]}, dict[str, list[bool]], {"a": [True]}),
        ({"a": 1}, dict, {"a": 1}),
        (None, Optional[int], None),  # noqa: UP045 - the typing spelling is supported too
        (5, int | None, 5),
        ("x", Union[int, str], "x"),  # noqa: UP007
        ("red", Color, Color.RED),
        ("b", Literal["a", "b"], "b"),
        (4, Annotated[int, "meta"], 4),
        ({"name": "n", "inner": {"n": 1}}, Outer, Outer("n", Inner(1))),
        (
            {"name": "n", "inner": {"n": 1}, "items": [{"n": 2}], "note": "x", "extra": 0},
            Outer,
            Outer("n", Inner(1), [Inner(2)], "x"),
        ),
        ({"title": "T", "year": 1}, Movie, {"title": "T", "year": 1}),
        ({"title": "T", "year": 1, "rating": 9}, Movie, {"title": "T", "year": 1, "rating": 9.0}),
        ({"title": "T", "year": 1, "unknown": 0}, Movie, {"title": "T", "year": 1}),
        ({}, Partial, {}),
        ({"name": "u"}, User, User("u")),
        ({"name": "u", "age": 3}, User, User("u", 3)),
    ],
)
def test_convert_accepts(value: Any, hint: Any, expected: Any) -> None:
    result = convert(value, hint, "arg")
    assert result == expected
    assert type(result) is type(expected)


# --------------------------------------------------------------------------- convert: refused


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ("3", int, "argument 'arg': expected int, got str"),
        (True, int, "argument 'arg': expected int, got bool"),
        (3.5, int, "argument 'arg': expected int, got float"),
        ("3.5", float, "argument 'arg': expected float, got str"),
        (True, float, "argument 'arg': expected float, got bool"),
        (1, bool, "argument 'arg': expected bool, got int"),
        (1, str, "argument 'arg': expected str, got int"),
        (None, str, "argument 'arg': expected str, got null"),
        (0, None, "argument 'arg': expected None, got int"),
        (5, bytes, "argument 'arg': expected bytes, got int"),
        ("QUFILw=", bytes, "argument 'arg': not valid base64"),
        ("not base64!", bytes, "argument 'arg': not valid base64"),
        ({"a": 1}, list[int], "argument 'arg': expected list, got dict"),
        ([1, "x"], list[int], "argument 'arg[1]': expected int, got str"),
        ([1], tuple[int, int], "argument 'arg': expected 2 items, got 1"),
        ([[1]], set[list[int]], "argument 'arg': unhashable type: 'list'"),
        ([1], dict[str, int], "argument 'arg': expected dict, got list"),
        ({"a": "x"}, dict[str, int], "argument 'arg.a': expected int, got str"),
        ("x", int | None, "argument 'arg': str fits none of"),
        ("green", Color, "argument 'arg': 'green' is not a Color"),
        ("c", Literal["a", "b"], "argument 'arg': 'c' is not one of ('a', 'b')"),
        ("n", Outer, "argument 'arg': expected Outer, got str"),
        ({"name": "n"}, Outer, "argument 'arg': missing field 'inner'"),
        (
            {"name": "n", "inner": {"n": "1"}},
            Outer,
            "argument 'arg.inner.n': expected int, got str",
        ),
        (
            {"name": "n", "inner": {"n": 1}, "items": [{"n": 1}, {}]},
            Outer,
            "argument 'arg.items[1]': missing field 'n'",
        ),
        ({"value": -1}, Checked, "argument 'arg': not a valid Checked"),
        ({"title": "T"}, Movie, "argument 'arg': missing key 'year'"),
        ({"title": "T", "year": "1"}, Movie, "argument 'arg.year': expected int, got str"),
        ([], Movie, "argument 'arg': expected Movie, got list"),
        ({"age": 1}, User, "argument 'arg': Object missing required field `name`"),
        ({"name": 1}, User, "argument 'arg': Expected `str`, got `int`"),
        (1, complex, "argument 'arg': expected complex, got int"),
    ],
)
def test_convert_refuses_with_a_clear_message(value: Any, hint: Any, message: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert(value, hint, "arg")
    assert message in str(error.value)


def test_convert_refuses_unsupported_hints() -> None:
    with pytest.raises(ConversionError, match="unsupported type hint"):
        convert(1, "NotAType", "arg")


@dataclasses.dataclass
class Converting:
    value: Any

    def __post_init__(self) -> None:
        self.value = convert(self.value, int, "value")


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        ({"number": -1}, Account, "argument 'arg': not a valid Account"),
        ({"number": -1}, StructAccount, "argument 'arg': not a valid StructAccount"),
        ([{"number": -1}], list[Account], "argument 'arg[0]': not a valid Account"),
    ],
)
def test_a_types_own_exception_text_is_not_in_the_message(
    value: Any, hint: Any, message: str
) -> None:
    with pytest.raises(ConversionError) as error:
        convert(value, hint, "arg")
    assert str(error.value) == message
    # Kept for the server's eyes: the cause, and the detail a debug hub shows.
    assert isinstance(error.value.__cause__, ValueError)
    assert error.value.detail == f"ValueError: {SECRET}"


def test_wskits_own_messages_have_no_detail_and_pass_through_a_post_init() -> None:
    with pytest.raises(ConversionError) as error:
        convert({"value": "x"}, Converting, "arg")
    assert str(error.value) == "argument 'value': expected int, got str"
    assert error.value.detail is None
    with pytest.raises(ConversionError) as error:
        convert({"age": 1}, User, "arg")  # msgspec's message, from the schema
    assert error.value.detail is None


HUGE = "x" * 1_000_000


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (IrisValue(1, HUGE), int),
        (IrisValue(0, HUGE), float),
        (IrisValue(0, HUGE), bool),
        (HUGE, Literal["a", "b"]),
        (HUGE, Color),
        ({HUGE: "x"}, dict[str, int]),
        ({"a": {HUGE: [HUGE]}}, dict[str, dict[str, list[int]]]),
        ({HUGE: 1}, dict[Literal["k"], int]),
        ([[HUGE] * 1000], Literal["a"]),
        ({"name": HUGE}, dict[str, Literal["a"]]),
        (HUGE, Literal[1]),
        ({"name": "u", "age": HUGE}, User),
        (HUGE, msgspec.Struct),
        (1e308, Literal[1]),
        (10**5000, Literal[1]),  # an int of over 4,300 digits has no repr
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, type) else None,
)
def test_messages_quote_a_clients_values_cut_short(value: Any, hint: Any) -> None:
    with pytest.raises(ConversionError) as error:
        convert(value, hint, "arg")
    assert len(str(error.value)) < 500


def test_msgspec_messages_are_cut_short() -> None:
    class Choice(msgspec.Struct):
        pick: Literal["a", "b"]

    with pytest.raises(ConversionError) as error:
        convert({"pick": HUGE}, Choice, "arg")
    message = str(error.value)
    assert message.startswith("argument 'arg': Invalid enum value 'xxx")
    assert len(message) < 500


def test_short_repr() -> None:
    assert short_repr("abc") == "'abc'"
    assert short_repr(42) == "42"
    shortened = short_repr("a" * 30 + "b" * 1_000_000 + "c" * 30)
    assert shortened.startswith("'aaaa") and shortened.endswith("cccc'")
    assert "..." in shortened and len(shortened) <= 70
    assert len(short_repr([[["deep" * 100] * 100] * 100] * 100)) < 300
    assert len(short_repr(dict.fromkeys(range(1000), "v" * 1000))) < 300
    assert short_repr(10**5000) == "<int>"


def test_an_iris_json_value_too_deep_is_a_conversion_error() -> None:
    deep = IrisValue(IrisProtocol.JSON, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConversionError, match="argument 'arg': JSON value nested too deep"):
        convert(deep, list[Any], "arg")

    def untyped(client: Client, doc: Any) -> None: ...

    with pytest.raises(ConversionError, match="argument 'doc': JSON value nested too deep"):
        signature_of(untyped, Client).bind(CLIENT, [deep])


# --------------------------------------------------------------------------- iris values


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        (IrisValue(1, "42"), int, 42),
        (IrisValue(0, "42"), int, 42),
        (IrisValue(1, "42.0"), int, 42),
        (IrisValue(1, "3.25"), float, 3.25),
        (IrisValue(1, "7"), float, 7.0),
        # Exactly, not through float (which gives 100000000000000004764729344).
        (IrisValue(1, "99999999999999999999999999"), int, 99999999999999999999999999),
        (IrisValue(1, " -12"), int, -12),
        (IrisValue(1, "3.0"), int, 3),
        (IrisValue(1, "42"), str, "42"),  # a numeric string tagged as int
        (IrisValue(1, "true"), bool, True),  # a JavaScript true tagged as int
        (IrisValue(2, "false"), bool, False),
        (IrisValue(1, "1"), bool, True),
        (IrisValue(0, ""), bool, False),
        (IrisValue(0, ""), str, ""),
        (IrisValue(3, "\x00\xff"), bytes, b"\x00\xff"),
        (IrisValue(4, '{"a":1}'), dict[str, int], {"a": 1}),
        (IrisValue(4, '{"inner":{"n":1},"name":"x"}'), Outer, Outer("x", Inner(1))),
        (IrisValue(4, '{"name":"u"}'), User, User("u")),
        (IrisValue(1, "5"), Any, 5),
        (IrisValue(4, "[1,2]"), list[int], [1, 2]),
    ],
)
def test_iris_values_follow_the_hint(value: IrisValue, hint: Any, expected: Any) -> None:
    result = convert(value, hint, "arg")
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint", "message"),
    [
        (IrisValue(1, "3.5"), int, "argument 'arg': '3.5' is not a int"),
        (IrisValue(0, "abc"), int, "argument 'arg': 'abc' is not a int"),
        (IrisValue(0, "abc"), float, "argument 'arg': 'abc' is not a float"),
        (IrisValue(0, "maybe"), bool, "argument 'arg': 'maybe' is not a bool"),
        (IrisValue(4, '{"a":"x"}'), dict[str, int], "argument 'arg.a': expected int, got str"),
    ],
)
def test_iris_values_that_do_not_fit(value: IrisValue, hint: Any, message: str) -> None:
    with pytest.raises(ConversionError) as error:
        convert(value, hint, "arg")
    assert message in str(error.value)


# --------------------------------------------------------------------------- handler signatures


CLIENT = object.__new__(Client)


def test_bind_untyped_handlers_pass_values_through() -> None:
    signature = signature_of(lambda a, b=2: None, Client)
    assert not signature.is_async
    assert signature.bind(CLIENT, [1, "x"]) == [1, "x"]
    assert signature.bind(CLIENT, [1]) == [1]
    with pytest.raises(ConversionError, match="missing argument 'a'"):
        signature.bind(CLIENT, [])
    with pytest.raises(ConversionError, match="expected at most 2 arguments, got 3"):
        signature.bind(CLIENT, [1, 2, 3])
    assert signature_of(lambda *rest: None, Client).bind(CLIENT, [1, 2, 3]) == [1, 2, 3]
    # Untyped iris values become their natural Python values.
    assert signature_of(lambda v: None, Client).bind(CLIENT, [IrisValue(1, "5")]) == [5]


def test_bind_injects_the_client_wherever_it_is_declared() -> None:
    def first(client: Client, text: str) -> None: ...

    def middle(a: int, client: Client, b: int = 5) -> None: ...

    def only(client: Client) -> None: ...

    assert signature_of(first, Client).bind(CLIENT, ["hi"]) == [CLIENT, "hi"]
    assert signature_of(middle, Client).bind(CLIENT, [1]) == [1, CLIENT, 5]
    assert signature_of(middle, Client).bind(CLIENT, [1, 2]) == [1, CLIENT, 2]
    assert signature_of(only, Client).bind(CLIENT, []) == [CLIENT]
    with pytest.raises(ConversionError, match="expected at most 0 arguments, got 1"):
        signature_of(only, Client).bind(CLIENT, ["unexpected"])
    with pytest.raises(ConversionError, match="missing argument 'text'"):
        signature_of(first, Client).bind(CLIENT, [])


def test_bind_converts_by_hints_and_varargs() -> None:
    def handler(n: int, *rest: float, flag: bool = False, **extra: Any) -> None: ...

    signature = signature_of(handler, Client)
    bound = signature.bind(CLIENT, [1.0, 2, 3.5])
    assert bound == [1, 2.0, 3.5]
    assert [type(v) for v in bound] == [int, float, float]
    with pytest.raises(ConversionError, match=r"argument '\*1': expected float, got str"):
        signature.bind(CLIENT, [1, 2, "x"])


def test_bind_drops_the_value_of_an_iris_event_a_handler_does_not_take() -> None:
    def bare(client: Client) -> None: ...

    def nothing() -> None: ...

    empty = IrisValue(0, "")
    assert signature_of(bare, Client).bind(CLIENT, [empty]) == [CLIENT]
    assert signature_of(nothing, Client).bind(CLIENT, [empty]) == []
    assert signature_of(lambda v: None, Client).bind(CLIENT, [empty]) == [""]


def test_async_handlers_are_detected() -> None:
    async def coroutine_function() -> None: ...

    class AsyncCallable:
        async def __call__(self) -> None: ...

    assert signature_of(coroutine_function, Client).is_async
    assert signature_of(AsyncCallable(), Client).is_async
    assert not signature_of(lambda: None, Client).is_async


def test_unresolvable_hints_do_not_break_registration() -> None:
    def handler(value: "Missing") -> None:  # type: ignore[name-defined]  # noqa: F821
        ...

    signature = signature_of(handler, Client)
    with pytest.raises(ConversionError, match="unsupported type hint"):
        signature.bind(CLIENT, [1])


# --------------------------------------------------------------------------- to_builtins


def test_to_builtins() -> None:
    assert to_builtins(Outer("n", Inner(1), [Inner(2)])) == {
        "name": "n",
        "inner": {"n": 1},
        "items": [{"n": 2}],
        "note": None,
        "hidden": 0,
    }
    assert to_builtins(Color.BLUE) == "blue"
    assert sorted(to_builtins({3, 1})) == [1, 3]
    assert to_builtins((1, Color.RED, (2,))) == [1, "red", [2]]
    assert to_builtins(b"\x00\xff") == "AP8="  # base64
    assert to_builtins(User("u", 2)) == {"name": "u", "age": 2}
    assert to_builtins({"k": {Color.RED}}) == {"k": ["red"]}
    with pytest.raises(TypeError, match="cannot send a object"):
        to_builtins(object())


# --------------------------------------------------------------------------- dates, UUIDs, decimals

TEXT_TYPE_CASES: list[tuple[Any, Any]] = [
    ("2024-01-02T03:04:05Z", datetime.datetime),
    ("2024-01-02t03:04:05z", datetime.datetime),
    ("2024-01-02 03:04:05", datetime.datetime),
    ("2024-01-02T03:04:05.123+02:00", datetime.datetime),
    ("2024-01-02T03:04:05-0130", datetime.datetime),
    ("2024-01-02T03:04:05-00:00", datetime.datetime),
    ("2024-01-02T03:04:05.1234565Z", datetime.datetime),  # rounded half up
    ("2024-01-02T03:04:05.123456789Z", datetime.datetime),
    ("2024-12-31T23:59:59.9999996Z", datetime.datetime),  # rounds into the next year
    ("2024-01-02T03:04", datetime.datetime),
    ("2024-01-02T03:04:05+02", datetime.datetime),
    ("20240102T030405", datetime.datetime),
    ("2024-01-02T24:00:00", datetime.datetime),
    ("2024-13-02T03:04:05", datetime.datetime),
    ("2024-01-02", datetime.date),
    ("2024-1-02", datetime.date),
    ("2024-02-30", datetime.date),
    ("03:04:05", datetime.time),
    ("03:04:05.5+01:00", datetime.time),
    ("03:04", datetime.time),
    ("c0a8f6f4-5a6b-4c9e-9f7e-1234567890ab", uuid.UUID),
    ("C0A8F6F45A6B4C9E9F7E1234567890AB", uuid.UUID),
    ("{c0a8f6f4-5a6b-4c9e-9f7e-1234567890ab}", uuid.UUID),
    ("c0a8f6f4-5a6b4c9e-9f7e-1234567890ab", uuid.UUID),
    ("1.50", decimal.Decimal),
    ("-1e3", decimal.Decimal),
    ("NaN", decimal.Decimal),
    ("one", decimal.Decimal),
    (0.1, decimal.Decimal),
    (3, decimal.Decimal),
    (True, decimal.Decimal),
    (5, datetime.datetime),
    (None, uuid.UUID),
]


def _outcome(value: Any, hint: Any) -> str:
    try:
        return repr(convert(value, hint, "arg"))
    except ConversionError as exc:
        return f"error: {exc}"


class Level(enum.IntEnum):
    LOW = 1


class Shade(enum.Enum):
    DARK = "dark"


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (1, Literal[1]),
        (True, Literal[1]),
        (1.0, Literal[1]),
        ("a", Literal["a", "b"]),
        (None, Literal[None]),
        (1, Level),
        (True, Level),
        (1.0, Level),
        ("dark", Shade),
        ("DARK", Shade),
        (1, Shade),
        ([1], Shade),
    ],
)
def test_enums_and_literals_convert_as_msgspec(value: Any, hint: Any) -> None:
    try:
        expected = repr(msgspec.convert(value, hint))
    except msgspec.ValidationError:
        assert _outcome(value, hint).startswith("error: argument 'arg': ")
    else:
        assert _outcome(value, hint) == expected


@pytest.mark.parametrize(("value", "hint"), TEXT_TYPE_CASES)
def test_dates_uuids_and_decimals_convert_as_msgspec_with_or_without_it(
    value: Any, hint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_msgspec = _outcome(value, hint)
    monkeypatch.setattr(convert_module, "_msgspec_convert", None)
    assert _outcome(value, hint) == with_msgspec
    try:
        expected = repr(msgspec.convert(value, hint))
    except msgspec.ValidationError:
        assert with_msgspec.startswith("error: argument 'arg': ")
    else:
        assert with_msgspec == expected
