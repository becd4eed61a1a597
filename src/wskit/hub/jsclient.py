"""The JavaScript client, ``wskit.js``, as the hub serves it.

One source, ``static/wskit.mjs`` (an ES module, no build step), is served
as is at ``/wskit.mjs`` and, turned into a classic script that defines
``window.WskitClient``, at ``/wskit.js``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ..protocol.handshake import reject
from ..protocol.http11 import Response

__all__ = ["module_source", "classic_source", "to_classic", "script_response"]


@cache
def module_source() -> bytes:
    """The ES module."""
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
    """The classic-script build of the module: it sets ``globalThis.WskitClient``."""
    return to_classic(module_source().decode("utf-8")).encode("utf-8")


def script_response(path: str) -> Response | None:
    """A 200 response with the client for ``/wskit.js`` or ``/wskit.mjs``; else ``None``."""
    if path == "/wskit.mjs":
        body = module_source()
    elif path == "/wskit.js":
        body = classic_source()
    else:
        return None
    return reject(200, body, [("Content-Type", "text/javascript; charset=utf-8")])
