"""Unit tests of the hub's wire protocols (``wskit.hub.wire``)."""

import dataclasses
import json
from typing import Any

import msgspec
import pytest

from wskit.hub.wire import (
    RESERVED_EVENTS,
    Cancel,
    Event,
    IrisProtocol,
    IrisValue,
    Result,
    WireError,
    WireProtocol,
    WsWrapperProtocol,
)

WS = WsWrapperProtocol()
IRIS = IrisProtocol()
PREFIX = "iris-websocket-message:"

# --------------------------------------------------------------------------- ws-wrapper: decode


@pytest.mark.parametrize(
    ("message", "packet"),
    [
        ('{"a":["ev",1,"two",null]}', Event("ev", (1, "two", None))),
        ('{"a":["ev"],"c":"chat"}', Event("ev", (), "chat")),
        ('{"a":["ev",{"k":[1]}],"c":"chat","i":7}', Event("ev", ({"k": [1]},), "chat", 7)),
        ('{"a":["ev"],"i":"req-1"}', Event("ev", (), None, "req-1")),
        ('{"a":["ev"],"ws-wrapper":true}', Event("ev", ())),
        ('{"a":["ev"],"c":null}', Event("ev", ())),
        (b'{"a":["bytes are fine"]}', Event("bytes are fine", ())),
        ('{"i":3,"d":{"ok":true}}', Result(3, data={"ok": True})),
        ('{"i":3,"d":null}', Result(3)),
        ('{"i":3}', Result(3)),  # ws-wrapper drops "d" when it is undefined
        ('{"i":"s","d":1}', Result("s", data=1)),
        ('{"i":3,"e":"nope"}', Result(3, error="nope", is_error=True)),
        ('{"i":3,"e":null}', Result(3, error=None, is_error=True)),
        ('{"i":3,"e":0}', Result(3, error=0, is_error=True)),
        ('{"i":3,"e":false,"d":1}', Result(3, error=False, is_error=True)),
        (
            '{"i":3,"e":{"message":"m"},"_":1}',
            Result(3, error={"message": "m"}, is_error=True, error_object=True),
        ),
        ('{"i":3,"e":{"message":"m"}}', Result(3, error={"message": "m"}, is_error=True)),
        ('{"i":3,"x":1}', Cancel(3)),
        ('{"i":3,"x":1,"e":"x wins"}', Cancel(3)),
    ],
)
def test_ws_wrapper_decodes(message: str | bytes, packet: object) -> None:
    assert WS.decode(message) == packet


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "",
        "[1,2]",
        "42",
        "null",
        '"a string"',
        "{}",
        '{"a":["ev"],"ws-wrapper":false}',
        '{"i":1,"d":1,"ws-wrapper":false}',
        '{"a":[]}',
        '{"a":[42]}',
        '{"a":"ev"}',
        '{"a":{"0":"ev"}}',
        '{"a":["ev"],"c":5}',
        '{"a":["ev"],"i":[1]}',
        '{"a":["ev"],"i":1.5}',
        '{"d":1}',
        '{"e":"no id"}',
        '{"i":true,"d":1}',
        '{"a":["ev"],"i":true}',  # an id is an int or a string, never a bool
        '{"a":["ev"],"i":false}',
        '{"i":false,"x":1}',
        '{"i":null,"d":1}',
        b"\xff\xfe",
    ],
)
def test_ws_wrapper_ignores(message: str | bytes) -> None:
    assert WS.decode(message) is None


# --------------------------------------------------------------------------- ws-wrapper: encode


def test_ws_wrapper_encodes_compact_json() -> None:
    assert WS.encode_event("ev", (1, "é", None)) == '{"a":["ev",1,"é",null]}'
    assert WS.encode_event("ev", (), "chat") == '{"c":"chat","a":["ev"]}'
    assert WS.encode_request(5, "ask", (True,)) == '{"i":5,"a":["ask",true]}'
    assert WS.encode_request(6, "ask", (), "chat") == '{"i":6,"c":"chat","a":["ask"]}'
    assert WS.encode_result(Result(5, data=[1])) == '{"i":5,"d":[1]}'
    assert WS.encode_result(Result(5)) == '{"i":5,"d":null}'
    assert WS.encode_result(Result(5, error="no", is_error=True)) == '{"i":5,"e":"no"}'
    assert (
        WS.encode_result(Result(5, error={"message": "m"}, is_error=True, error_object=True))
        == '{"i":5,"e":{"message":"m"},"_":1}'
    )
    assert WS.encode_result(Result(5, error=None, is_error=True)) == '{"i":5,"e":null}'
    assert WS.encode_cancel(5) == '{"i":5,"x":1}'


