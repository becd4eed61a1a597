"""Dispatch (``wskit.hub.dispatch``), live: which handler runs, typed arguments, answers, cancels.

Every test serves a :class:`~wskit.hub.Hub` and talks to it with
:class:`~hub.hub_support.Peer`, a ws-wrapper client written by hand.
"""

import asyncio
import dataclasses
import logging
import re
from typing import Any, Literal, TypedDict

import msgspec
import pytest

from hub.hub_support import (
    SECRET,
    Account,
    Peer,
    StructAccount,
    fresh_log_limits,
    pinging_hub,
    serving,
)
from wskit.hub import Client, ClientError, Hub, Reject
from wskit.hub.dispatch import Answer, MiddlewareOutcome
from wskit.hub.wire import Event

# --------------------------------------------------------------------------- handlers


async def test_handler_exceptions_are_logged_answered_and_the_hub_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh_log_limits()
    hub = pinging_hub()
    errors: list[tuple[str, Exception]] = []
    hub.on("error", lambda client, exc: errors.append((client.id, exc)))

    @hub.on("sync_boom")
    def sync_boom() -> None:
        raise RuntimeError("sync went wrong")

    @hub.on("async_boom")
    async def async_boom() -> None:
        await asyncio.sleep(0)
        raise KeyError("db-password=hunter2")

    @hub.on("event_boom")
    def event_boom() -> None:
        raise ValueError("nobody asked")

    async with serving(hub) as url:
        bad, other = await Peer.open(url), await Peer.open(url)
        with caplog.at_level(logging.ERROR, logger="wskit.hub"):
            answers = [await bad.request("sync_boom"), await bad.request("async_boom")]
            await bad.emit("event_boom")  # an event: logged, nothing answered
            assert await bad.call("ping") == "pong"
            assert bad.backlog == []
        assert await other.call("ping") == "pong"
        # The client reads an error id, never the exception's text...
        error_ids = []
        for answer in answers:
            message = answer["e"]["message"]
            assert re.fullmatch(r"Internal server error \(error [0-9a-f]{8}\)", message)
            assert "went wrong" not in message and "hunter2" not in message
            error_ids.append(message[-9:-1])
        # ...which the log has, with the traceback.
        logged = [r for r in caplog.records if r.exc_info]
        assert [type(r.exc_info[1]) for r in logged] == [RuntimeError, KeyError, ValueError]
        for error_id, record in zip(error_ids, logged, strict=False):
            assert error_id in record.getMessage()
        assert [type(e) for _, e in errors] == [RuntimeError, KeyError, ValueError]
        assert len(hub.clients) == 2
        await bad.close()
        await other.close()


async def test_client_error_and_reject_are_sent_as_raised_and_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = Hub()

    @hub.on("forbidden")
    async def forbidden() -> None:
        raise ClientError("you may not")

    @hub.on("plain")
    def plain() -> None:
        raise Reject({"code": 42})

    async with serving(hub) as url:
        peer = await Peer.open(url)
        with caplog.at_level(logging.DEBUG, logger="wskit.hub"):
            assert await peer.request("forbidden") == {
                "i": 1,
                "e": {"message": "you may not"},
                "_": 1,
            }
            assert await peer.request("plain") == {"i": 2, "e": {"code": 42}}
        assert not [r for r in caplog.records if r.levelno >= logging.INFO]
        await peer.close()


async def test_debug_tells_the_client_the_exception_type_and_text() -> None:
    fresh_log_limits()
    hub = Hub(debug=True)

    @hub.on("boom")
    def boom() -> None:
        raise KeyError("secret")

    async with serving(hub) as url:
        peer = await Peer.open(url)
        message = (await peer.request("boom"))["e"]["message"]
        assert re.fullmatch(r"KeyError: 'secret' \(error [0-9a-f]{8}\)", message)
        hub.debug = False
        message = (await peer.request("boom"))["e"]["message"]
        assert message.startswith("Internal server error (error ")
        await peer.close()


