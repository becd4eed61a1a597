"""User code type-checks: the README's and the docs' programs pass ``mypy --strict``.

The public signatures carry their types to the user: the registering
decorators of the hub return the function unchanged (and typed), :func:`wskit.serve`
takes a handler annotated with the :class:`wskit.ServerConn` it receives, and
the keyword options of :func:`wskit.serve`, :func:`wskit.connect`,
:class:`wskit.Hub` and :func:`wskit.asgi.asgi_app` are typed, so that a
misspelled option is a type error, and a :exc:`TypeError` when called.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from pathlib import Path
from typing import get_type_hints

import pytest

import wskit
from doc_examples import docs_examples, mypy_strict, readme_examples
from wskit.asgi import asgi_app
from wskit.asyncio.client import ConnOptions
from wskit.asyncio.connection import Conn
from wskit.asyncio.server import ServerOptions, ServerOptionsKwargs

#: A user program from the README's server, client, hub and ASGI examples,
#: with every decorator and typed option; ``assert_type`` checks that the
#: decorators keep each function's type.
GOOD_PROGRAM = """
import asyncio
from dataclasses import dataclass
from typing import Any, assert_type

import wskit
from wskit.asgi import asgi_app
from wskit.hub import HubClient, PresenceEvent


async def echo(conn: wskit.ServerConn) -> None:
    print(conn.request_headers.get("User-Agent"), conn.remote_address)
    async for message in conn:
        await conn.send(message)


async def plain(conn: wskit.Conn) -> None:
    await conn.send("hello")


def refuse_strangers(conn: wskit.ServerConn, request: wskit.Request) -> wskit.Response | None:
    if request.headers.get("Authorization") != "Bearer secret":
        return wskit.Response(401, "Unauthorized", wskit.Headers(), b"who are you?\\n")
    return None


hub = wskit.Hub(max_buffer=2**20, overflow="close", rate_limit=(10.0, 20.0))


@dataclass
class Move:
    x: int
    y: int


@hub.on("connect")
def connected(client: wskit.Client) -> None:
    client.join("lobby")


@hub.on("move")
def move(client: wskit.Client, where: Move) -> dict[str, int]:
    client.to("lobby").emit("moved", client.id, where)
    return {"x": where.x, "y": where.y}


@hub.once("hello")
async def hello(client: wskit.Client, name: str) -> str:
    return f"hello {name}"


@hub.of("chat").on("say")
async def say(client: wskit.Client, text: str) -> None:
    hub.of("chat").to("lobby").emit("said", text)


@hub.on_leave
def left(client: wskit.Client, room: str) -> None:
    print(client.id, "left", room)


@hub.on_native
def native(client: wskit.Client, message: Any) -> None:
    print(message)


@hub.on_presence
def presence(event: PresenceEvent) -> None:
    print(event)


def chained() -> None:
    hub.on("ping", lambda client: "pong").on("pong", lambda client: "ping")


async def decorators_keep_types(client: wskit.Client) -> None:
    assert_type(move(client, Move(1, 2)), dict[str, int])
    assert_type(await hello(client, "you"), str)
    assert_type(left(client, "lobby"), None)


hub_client = HubClient("ws://127.0.0.1:8000/")


@hub_client.on("news")
def news(text: str) -> int:
    return len(text)


@hub_client.on("said", channel="chat")
async def said(text: str) -> None:
    print(text)


def hub_client_keeps_types() -> None:
    assert_type(news("today"), int)
    assert_type(hub_client.on("open", news)("again"), int)
    hub_client.on("close", lambda code, reason: print(code, reason))


async def handshake(conn: wskit.ServerConn, client: wskit.ClientConn) -> None:
    # Set before a handler or connect()'s caller sees the connection: no None to rule out.
    print(conn.request.path, conn.request.query_params, conn.response.status)
    print(client.request.host, client.response.headers.get("Server"))


async def any_server(conn: wskit.ConnectionAPI) -> None:
    # The documented type of serve()'s and asgi_app()'s connections: its request is set too.
    print(conn.request.path, conn.request.headers.get("Origin"))

endpoint = asgi_app(echo, origins=["https://example.com"], max_size=2**16, debug=True)