@dataclasses.dataclass
class Box:
    size: int
    tags: set[str]


class Shape(msgspec.Struct):
    sides: int


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_ws_wrapper_refuses_to_encode_reserved_names_on_the_default_channel(name: str) -> None:
    # The npm client drops such an event or request unread.
    with pytest.raises(ValueError, match="reserved event name"):
        WS.encode_event(name, (1,))
    with pytest.raises(ValueError, match="reserved event name"):
        WS.encode_request(1, name, ())
    # On a named channel they are ordinary names.
    assert json.loads(WS.encode_event(name, (1,), "chat")) == {"c": "chat", "a": [name, 1]}
    assert json.loads(WS.encode_request(2, name, (), "chat")) == {"i": 2, "c": "chat", "a": [name]}


def test_ws_wrapper_encodes_dataclasses_structs_and_sets() -> None:
    message = WS.encode_event("ev", (Box(2, {"a"}), Shape(3), (1, 2), frozenset([4])))
    assert json.loads(message) == {
        "a": ["ev", {"size": 2, "tags": ["a"]}, {"sides": 3}, [1, 2], [4]]
    }
    with pytest.raises(TypeError):
        WS.encode_event("ev", (object(),))


@pytest.mark.parametrize(
    "packet",
    [
        Event("ev", (1, [2], {"3": 4})),
        Event("ev", (), "chat", 9),
        Result(9, data="x"),
        Result(9, error="plain", is_error=True),
        Result(9, error={"message": "m"}, is_error=True, error_object=True),
        Cancel(9),
    ],
)
def test_ws_wrapper_round_trips(packet: Event | Result | Cancel) -> None:
    if isinstance(packet, Event):
        if packet.request_id is None:
            message = WS.encode_event(packet.name, packet.args, packet.channel)
        else:
            assert isinstance(packet.request_id, int)
            message = WS.encode_request(packet.request_id, packet.name, packet.args, packet.channel)
    elif isinstance(packet, Result):
        message = WS.encode_result(packet)
    else:
        message = WS.encode_cancel(packet.request_id)
    assert WS.decode(message) == packet


def test_ws_wrapper_takes_other_json_functions() -> None:
    calls: list[str] = []

    def dumps(value: Any) -> str:
        calls.append("dumps")
        return msgspec.json.encode(value).decode()

    def loads(message: str | bytes) -> Any:
        calls.append("loads")
        try:
            return msgspec.json.decode(message)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None

    protocol = WsWrapperProtocol(dumps=dumps, loads=loads)
    assert protocol.decode(protocol.encode_event("ev", (1,))) == Event("ev", (1,))
    assert protocol.decode("not json") is None
    assert calls == ["dumps", "loads", "loads"]


# --------------------------------------------------------------------------- iris


@pytest.mark.parametrize(
    ("message", "name", "value"),
    [
        (f"{PREFIX}chat;0;hello", "chat", IrisValue(0, "hello")),
        (f"{PREFIX}chat;0;a;b;c", "chat", IrisValue(0, "a;b;c")),
        (f"{PREFIX}chat;0;", "chat", IrisValue(0, "")),
        (f"{PREFIX}n;1;42", "n", IrisValue(1, "42")),
        (f"{PREFIX}b;2;true", "b", IrisValue(2, "true")),
        (f"{PREFIX}raw;3;\x00\xff", "raw", IrisValue(3, "\x00\xff")),
        (f'{PREFIX}doc;4;{{"a":1}}', "doc", IrisValue(4, '{"a":1}')),
        (f"{PREFIX}chat;0;hello".encode(), "chat", IrisValue(0, "hello")),
    ],
)
def test_iris_decodes(message: str | bytes, name: str, value: IrisValue) -> None:
    assert IRIS.decode(message) == Event(name, (value,))