async def test_bad_arguments_are_answered_but_logged_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh_log_limits()
    hub = pinging_hub()

    @hub.on("typed")
    def typed(x: int) -> int:
        return x

    async with serving(hub) as url:
        peer = await Peer.open(url)
        with caplog.at_level(logging.INFO, logger="wskit.hub"):
            for _ in range(100):
                answer = await peer.request("typed", "not a number")
                assert answer["e"]["message"] == "argument 'x': expected int, got str"
        records = [r for r in caplog.records if "bad arguments" in r.getMessage()]
        assert 1 <= len(records) <= 10  # a burst of 5, then 0.2 per second
        await peer.close()


@pytest.mark.parametrize(
    ("hint", "type_name"), [(Account, "Account"), (StructAccount, "StructAccount")]
)
async def test_a_types_own_exception_text_goes_to_the_client_only_with_debug(
    caplog: pytest.LogCaptureFixture, hint: type, type_name: str
) -> None:
    fresh_log_limits()
    hub = pinging_hub()

    def open_account(a: Any) -> int:
        return 1

    open_account.__annotations__["a"] = hint
    hub.on("open_account", open_account)

    async with serving(hub) as url:
        peer = await Peer.open(url)
        with caplog.at_level(logging.DEBUG, logger="wskit.hub"):
            answer = await peer.request("open_account", {"number": -1})
        assert answer["e"] == {"message": f"argument 'a': not a valid {type_name}"}
        # INFO and above: the parameter and the type, never the text.
        info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        assert any(f"not a valid {type_name}" in m for m in info)
        assert not any("s3cret" in m for m in info)
        # DEBUG has it, for the operator who asks.
        debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
        assert any(f"ValueError: {SECRET}" in m for m in debug)
        hub.debug = True
        answer = await peer.request("open_account", {"number": -1})
        assert answer["e"] == {
            "message": f"argument 'a': not a valid {type_name} (ValueError: {SECRET})"
        }
        assert await peer.call("open_account", {"number": 1}) == 1
        await peer.close()


HUGE = "x" * 500_000


async def test_answers_and_log_records_stay_short_whatever_the_client_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fresh_log_limits()
    hub = pinging_hub()
    hub.of("chat")

    @hub.on("typed")
    def typed(x: int, choice: Literal["a", "b"], table: dict[str, int]) -> None: ...

    async with serving(hub) as url:
        peer = await Peer.open(url)
        with caplog.at_level(logging.DEBUG, logger="wskit.hub"):
            answers = [
                await peer.request("typed", HUGE, "a", {}),
                await peer.request("typed", 1, HUGE, {}),
                await peer.request("typed", 1, "a", {HUGE: HUGE}),
                await peer.request("typed", 1, "a", {HUGE: 1, "k": HUGE}),
                await peer.request(HUGE),
                await peer.request(HUGE, channel="chat"),
                await peer.request("ping", channel=HUGE),
            ]
        for answer in answers:
            assert "e" in answer and len(answer["e"]["message"]) < 1000
        assert answers[1]["e"]["message"].startswith("argument 'choice': 'xxxxx")
        assert answers[4]["e"]["message"].startswith("No event listener for 'xxxxx")
        assert answers[6]["e"]["message"].startswith("Channel 'xxxxx")
        assert caplog.records
        assert all(len(r.getMessage()) < 1000 for r in caplog.records)
        assert await peer.call("ping") == "pong"
        await peer.close()


