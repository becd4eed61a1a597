"""The JavaScript client, ``wskit.js``, as the hub serves it.

One source, ``static/wskit.mjs`` (an ES module, no build step), is served
as is at ``/wskit.mjs``. Its classic-script build, which defines
``globalThis.WskitClient``, is the file ``static/wskit.js`` beside it,
served at ``/wskit.js``: :func:`to_classic` makes it, and running this
module (``python -m wskit.hub.jsclient``) writes it again after the module
changed (a test checks that it is up to date). The npm package
``wskit-client`` (``js/`` in the repository) ships these two files as they
are, so the hub serves exactly what the package publishes.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

from ..protocol.handshake import reject
from ..protocol.http11 import Response

__all__ = ["module_source", "classic_source", "to_classic", "script_response"]


@cache
def module_source() -> bytes:
    """The ES module, ``static/wskit.mjs``."""
    return resources.files("wskit.hub").joinpath("static/wskit.mjs").read_bytes()


_EXPORT_DECLARATION = re.compile(r"^export (?=(?:class|function|const|let) (\w+))", re.MULTILINE)
_EXPORT_DEFAULT = re.compile(r"^export default \w+;[ \t]*\r?\n?", re.MULTILINE)
_LEFTOVER = re.compile(r"^\s*(?:export|import)\b|\bimport\.meta\b", re.MULTILINE)


def to_classic(module: str) -> str:
    """Turn the module's text into a classic script.

    The module is written for this: ``export`` starts only its exported
    declarations (``export class WskitClient``) and its last line
    (``export default WskitClient;``), and it imports nothing. Those
    keywords go, the code is wrapped in a function so that its other names
    stay private, and each exported name is set on ``globalThis``.

    Raises:
        ValueError: the module uses something this cannot transform.
    """
    names = _EXPORT_DECLARATION.findall(module)
    body = _EXPORT_DEFAULT.sub("", _EXPORT_DECLARATION.sub("", module))
    leftover = _LEFTOVER.search(body)
    if leftover is not None or not names:
        raise ValueError("the module cannot be turned into a classic script")
    exports = "".join(f"  globalThis.{name} = {name};\n" for name in names)
    return f'(function () {{\n"use strict";\n{body.rstrip()}\n\n{exports}}})();\n'


@cache
def classic_source() -> bytes:
    """The classic script, ``static/wskit.js``: it sets ``globalThis.WskitClient``.

    It is :func:`to_classic` of :func:`module_source`, made in advance so
    that the npm package can ship the same bytes.
    """
    return resources.files("wskit.hub").joinpath("static/wskit.js").read_bytes()


def script_response(path: str) -> Response | None:
    """A 200 response with the client for ``/wskit.js`` or ``/wskit.mjs``; else ``None``."""
    if path == "/wskit.mjs":
        body = module_source()
    elif path == "/wskit.js":
        body = classic_source()
    else:
        return None
    return reject(200, body, [("Content-Type", "text/javascript; charset=utf-8")])


def _write_classic() -> None:
    """Write ``static/wskit.js`` from ``static/wskit.mjs`` (in a source checkout)."""
    static = Path(__file__).parent / "static"
    module = (static / "wskit.mjs").read_bytes().decode("utf-8")
    (static / "wskit.js").write_bytes(to_classic(module).encode("utf-8"))


if __name__ == "__main__":
    _write_classic()
