"""The iris JavaScript client from the seed document, in headless Chromium, against the hub.

The client (the Go raw string ``ClientSource`` in seed 000) is read from the
seed file at test time and served with a small page of our own that drives
``new Ws(...)``; it is never copied into the project. The client tags
values loosely and hands its handlers the raw data text, so these tests
check what it really sends and receives.
"""

import asyncio
from pathlib import Path
from typing import Any

import wskit
from conftest import require
from wskit.hub import Client, Hub
from wskit.protocol.handshake import reject

SEED = Path("/work/shared/seeds/000_d3218910015ba5d4.txt")
PREFIX = "iris-websocket-message:"
START = "var ClientSource = []byte(`"
CONCATENATION = "` + DefaultEvtMessageKey + `"


def iris_client_source() -> str:
    """The seed's JavaScript client, with the Go constant spliced in."""
    require(SEED.is_file(), f"the seed document {SEED}")
    text = SEED.read_text(encoding="utf-8")
    start = text.index(START) + len(START)
    end = text.index("\n`)", start)
    source = text[start:end].replace(CONCATENATION, PREFIX)
    assert "`" not in source, "the raw string was not extracted whole"
    assert "function Ws(endpoint, protocols)" in source
    return source


# Our own harness: records every event (as the raw text the client hands
# over) and native message in window.received.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>iris client</title>
<script src="/iris-ws.js"></script>
<script>
window.received = [];
window.connected = false;
window.openSocket = function (url, events) {
  const ws = new Ws(url);
  ws.OnConnect(function () { window.connected = true; });
  ws.OnDisconnect(function () { window.connected = false; });
  ws.OnMessage(function (message) { window.received.push(["native", message]); });
  events.forEach(function (name) {
    ws.On(name, function (data) { window.received.push([name, data]); });
  });
  window.ws = ws;
};
window.seen = function (name) {
  return window.received.filter(function (r) { return r[0] === name; }).map(function (r) {
    return r[1];
  });
};
</script>
"""


async def until(page: Any, expression: str) -> None:
    """Wait until ``expression`` is true in ``page`` (by polling: background pages throttle rAF)."""
    await page.wait_for_function(expression, polling=10, timeout=10_000)


EVENTS = ["welcome", "typed", "joined", "chat", "done", "direct", "everyone"]


def iris_hub(records: "asyncio.Queue[tuple[str, Any]]") -> Hub:
    hub = Hub(protocol="iris")

    @hub.on("connect")
    def welcome(client: Client) -> None:
        client.emit("welcome", client.id)

    hub.on_native(lambda client, message: records.put_nowait(("native", message)))
    hub.on("disconnect", lambda client, code, reason: records.put_nowait(("gone", client.id)))
    hub.on_leave(lambda client, room: records.put_nowait(("left", (client.id, room))))

    @hub.on("text")
    def text(value: str) -> None:
        records.put_nowait(("text", value))

    @hub.on("count")
    def count(value: int) -> None:
        records.put_nowait(("count", value))

    @hub.on("ratio")
    def ratio(value: float) -> None:
        records.put_nowait(("ratio", value))

    @hub.on("flag")
    def flag(value: bool) -> None:
        records.put_nowait(("flag", value))

    @hub.on("numeric_text")
    def numeric_text(value: str) -> None:
        records.put_nowait(("numeric_text", value))

    @hub.on("doc")
    def doc(value: dict[str, list[int]]) -> None:
        records.put_nowait(("doc", value))

    @hub.on("bare")
    def bare(client: Client) -> None:
        records.put_nowait(("bare", client.id))

    @hub.on("sync")
    def sync(client: Client, label: str) -> None:
        # Answer with one value of each type, then a marker.
        for value in ("a string", 7, True, {"k": [1, "x"]}):
            client.emit("typed", value)
        client.send("a native message")
        client.emit("done", label)

    @hub.on("join")
    def join(client: Client, room: str) -> None:
        client.join(room)
        client.emit("joined", room)

    @hub.on("leave")
    def leave(client: Client, room: str) -> None:
        client.leave(room)
        client.emit("done", f"left {room}")

    @hub.on("say")
    def say(client: Client, text: str) -> None:
        client.to("room").emit("chat", f"{client.id}: {text}")
        client.emit("done", "said")

    return hub


async def test_the_seed_iris_client_in_chromium(chromium_browser: Any) -> None:
    source = iris_client_source().encode()
    records: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    hub = iris_hub(records)

    def pages(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        if "Upgrade" in request.headers:
            return None
        if request.path == "/iris-ws.js":
            return reject(200, source, [("Content-Type", "text/javascript; charset=utf-8")])
        return reject(200, PAGE, [("Content-Type", "text/html; charset=utf-8")])

    async def next_record() -> tuple[str, Any]:
        return await asyncio.wait_for(records.get(), 10)

    async with wskit.serve(hub, "127.0.0.1", 0, process_request=pages) as server:
        http_url = f"http://127.0.0.1:{server.port}/"
        ws_url = f"ws://127.0.0.1:{server.port}/"
        a, b, c = [await chromium_browser.new_page() for _ in range(3)]
        ids = []
        for page in (a, b, c):
            await page.goto(http_url)
            await page.evaluate("([url, events]) => openSocket(url, events)", [ws_url, EVENTS])
            await until(page, "window.connected && seen('welcome').length === 1")
            ids.append((await page.evaluate("seen('welcome')"))[0])
        a_id, b_id, c_id = ids
        assert sorted(hub.clients) == sorted(ids)

        # Browser to hub: the client's loose tags, read by the handlers' hints.
        await a.evaluate(
            """() => {
                ws.Emit("text", "hello; world");
                ws.Emit("count", 42);
                ws.Emit("ratio", 3.5);
                ws.Emit("flag", true);
                ws.Emit("flag", false);
                ws.Emit("numeric_text", "42");
                ws.Emit("doc", {a: [1, 2]});
                ws.Emit("bare");
                ws.EmitMessage("raw from the page");
                ws.Emit("sync", "first");
            }"""
        )
        assert [await next_record() for _ in range(9)] == [
            ("text", "hello; world"),
            ("count", 42),
            ("ratio", 3.5),
            ("flag", True),
            ("flag", False),
            ("numeric_text", "42"),
            ("doc", {"a": [1, 2]}),
            ("bare", a_id),
            ("native", "raw from the page"),
        ]

        # Hub to browser: the client hands its handlers the raw text.
        await until(a, "seen('done').length === 1")
        assert await a.evaluate("seen('typed')") == ["a string", "7", "true", '{"k":[1,"x"]}']
        assert await a.evaluate("seen('native')") == ["a native message"]
        assert await a.evaluate("seen('done')") == ["first"]

        # Rooms: a and b join; c does not.
        for page in (a, b):
            await page.evaluate('ws.Emit("join", "room")')
            await until(page, "seen('joined').length === 1")
        assert sorted(client.id for client in hub.clients_in("room")) == sorted([a_id, b_id])
        assert await b.evaluate("seen('joined')") == ["room"]

        # Broadcast from a: b hears it, a does not (its "done" comes after
        # the broadcast was written), c is not in the room.
        await a.evaluate('ws.Emit("say", "hi all")')
        await until(a, "seen('done').length === 2")
        await until(b, "seen('chat').length === 1")
        assert await b.evaluate("seen('chat')") == [f"{a_id}: hi all"]
        assert await a.evaluate("seen('chat')") == []

        # The hub to the room, to one client by its id room, and to everyone.
        hub.to("room").emit("chat", "from the hub")
        hub.to(c_id).emit("direct", f"only {c_id}")
        hub.emit("everyone", "all of you")
        for page in (a, b, c):
            await until(page, "seen('everyone').length === 1")
        assert await a.evaluate("seen('chat')") == ["from the hub"]
        assert await b.evaluate("seen('chat')") == [f"{a_id}: hi all", "from the hub"]
        assert await c.evaluate("seen('chat')") == []
        assert await c.evaluate("seen('direct')") == [f"only {c_id}"]
        assert await a.evaluate("seen('direct')") == []

        # b leaves; a's next broadcast reaches nobody.
        await b.evaluate('ws.Emit("leave", "room")')
        await until(b, "seen('done').length === 1")
        assert await next_record() == ("left", (b_id, "room"))
        await a.evaluate('ws.Emit("say", "anyone?")')
        await until(a, "seen('done').length === 3")
        await b.evaluate('ws.Emit("sync", "second")')
        await until(b, "seen('done').length === 2")
        assert await b.evaluate("seen('chat')") == [f"{a_id}: hi all", "from the hub"]

        # Disconnecting leaves every room, the id room included.
        await a.evaluate("ws.Disconnect()")
        left = {await next_record() for _ in range(3)}
        assert left == {("left", (a_id, "room")), ("left", (a_id, a_id)), ("gone", a_id)}
        assert hub.get(a_id) is None and hub.count("room") == 0


async def test_broadcast_and_exact_integers_with_the_seed_iris_client(
    chromium_browser: Any,
) -> None:
    source = iris_client_source().encode()
    records: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    hub = iris_hub(records)

    @hub.on("shout")
    def shout(client: Client, text: str) -> None:
        # iris's To(Broadcast): everyone but the sender, no room joined.
        client.broadcast.emit("everyone", f"{client.id}: {text}")
        client.emit("done", "shouted")

    @hub.on("big")
    def big(value: int) -> None:
        records.put_nowait(("big", value))

    def pages(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
        if "Upgrade" in request.headers:
            return None
        if request.path == "/iris-ws.js":
            return reject(200, source, [("Content-Type", "text/javascript; charset=utf-8")])
        return reject(200, PAGE, [("Content-Type", "text/html; charset=utf-8")])

    async with wskit.serve(hub, "127.0.0.1", 0, process_request=pages) as server:
        ws_url = f"ws://127.0.0.1:{server.port}/"
        a, b, c = [await chromium_browser.new_page() for _ in range(3)]
        ids = []
        for page in (a, b, c):
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.evaluate("([url, events]) => openSocket(url, events)", [ws_url, EVENTS])
            await until(page, "window.connected && seen('welcome').length === 1")
            ids.append((await page.evaluate("seen('welcome')"))[0])
        a_id = ids[0]
        for id_ in ids:
            client = hub.get(id_)
            assert client is not None and client.rooms == {id_}  # its id room only

        # b and c hear a's shout; a only gets its "done", written after the
        # broadcast, then the hub's own emit to everyone.
        await a.evaluate('ws.Emit("shout", "hi")')
        await until(a, "seen('done').length === 1")
        for page in (b, c):
            await until(page, "seen('everyone').length === 1")
            assert await page.evaluate("seen('everyone')") == [f"{a_id}: hi"]
        hub.emit("everyone", "from the hub")
        await until(a, "seen('everyone').length === 1")
        assert await a.evaluate("seen('everyone')") == ["from the hub"]

        # The client tags a numeric string as an integer (its isNumber takes
        # strings), so the digits arrive as written: no float on the way.
        await b.evaluate(
            """() => {
                ws.Emit("big", "99999999999999999999999999");
                ws.Emit("big", "-9007199254740993");
                ws.Emit("big", 9007199254740991);
            }"""
        )
        received = [await asyncio.wait_for(records.get(), 10) for _ in range(3)]
        assert received == [
            ("big", 99999999999999999999999999),
            ("big", -9007199254740993),
            ("big", 2**53 - 1),
        ]
        assert all(type(value) is int for _, value in received)