async def test_handler_priority_client_once_on_then_hub_once_on() -> None:
    hub = Hub(id_generator=lambda request: request.query)
    hub.on("who", lambda: "hub on")
    hub.once("who", lambda: "hub once")

    @hub.on("connect")
    def personalize(client: Client) -> None:
        if client.id == "vip":
            client.on("who", lambda: "client on")
            client.once("who", lambda: "client once")

    async with serving(hub) as url:
        vip = await Peer.open(url + "?vip")
        plain = await Peer.open(url + "?plain")
        assert [await vip.call("who") for _ in range(3)] == [
            "client once",
            "client on",
            "client on",
        ]
        # The client's handlers shadowed the hub's: its once is still there.
        assert [await plain.call("who") for _ in range(3)] == ["hub once", "hub on", "hub on"]

        # The same order among four handlers that all exist at once.
        hub.once("who", lambda: "hub once again")
        vip_client = hub.get("vip")
        assert vip_client is not None
        vip_client.once("who", lambda: "client once again")
        assert await vip.call("who") == "client once again"
        assert await vip.call("who") == "client on"
        vip_client.off("who")
        assert await vip.call("who") == "hub once again"
        assert await vip.call("who") == "hub on"
        hub.off("who")
        assert await vip.request("who") == {
            "i": 8,
            "e": {"message": "No event listener for 'who'"},
            "_": 1,
        }
        await vip.close()
        await plain.close()


async def test_requests_answered_by_return_value_sync_and_async() -> None:
    hub = Hub()

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Pair(msgspec.Struct):
        left: str
        right: str

    hub.on("add", lambda a, b: a + b)

    @hub.on("slow_add")
    async def slow_add(a: int, b: int) -> int:
        await asyncio.sleep(0.01)
        return a + b

    hub.on("point", lambda: Point(1, 2))
    hub.on("pair", lambda: Pair("l", "r"))
    hub.on("nothing", lambda: None)
    hub.on("unsendable", lambda: object())

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.request("add", 2, 3) == {"i": 1, "d": 5}
        assert await peer.request("slow_add", 4, 5) == {"i": 2, "d": 9}
        assert await peer.call("point") == {"x": 1, "y": 2}
        assert await peer.call("pair") == {"left": "l", "right": "r"}
        assert await peer.request("nothing") == {"i": 5, "d": None}
        answer = await peer.request("unsendable")
        assert answer["_"] == 1
        # A result that cannot be sent is the server's bug: an error id, logged.
        assert answer["e"]["message"].startswith("Internal server error (error ")
        # Requests run concurrently: a slow async handler does not hold up a fast one.
        slow = await peer.send_request("slow_add", 1, 1)
        fast = await peer.send_request("add", 1, 2)
        first = await peer._read(5)
        assert first == {"i": fast, "d": 3}
        assert await peer.response(slow) == {"i": slow, "d": 2}
        await peer.close()


# --------------------------------------------------------------------------- typed handlers


@dataclasses.dataclass
class Address:
    city: str
    zip: int


@dataclasses.dataclass
class Person:
    name: str
    age: int
    address: Address
    tags: list[str] = dataclasses.field(default_factory=list)


class Movie(TypedDict):
    title: str
    year: int


class Point(msgspec.Struct):
    x: float
    y: float


@dataclasses.dataclass
class Positive:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("must be positive")


async def test_typed_handlers_convert_every_supported_hint() -> None:
    hub = pinging_hub()
    received: dict[str, Any] = {}

    @hub.on("scalars")
    def scalars(s: str, i: int, f: float, b: bool, n: None) -> str:
        received["scalars"] = (s, i, f, b, n)
        return "ok"

    @hub.on("containers")
    def containers(items: list[int], table: dict[str, float], nested: list[dict[str, bool]]) -> str:
        received["containers"] = (items, table, nested)
        return "ok"

    @hub.on("records")
    def records(person: Person, movie: Movie, point: Point) -> str:
        received["records"] = (person, movie, point)
        return "ok"

    @hub.on("who")
    async def who(text: str, client: Client) -> str:
        received["who"] = client
        assert client.conn.request is not None
        return f"{text} from {client.conn.request.path}"

    async with serving(hub) as url:
        peer = await Peer.open(url + "typed")
        assert await peer.call("scalars", "s", 3.0, 2, True, None) == "ok"
        assert received["scalars"] == ("s", 3, 2.0, True, None)
        assert type(received["scalars"][1]) is int and type(received["scalars"][2]) is float

        assert await peer.call("containers", [1, 2], {"a": 1}, [{"x": True}]) == "ok"
        assert received["containers"] == ([1, 2], {"a": 1.0}, [{"x": True}])

        person = {"name": "Ann", "age": 30, "address": {"city": "Oslo", "zip": 150}}
        movie = {"title": "Heat", "year": 1995}
        assert await peer.call("records", person, movie, {"x": 1, "y": 2.5}) == "ok"
        assert received["records"] == (
            Person("Ann", 30, Address("Oslo", 150)),
            {"title": "Heat", "year": 1995},
            Point(1.0, 2.5),
        )
        assert await peer.call("who", "hi") == "hi from /typed"
        assert received["who"] is hub.get(received["who"].id)
        await peer.close()


