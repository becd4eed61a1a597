"""The npm package ``wskit-client`` (``js/``): what its tarball holds, its types.

The tarball is made by ``npm pack`` once per session (:mod:`js.packed`); the
Node tests of the client (``tests/hub/test_jsclient_node.py``) run from it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from conftest import NODE_MODULES, REPO_ROOT, NodeRuntime
from js.packed import PACKAGE_DIR, PackedClient
from wskit.hub import Hub

TSC = NODE_MODULES / ".bin" / "tsc"

#: What the tarball holds: the client, its types, and what npm always adds.
PUBLISHED = {"package.json", "README.md", "LICENSE", "wskit.mjs", "wskit.js", "wskit.d.ts"}


def npm_version(version: str) -> str:
    """The npm (semver) spelling of a PEP 440 version: 0.1.0.dev0 is 0.1.0-dev.0."""
    parsed = Version(version)
    assert parsed.epoch == 0 and parsed.post is None and parsed.local is None
    release = ".".join(str(part) for part in (*parsed.release, 0, 0)[:3])
    tags = []
    if parsed.pre is not None:
        letter, number = parsed.pre
        tags.append(f"{ {'a': 'alpha', 'b': 'beta', 'rc': 'rc'}[letter] }.{number}")
    if parsed.dev is not None:
        tags.append(f"dev.{parsed.dev}")
    return release + ("-" + ".".join(tags) if tags else "")


def test_npm_version() -> None:
    assert npm_version("0.1.0.dev0") == "0.1.0-dev.0"
    assert npm_version("1.2") == "1.2.0"
    assert npm_version("1.0.0rc2") == "1.0.0-rc.2"
    assert npm_version("2.0b1.dev3") == "2.0.0-beta.1.dev.3"


# --------------------------------------------------------------------------- the tarball


def test_tarball_holds_the_client_and_nothing_else(packed: PackedClient) -> None:
    members = packed.members()
    assert set(members) == PUBLISHED
    assert {entry["path"] for entry in packed.manifest["files"]} == PUBLISHED


def test_package_json(packed: PackedClient) -> None:
    manifest = json.loads(packed.members()["package.json"])
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert manifest["name"] == packed.manifest["name"] == "wskit-client"
    assert manifest["version"] == npm_version(pyproject["project"]["version"])
    assert manifest["license"] == "MIT"
    assert manifest["type"] == "module"
    assert "dependencies" not in manifest
    assert manifest["exports"]["."] == {"types": "./wskit.d.ts", "default": "./wskit.mjs"}
    assert manifest["exports"]["./wskit.js"] == "./wskit.js"
    assert manifest["unpkg"] == manifest["jsdelivr"] == "./wskit.js"

    def targets(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        return [target for nested in value.values() for target in targets(nested)]

    paths = [*targets(manifest["exports"]), manifest["main"], manifest["types"]]
    assert {path.removeprefix("./") for path in paths} <= PUBLISHED


def test_license_is_the_projects(packed: PackedClient) -> None:
    license_text = (REPO_ROOT / "LICENSE").read_bytes()
    assert (PACKAGE_DIR / "LICENSE").read_bytes() == license_text
    assert packed.members()["LICENSE"] == license_text


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {name.lower(): value.strip() for name, value in (x.split(":", 1) for x in lines)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


async def test_hub_serves_the_files_of_the_tarball(packed: PackedClient) -> None:
    members = packed.members()
    server = await Hub().serve("127.0.0.1", 0)
    try:
        for path in ("/wskit.mjs", "/wskit.js"):
            status, headers, body = await http_get(server.port, path)
            assert status == 200
            assert headers["content-type"] == "text/javascript; charset=utf-8"
            assert body == members[path.removeprefix("/")], path
    finally:
        server.close()
        await server.wait_closed()


# --------------------------------------------------------------------------- in Node

RUNTIME_SCRIPT = r"""
import Default, * as exported from "wskit-client";
import { WskitClient as FromSubpath } from "wskit-client/wskit.mjs";