@pytest.mark.parametrize(
    "message",
    [
        "hello",  # a native message
        f"{PREFIX}",
        f"{PREFIX}chat",
        f"{PREFIX};0;no event",
        f"{PREFIX}chat;0",
        f"{PREFIX}chat;x;bad tag",
        f"{PREFIX}chat;-1;bad tag",
        f"{PREFIX}chat;5;unknown tag",
        f"{PREFIX}chat;01;not written so",
        f"{PREFIX}chat;²;not ascii",
        f"{PREFIX}chat;{'1' * 4400};x",  # int() would raise: over 4,300 digits
        "other-prefix:chat;0;hello",
        b"\xff\xfe",
    ],
)
def test_iris_leaves_native_messages(message: str | bytes) -> None:
    assert IRIS.decode(message) is None


@pytest.mark.parametrize(
    ("args", "encoded"),
    [
        (("hello",), "chat;0;hello"),
        ((42,), "chat;1;42"),
        ((True,), "chat;2;true"),
        ((False,), "chat;2;false"),
        ((b"\x00\xff",), "chat;3;\x00\xff"),
        ((bytearray(b"ab"),), "chat;3;ab"),
        (({"a": [1, "é"]},), 'chat;4;{"a":[1,"é"]}'),
        (([1, 2],), "chat;4;[1,2]"),
        ((2.5,), "chat;4;2.5"),
        ((None,), "chat;4;null"),
        ((), "chat;0;"),
    ],
)
def test_iris_encodes_by_python_type(args: tuple[Any, ...], encoded: str) -> None:
    message = IRIS.encode_event("chat", args)
    assert message == PREFIX + encoded
    decoded = IRIS.decode(message)
    assert isinstance(decoded, Event) and decoded.name == "chat"


def test_iris_limits_and_flags() -> None:
    with pytest.raises(ValueError, match="no channels"):
        IRIS.encode_event("chat", ("x",), "room")
    with pytest.raises(ValueError, match="at most one value"):
        IRIS.encode_event("chat", (1, 2))
    with pytest.raises(NotImplementedError):
        IRIS.encode_request(1, "ask", ())
    with pytest.raises(NotImplementedError):
        IRIS.encode_result(Result(1))
    with pytest.raises(NotImplementedError):
        IRIS.encode_cancel(1)
    assert (IRIS.supports_requests, IRIS.client_id_room) == (False, True)
    assert (WS.supports_requests, WS.client_id_room) == (True, False)


def test_iris_custom_prefix() -> None:
    protocol = IrisProtocol(prefix="app:")
    assert protocol.encode_event("ev", ("x",)) == "app:ev;0;x"
    assert protocol.decode("app:ev;1;5") == Event("ev", (IrisValue(1, "5"),))
    assert protocol.decode(f"{PREFIX}ev;1;5") is None


@pytest.mark.parametrize(
    ("value", "natural"),
    [
        (IrisValue(0, "42"), "42"),
        (IrisValue(1, "42"), 42),
        (IrisValue(1, "-3"), -3),
        (IrisValue(1, "3.25"), 3.25),  # the seed client tags floats as int
        (IrisValue(1, "true"), True),  # ... and booleans
        (IrisValue(1, "false"), False),
        (IrisValue(1, "abc"), "abc"),
        (IrisValue(2, "true"), True),
        (IrisValue(2, "false"), False),
        (IrisValue(3, "bytes"), "bytes"),
        (IrisValue(4, '{"a":[1]}'), {"a": [1]}),
        (IrisValue(4, "not json"), "not json"),
        (IrisValue(9, "unknown tag"), "unknown tag"),
    ],
)
def test_iris_value_natural(value: IrisValue, natural: Any) -> None:
    result = value.natural()
    assert result == natural
    assert type(result) is type(natural)


def test_base_protocol_is_abstract() -> None:
    base = WireProtocol()
    with pytest.raises(NotImplementedError):
        base.decode("x")
    with pytest.raises(NotImplementedError):
        base.encode_event("ev", ())
    with pytest.raises(NotImplementedError):
        base.encode_request(1, "ev", ())
    with pytest.raises(NotImplementedError):
        base.encode_result(Result(1))
    with pytest.raises(NotImplementedError):
        base.encode_cancel(1)