@pytest.mark.parametrize(
    ("event", "args", "message"),
    [
        ("scalars", ["s", "3", 1.0, True, None], "argument 'i': expected int, got str"),
        ("scalars", ["s", 1, 1.0, 1, None], "argument 'b': expected bool, got int"),
        ("scalars", ["s", 1.5, 1.0, True, None], "argument 'i': expected int, got float"),
        ("scalars", ["s", 1, 1.0, True, 0], "argument 'n': expected None, got int"),
        ("scalars", ["s", 1], "missing argument 'f'"),
        ("scalars", ["s", 1, 1.0, True, None, "extra"], "expected at most 5 arguments"),
        ("records", [{"name": "A", "age": 1}, {}, {}], "missing field 'address'"),
        (
            "records",
            [{"name": "A", "age": 1, "address": {"city": 5, "zip": 1}}, {}, {}],
            "argument 'person.address.city': expected str, got int",
        ),
        (
            "records",
            [{"name": "A", "age": 1, "address": {"city": "x", "zip": 1}}, {"title": "T"}, {}],
            "argument 'movie': missing key 'year'",
        ),
        (
            "records",
            [
                {"name": "A", "age": 1, "address": {"city": "x", "zip": 1}},
                {"title": "T", "year": 1},
                {"x": "far"},
            ],
            "argument 'point'",
        ),
        ("containers", [[1, "2"], {}, []], "argument 'items[1]': expected int, got str"),
        ("containers", [[], {"a": "b"}, []], "argument 'table.a': expected float, got str"),
        ("validated", [{"value": -1}], "argument 'amount': not a valid Positive"),
    ],
)
async def test_conversion_failures_answer_with_the_argument_and_never_stop_the_hub(
    event: str, args: list[Any], message: str
) -> None:
    hub = pinging_hub()
    called: list[str] = []
    errors: list[Exception] = []
    hub.on("error", lambda client, exc: errors.append(exc))

    @hub.on("scalars")
    def scalars(s: str, i: int, f: float, b: bool, n: None) -> None:
        called.append("scalars")

    @hub.on("containers")
    def containers(items: list[int], table: dict[str, float], nested: list[Any]) -> None:
        called.append("containers")

    @hub.on("records")
    def records(person: Person, movie: Movie, point: Point) -> None:
        called.append("records")

    @hub.on("validated")
    def validated(amount: Positive) -> None:
        called.append("validated")

    async with serving(hub) as url:
        peer, other = await Peer.open(url), await Peer.open(url)
        answer = await peer.request(event, *args)
        assert answer["_"] == 1
        assert message in answer["e"]["message"]
        assert called == []
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
        # The same client, and the others, go on.
        assert await peer.call("ping") == "pong"
        assert await other.call("ping") == "pong"
        await peer.emit(event, *args)  # an event with bad arguments is dropped
        assert await peer.call("ping") == "pong"
        assert peer.backlog == [] and called == []
        await peer.close()
        await other.close()


# --------------------------------------------------------------------------- the wire rules, live


async def test_cancel_cancels_the_handler_task() -> None:
    hub = pinging_hub()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @hub.on("long")
    async def long() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    async with serving(hub) as url:
        peer = await Peer.open(url)
        request_id = await peer.send_request("long")
        await asyncio.wait_for(started.wait(), 5)
        await peer.send({"i": request_id, "x": 1})
        await asyncio.wait_for(cancelled.wait(), 5)
        # No answer was sent for the cancelled request.
        assert await peer.call("ping") == "pong"
        assert peer.backlog == []
        (client,) = hub.clients.values()
        assert client.request_tasks == {}
        await peer.close()


