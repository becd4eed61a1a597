"""The Python side of wskit.js: serving it, and the classic-script build."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

import wskit
from conftest import NodeRuntime
from wskit.hub import Hub, jsclient

MODULE_PATH = Path(jsclient.__file__).parent / "static" / "wskit.mjs"


def test_module_source_is_the_file() -> None:
    assert jsclient.module_source() == MODULE_PATH.read_bytes()


def test_classic_source_is_made_from_the_module() -> None:
    made = jsclient.to_classic(MODULE_PATH.read_bytes().decode("utf-8")).encode("utf-8")
    assert jsclient.classic_source() == made
    assert made.startswith(b'(function () {\n"use strict";\n')
    assert b"globalThis.WskitClient = WskitClient;" in made


def test_running_the_module_writes_both_files_as_served(tmp_path: Path) -> None:
    # What `python -m wskit.hub.jsclient DIR` (the npm package's prepack) does.
    jsclient._write_client(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["wskit.js", "wskit.mjs"]
    assert (tmp_path / "wskit.mjs").read_bytes() == jsclient.module_source()
    assert (tmp_path / "wskit.js").read_bytes() == jsclient.classic_source()


@pytest.mark.parametrize(
    ("path", "body"),
    [("/wskit.mjs", jsclient.module_source), ("/wskit.js", jsclient.classic_source)],
)
def test_script_response(path: str, body: object) -> None:
    response = jsclient.script_response(path)
    assert response is not None
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert callable(body)
    assert response.body == body()
    assert response.headers["Content-Length"] == str(len(response.body))


@pytest.mark.parametrize("path", ["/", "/wskit", "/wskit.json", "/static/wskit.js", "/WSKIT.JS"])
def test_script_response_other_paths(path: str) -> None:
    assert jsclient.script_response(path) is None


def test_hub_process_request() -> None:
    hub = Hub()
    get = wskit.Request("GET", "/wskit.js?v=1", wskit.Headers([("Host", "x")]))
    response = hub.process_request(None, get)  # type: ignore[arg-type]
    assert response is not None and response.body == jsclient.classic_source()
    upgrade = wskit.Request(
        "GET", "/wskit.js", wskit.Headers([("Host", "x"), ("Upgrade", "websocket")])
    )
    assert hub.process_request(None, upgrade) is None  # type: ignore[arg-type]


def test_classic_build_has_no_module_syntax() -> None:
    classic = jsclient.classic_source().decode()
    assert not re.search(r"^\s*(export|import)\b", classic, re.MULTILINE)
    assert classic.startswith("(function () {\n")
    assert classic.rstrip().endswith("globalThis.WskitClient = WskitClient;\n})();")
    # Everything but the export keywords is the module's text.
    module = jsclient.module_source().decode()
    assert "class WskitClient extends WskitChannel" in classic
    assert len(module) - len(classic) < 200


def test_to_classic_refuses_what_it_cannot_transform() -> None:
    with pytest.raises(ValueError):
        jsclient.to_classic('import x from "y";\nexport class A {}\n')
    with pytest.raises(ValueError):
        jsclient.to_classic("export { A };\nclass A {}\n")
    with pytest.raises(ValueError):
        jsclient.to_classic("class A {}\n")  # nothing exported
    assert jsclient.to_classic("export class A {}\nexport default A;\n") == (
        '(function () {\n"use strict";\nclass A {}\n\n  globalThis.A = A;\n})();\n'
    )


# Runs the classic build in a fresh vm context, with a fake WebSocket that
# records what the client sends: the client's only global is WskitClient, and
# on connecting it rejoins its rooms before it flushes what was queued.
VM_SCRIPT = r"""
const vm = require("node:vm");
const fs = require("node:fs");
const context = vm.createContext({ setTimeout, clearTimeout, console });
const before = new Set(Object.getOwnPropertyNames(context));
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), context);
const added = Object.getOwnPropertyNames(context).filter((name) => !before.has(name));
vm.runInContext(`
  const sockets = [];
  class FakeSocket {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code, reason) { this.readyState = 3; this.onclose({ code, reason }); }
  }
  var run = async () => {
    const client = new WskitClient("ws://h/ws", { WebSocket: FakeSocket, maxQueue: 3 });
    const joined = client.join("a");
    client.emit("e", 1);
    const socket = sockets[0];
    socket.readyState = 1;
    socket.onopen();
    const atOpen = socket.sent.slice();
    socket.onmessage({ data: JSON.stringify({ i: atOpen[0].i, d: true }) });
    await new Promise((r) => setTimeout(r, 0));
    const afterRejoin = socket.sent.slice(1);
    socket.onmessage({ data: JSON.stringify({ i: afterRejoin[0].i, d: true }) });
    const result = await joined;
    client.close();
    return { atOpen, afterRejoin, result, connected: client.connected };
  };
`, context);
context.run().then((out) => console.log(JSON.stringify({ added, ...out })));
"""


async def test_classic_build_in_node_vm(node: NodeRuntime, tmp_path: Path) -> None:
    script = tmp_path / "wskit.js"
    script.write_bytes(jsclient.classic_source())
    proc = await asyncio.create_subprocess_exec(
        *node.command("-e", VM_SCRIPT, script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **node.subprocess_kwargs(),
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout)
    assert out["added"] == ["WskitClient"]
    assert out["atOpen"] == [{"i": 2, "c": "_wskit", "a": ["join", "a"]}]
    assert out["afterRejoin"] == [{"i": 1, "c": "_wskit", "a": ["join", "a"]}, {"a": ["e", 1]}]
    assert out["result"] is True
    assert out["connected"] is False