def test_packets_are_frozen() -> None:
    event = Event("ev", ())
    with pytest.raises(AttributeError):
        event.name = "other"  # type: ignore[misc]


def test_both_json_encoders_write_the_same_values() -> None:
    """msgspec's encoder (when installed) and the stdlib's agree on what the hub sends."""
    import dataclasses
    import enum
    import json

    from wskit.hub import wire

    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int
        y: list[int]

    value = {"a": ["ev", Point(1, [2]), Color.RED, (1, 2), b"\x00\xff", "é", None, 1.5, True]}
    fast = wire._fastest_dumps()
    assert fast is not wire._compact_dumps  # msgspec is in the test extras
    assert json.loads(fast(value)) == json.loads(wire._compact_dumps(value))
    assert json.loads(fast(value))["a"][4] == "AP8="


def test_dates_times_uuids_and_decimals_go_out_as_msgspec_writes_them() -> None:
    import datetime
    import decimal
    import uuid

    from wskit.hub import wire

    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    values = [
        datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        datetime.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=plus_two),
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        datetime.date(2024, 1, 2),
        datetime.time(3, 4, tzinfo=datetime.UTC),
        uuid.UUID(int=1),
        decimal.Decimal("1.50"),
    ]
    expected = [
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05.123000+02:00",
        "2024-01-02T03:04:05",
        "2024-01-02",
        "03:04:00Z",
        "00000000-0000-0000-0000-000000000001",
        "1.50",
    ]
    assert json.loads(wire._compact_dumps(values)) == expected
    assert json.loads(wire._fastest_dumps()(values)) == expected
    assert msgspec.to_builtins(values) == expected


# --------------------------------------------------------------------------- decoding bounds


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("as_bytes", [False, True])
def test_ws_wrapper_refuses_messages_nested_too_deeply(as_bytes: bool) -> None:
    protocol = WsWrapperProtocol(max_depth=10)

    def decode(obj: Any) -> Any:
        text = json.dumps(obj)
        return protocol.decode(text.encode() if as_bytes else text)

    # {"i":..,"a":[name, arg]} is 2 deep: an argument may nest 8 more.
    assert decode({"i": 1, "a": ["ev", nested(7)]}) == Event("ev", (nested(7),), None, 1)
    with pytest.raises(WireError, match="nested deeper than 10 levels") as caught:
        decode({"i": 7, "a": ["ev", nested(9)]})
    assert caught.value.request_id == 7
    with pytest.raises(WireError) as caught:
        decode({"a": ["ev", {"k": nested(9)}]})
    assert caught.value.request_id is None
    # Far deeper than the JSON decoder's own stack: refused all the same.
    with pytest.raises(WireError, match="nested deeper"):
        protocol.decode("[" * 100_000 + "]" * 100_000)
    # Brackets inside strings are not nesting.
    assert decode({"a": ["ev", "[[[[[[[[[[[[[[[[[[[[[["]}) is not None


def test_ws_wrapper_refuses_messages_with_too_many_values() -> None:
    protocol = WsWrapperProtocol(max_items=100)
    assert protocol.decode(json.dumps({"i": 1, "a": ["ev", list(range(90))]})) is not None
    with pytest.raises(WireError, match="more than 100 values") as caught:
        protocol.decode(json.dumps({"i": 2, "a": ["ev", [[]] * 101]}))
    assert caught.value.request_id == 2
    # Commas in strings count for nothing once the message is walked.
    assert protocol.decode(json.dumps({"a": ["ev", "," * 500]})) is not None
    assert WsWrapperProtocol(max_items=None).decode(json.dumps({"a": ["ev", [0] * 500]}))


def test_ws_wrapper_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        WsWrapperProtocol(max_depth=2)


def test_iris_json_value_too_deep_for_the_decoder_is_a_bad_argument() -> None:
    # Deeper than json's own stack: a ValueError (the client's bad argument,
    # answered as such by the hub), not a RecursionError from the hub's loop.
    value = IrisValue(IrisProtocol.JSON, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deep"):
        value.natural()
    assert IrisValue(IrisProtocol.JSON, "[[1]]").natural() == [[1]]