async def test_wire_rules_missing_handlers_channels_and_reserved_names() -> None:
    hub = pinging_hub()
    hub.of("chat")
    calls: list[str] = []
    connects: list[str] = []
    native: list[Any] = []
    hub.on("connect", lambda client: connects.append(client.id))
    hub.on_native(lambda client, message: native.append(message))

    @hub.on("connect")
    def reserved_handlers(client: Client) -> None:
        # Registered as events on the client; the wire must never reach them.
        for name in ("open", "connect", "message", "error", "close", "disconnect"):
            client.on(name, lambda name=name: calls.append(name))
        client.of("chat").on("open", lambda: "channel open is an ordinary event")

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.request("nope") == {
            "i": 1,
            "e": {"message": "No event listener for 'nope'"},
            "_": 1,
        }
        assert await peer.request("nope", channel="chat") == {
            "i": 2,
            "e": {"message": "No event listener for 'nope' on channel 'chat'"},
            "_": 1,
        }
        assert await peer.request("nope", channel="nowhere") == {
            "i": 3,
            "e": {"message": "Channel 'nowhere' does not exist"},
            "_": 1,
        }
        for name in ("open", "connect", "message", "error", "close", "disconnect"):
            await peer.emit(name)
            answer = await peer.request(name)
            assert answer["_"] == 1 and "reserved" in answer["e"]["message"]
        assert await peer.call("open", channel="chat") == "channel open is an ordinary event"

        # Dropped or ignored: events without handlers, unknown channels, junk.
        await peer.emit("nope")
        await peer.emit("nope", channel="nowhere")
        await peer.send({"ws-wrapper": False, "a": ["ping"], "i": 99})
        await peer.send("not json")
        await peer.send({"i": 12345, "d": "an answer nobody asked for"})
        await peer.send({"i": 12346, "e": "a rejection nobody asked for"})
        await peer.send({"a": []})
        await peer.send({"a": [42]})
        await peer.send([1, 2])
        await peer.send({"x": 1, "i": 777})  # cancelling nothing
        assert await peer.call("ping") == "pong"
        assert peer.backlog == []
        assert calls == []
        assert len(connects) == 1
        assert '{"ws-wrapper": false, "a": ["ping"], "i": 99}' in native
        assert "not json" in native
        await peer.close()


# ------------------------------------------------------------------ middleware and catch-all


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_middleware_sees_every_event_in_order_and_may_stop_answer_or_change_it(
    asynchronous: bool,
) -> None:
    hub = pinging_hub()
    seen: list[tuple[str, str, tuple[Any, ...]]] = []
    handled: list[tuple[str, int]] = []

    def first(client: Client, event: Event) -> MiddlewareOutcome:
        seen.append(("first", event.name, event.args))
        if event.name == "forbidden":
            return None
        if event.name == "cached":
            return Answer("from the cache")
        if event.name == "rejected":
            raise ClientError("not for you")
        if event.name == "add":  # change the arguments
            return event._replace(args=tuple(n * 10 for n in event.args))
        return event

    def second(client: Client, event: Event) -> MiddlewareOutcome:
        seen.append(("second", event.name, event.args))
        return event

    async def later(client: Client, event: Event) -> MiddlewareOutcome:
        await asyncio.sleep(0)
        return second(client, event)

    hub.use(first)
    hub.use(later if asynchronous else second)

    @hub.on("add")
    def add(a: int, b: int) -> int:
        return a + b

    @hub.on("note")
    def note(n: int) -> None:
        handled.append(("note", n))

    @hub.of("chat").on("add")
    def add_on_chat(a: int) -> int:
        return a

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("add", 1, 2) == 30
        assert await peer.request("forbidden") == {
            "i": 2,
            "e": {"message": "Event 'forbidden' was refused"},
            "_": 1,
        }
        assert await peer.call("cached") == "from the cache"
        assert (await peer.request("rejected"))["e"] == {"message": "not for you"}
        assert await peer.call("add", 4, channel="chat") == 40
        await peer.emit("note", 7)
        await peer.emit("forbidden")
        assert await peer.call("ping") == "pong"
        assert handled == [("note", 7)]
        # Each event meets the middleware in order (async ones may interleave events).
        assert [(name, args) for where, name, args in seen if where == "first"] == [
            ("add", (1, 2)),
            ("forbidden", ()),
            ("cached", ()),
            ("rejected", ()),
            ("add", (4,)),
            ("note", (7,)),
            ("forbidden", ()),
            ("ping", ()),
        ]
        assert [(name, args) for where, name, args in seen if where == "second"] == [
            ("add", (10, 20)),
            ("add", (40,)),
            ("note", (7,)),
            ("ping", ()),
        ]
        await peer.close()