class FakeSocket {
  constructor(url) { this.url = url; this.readyState = 0; }
  send() {}
  close() { this.readyState = 3; }
}
// The public names of an object and its prototypes (not Object's).
function names(object) {
  const found = new Set();
  for (let p = object; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (!name.startsWith("_") && name !== "constructor") found.add(name);
    }
  }
  return [...found].sort();
}
const client = new exported.WskitClient("ws://127.0.0.1:9/", { WebSocket: FakeSocket });
const channel = client.of("admin");
let withoutSocket = "skipped: this Node has a global WebSocket";
if (typeof globalThis.WebSocket !== "function") {
  try {
    new exported.WskitClient("ws://127.0.0.1:9/");
    withoutSocket = "constructed";
  } catch (error) {
    withoutSocket = `${error.constructor.name}: ${error.message}`;
  }
}
await import("wskit-client/wskit.js");
console.log(JSON.stringify({
  exports: Object.keys(exported).sort(),
  defaultIsClient: Default === exported.WskitClient && FromSubpath === exported.WskitClient,
  client: names(client),
  channel: names(channel),
  classic: typeof globalThis.WskitClient,
  withoutSocket,
}));
client.close();
"""


def declared_members(declarations: str, header: str) -> list[str]:
    """The members declared in the class of ``wskit.d.ts`` that starts with ``header``."""
    start = declarations.index(header)
    body = declarations[start : declarations.index("\n}\n", start)]
    found = re.findall(r"^  (?:readonly )?([A-Za-z]\w*)\s*[<(:?]", body, re.MULTILINE)
    return sorted(set(found) - {"constructor"})


def test_runtime_matches_the_declarations(node: NodeRuntime, packed: PackedClient) -> None:
    script = packed.project / "runtime.mjs"
    script.write_text(RUNTIME_SCRIPT)
    result = subprocess.run(
        node.command(script), cwd=packed.project, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["exports"] == ["WskitClient", "default"]
    assert out["defaultIsClient"] is True
    # The classic script, imported as a module, still defines the global.
    assert out["classic"] == "function"
    if not out["withoutSocket"].startswith("skipped"):
        assert out["withoutSocket"] == "TypeError: no WebSocket constructor: pass options.WebSocket"

    declarations = (packed.installed / "wskit.d.ts").read_text()
    assert out["client"] == declared_members(declarations, "export declare class WskitClient {")
    assert out["channel"] == declared_members(declarations, "declare class WskitChannel {")
    assert out["client"] and out["channel"]


# --------------------------------------------------------------------------- TypeScript

# Each line marked `// TSnnnn ...` must fail with those errors, and no other line may.
MISTAKES = """\
import { WskitClient, WskitChannel } from "wskit-client";

class NotASocket {
  constructor(readonly port: number) {}
}
const client = new WskitClient("ws://127.0.0.1/");
new WskitClient("ws://127.0.0.1/", { requestTimeout: "5s" }); // TS2322
new WskitClient("ws://127.0.0.1/", { reconect: false }); // TS2561
new WskitClient("ws://127.0.0.1/", { WebSocket: NotASocket }); // TS2322
new WskitClient(); // TS2554
client.on("close", (code: string) => void code); // TS2345
client.on("error", (error: string) => void error); // TS2345
client.on("open", (info) => void info.nope); // TS2339
client.on("reconnecting", (_a: number, _d: number, more: number) => more); // TS2345
const queued: string = client.queued; // TS2322
client.dropped = 0; // TS2540
client.of(3); // TS2345
client.of("admin").name.length; // TS2531
client.emit(); // TS2555
client.timeout(500).request(1); // TS2345
client.join("lobby").then((answer: string) => answer); // TS2345
new WskitChannel(); // TS2673 TS1362
void queued;
"""


def run_tsc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TSC), "--pretty", "false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tsc(node: NodeRuntime) -> Path:
    if not TSC.exists():
        pytest.fail(f"{TSC} is missing: run `npm ci` (bootstrap) for the devDependencies")
    assert shutil.which("node")
    return TSC


def test_usage_file_type_checks(tsc: Path) -> None:
    result = run_tsc("--noEmit", "-p", str(PACKAGE_DIR), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_packed_types_accept_the_usage_file_and_refuse_mistakes(
    tsc: Path, packed: PackedClient
) -> None:
    config = json.loads((PACKAGE_DIR / "tsconfig.json").read_text())
    config["files"] = ["usage.ts", "mistakes.ts"]
    (packed.project / "tsconfig.json").write_text(json.dumps(config))
    shutil.copyfile(PACKAGE_DIR / "test" / "usage.ts", packed.project / "usage.ts")
    (packed.project / "mistakes.ts").write_text(MISTAKES)

    result = run_tsc("--noEmit", "-p", str(packed.project), cwd=packed.project)
    assert result.returncode != 0
    errors = re.findall(r"^(\S+)\((\d+),\d+\): error (TS\d+):", result.stdout, re.MULTILINE)
    assert errors, result.stdout + result.stderr
    expected = {
        (number, code)
        for number, line in enumerate(MISTAKES.splitlines(), 1)
        for code in re.findall(r"\bTS\d+\b", line.partition("// ")[2])
    }
    assert {(file, int(number), code) for file, number, code in errors} == {
        ("mistakes.ts", number, code) for number, code in expected
    }, result.stdout