async def main() -> None:
    async with wskit.serve(
        echo,
        "127.0.0.1",
        0,
        subprotocols=["chat.v1"],
        process_request=refuse_strangers,
        max_size=2**20,
        ping_interval=20,
    ) as server:
        async with wskit.connect(
            f"ws://127.0.0.1:{server.port}/",
            headers={"Authorization": "Bearer secret"},
            max_size=2**16,
            ping_interval=None,
            on_close=lambda code, reason: None,
        ) as conn:
            await conn.send("hello")
            print(await conn.recv())
    async with wskit.serve(plain, "127.0.0.1", 0) as server:
        print(server.port)
    async with wskit.serve(hub, "127.0.0.1", 0) as server:
        print(server.port)


asyncio.run(main())
"""

#: One misspelled option in each call that takes options.
BAD_PROGRAM = """
import wskit
from wskit.asgi import asgi_app


async def echo(conn: wskit.ServerConn) -> None:
    await conn.send("hi")


async def main() -> None:
    hub = wskit.Hub(max_bufer=1)
    server = await wskit.serve(echo, "127.0.0.1", 0, max_sise=10)
    conn = await wskit.connect("ws://127.0.0.1/", jar=None)
    app = asgi_app(echo, orgins=["https://example.com"])
"""

MISSPELLED = ("max_bufer", "max_sise", "jar", "orgins")


#: The README's python blocks and the docs' (``tests/doc_examples.py``), each
#: a module of its own (blocks reuse names, as separate programs do).
EXAMPLES = {example.module_name: example for example in readme_examples() + docs_examples()}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run ``mypy --strict`` once over both programs and every example; each one's errors."""
    programs = {
        "good": textwrap.dedent(GOOD_PROGRAM),
        "bad": textwrap.dedent(BAD_PROGRAM),
        **{name: example.code for name, example in EXAMPLES.items()},
    }
    return mypy_strict(programs, tmp_path_factory.mktemp("user_code"))


def test_readme_user_program_passes_mypy_strict(mypy_output: dict[str, str]) -> None:
    assert mypy_output["good"] == ""


def test_readme_and_docs_have_python_blocks() -> None:
    assert len(readme_examples()) >= 2
    assert len(docs_examples()) >= 1


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_passes_mypy_strict(mypy_output: dict[str, str], name: str) -> None:
    # Before: the server example's conn.request.path was a union-attr error
    # (Request | None), though a handler always has its request.
    assert mypy_output[name] == "", EXAMPLES[name].name


def test_mypy_output_reports_each_module_apart(tmp_path: Path) -> None:
    """The runner tells a failing example from a passing one (it cannot pass vacuously)."""
    output = mypy_strict({"fine": "x: int = 1\n", "broken": "x: int = 'one'\n"}, tmp_path)
    assert output["fine"] == ""
    assert "Incompatible types in assignment" in output["broken"]


@pytest.mark.parametrize("option", MISSPELLED)
def test_misspelled_option_is_a_type_error(mypy_output: dict[str, str], option: str) -> None:
    assert f'Unexpected keyword argument "{option}"' in mypy_output["bad"]


def test_misspelled_option_fails_at_the_call() -> None:
    async def echo(conn: wskit.ServerConn) -> None:
        pass

    with pytest.raises(TypeError, match="max_bufer"):
        wskit.Hub(max_bufer=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="max_sise"):
        wskit.serve(echo, "127.0.0.1", 0, max_sise=10)  # type: ignore[call-arg]
    # Before: the connect() call returned, and awaiting it failed in ClientConn.
    with pytest.raises(TypeError, match=r"connect\(\) got an unexpected keyword argument 'jar'"):
        wskit.connect("ws://127.0.0.1:1/", jar=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="orgins"):
        asgi_app(echo, orgins=["https://example.com"])  # type: ignore[call-arg]


def test_server_options_kwargs_match_server_options_field_by_field() -> None:
    fields = get_type_hints(ServerOptions)
    assert [field.name for field in dataclasses.fields(ServerOptions)] == list(fields)
    assert get_type_hints(ServerOptionsKwargs) == fields
    assert ServerOptionsKwargs.__required_keys__ == frozenset()


def test_conn_options_match_conn_keyword_parameters() -> None:
    signature = inspect.signature(Conn.__init__)
    hints = get_type_hints(Conn.__init__)
    parameters = {
        name: hints[name]
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert get_type_hints(ConnOptions) == parameters
    assert ConnOptions.__required_keys__ == frozenset()