async def test_on_any_handles_what_no_handler_takes() -> None:
    hub = pinging_hub()
    caught: list[tuple[str, str, tuple[Any, ...]]] = []
    native: list[str] = []
    hub.on_native(lambda client, message: native.append(message))

    @hub.on_any
    def anything(client: Client, event: str, *args: Any) -> str:
        caught.append((client.id, event, args))
        return f"caught {event}"

    @hub.of("chat").on_any
    async def anything_on_chat(client: Client, event: str, *args: Any) -> list[Any]:
        return [event, *args]

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("ping") == "pong"  # a handled event: not caught
        assert await peer.call("unknown", 1, [2]) == "caught unknown"
        assert await peer.call("what", "x", channel="chat") == ["what", "x"]
        # A channel nobody registered has no catch-all: still refused.
        answer = await peer.request("x", channel="nowhere")
        assert answer["e"] == {"message": "Channel 'nowhere' does not exist"}
        await peer.send("not an event")
        assert await peer.call("ping") == "pong"
        assert [(event, args) for _, event, args in caught] == [("unknown", (1, [2]))]
        assert native == ["not an event"]
        await peer.close()


async def test_middleware_is_registered_before_clients_connect() -> None:
    hub = pinging_hub()
    async with serving(hub) as url:
        peer = await Peer.open(url)
        await peer.call("ping")
        with pytest.raises(RuntimeError, match="before clients connect"):
            hub.use(lambda client, event: None)
        assert await peer.call("ping") == "pong"
        await peer.close()


async def test_bytes_arguments_read_the_base64_the_hub_sends_for_bytes() -> None:
    hub = pinging_hub()

    @hub.on("echo")
    def echo(data: bytes) -> bytes:
        return data

    async with serving(hub) as url:
        peer = await Peer.open(url)
        sent = await peer.call("echo", "AAH/")  # base64 of b"\x00\x01\xff"
        assert sent == "AAH/"
        # What the hub sent, sent back, is the same bytes again.
        assert await peer.call("echo", sent) == "AAH/"
        answer = await peer.request("echo", "QUFILw=")
        assert answer["e"] == {"message": "argument 'data': not valid base64"}
        await peer.close()


async def test_dates_uuids_and_decimals_come_in_and_go_out_as_text() -> None:
    import datetime
    import decimal
    import uuid

    hub = pinging_hub()

    @hub.on("later")
    def later(when: datetime.datetime, days: decimal.Decimal, ref: uuid.UUID) -> list[Any]:
        return [when + datetime.timedelta(days=int(days)), days * 2, ref]

    async with serving(hub) as url:
        peer = await Peer.open(url)
        ref = "c0a8f6f4-5a6b-4c9e-9f7e-1234567890ab"
        assert await peer.call("later", "2024-01-02T03:04:05Z", "1.5", ref.upper()) == [
            "2024-01-03T03:04:05Z",
            "3.0",
            ref,
        ]
        answer = await peer.request("later", "yesterday", 1, ref)
        assert answer["e"] == {"message": "argument 'when': 'yesterday' is not a valid datetime"}
        await peer.close()
