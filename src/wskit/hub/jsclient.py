"""The JavaScript client, ``wskit.js``, as the hub serves it.

One source, ``static/wskit.mjs`` (an ES module, no build step), is served
as is at ``/wskit.mjs``. Its classic-script build, which defines
``globalThis.WskitClient``, is made from it by :func:`to_classic` and served
at ``/wskit.js``. The npm package ``wskit-client`` (``js/`` in the
repository) ships both: its ``prepack`` step runs this module
(``python -m wskit.hub.jsclient DIRECTORY``), which writes the two files the
hub serves into the package, so the hub serves exactly what the package
publishes.
"""

from __future__ import annotations

import re
import sys
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
    """The classic script, :func:`to_classic` of :func:`module_source`.

    It sets ``globalThis.WskitClient``.
    """
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


def _write_client(directory: Path) -> None:
    """Write ``wskit.mjs`` and ``wskit.js`` as the hub serves them into ``directory``.

    Each file goes to a temporary name first and is then renamed, so that a
    reader at the same time never sees half a file.
    """
    for name, body in (("wskit.mjs", module_source()), ("wskit.js", classic_source())):
        temporary = directory / f".{name}.tmp"
        temporary.write_bytes(body)
        temporary.replace(directory / name)


if __name__ == "__main__":
    _write_client(Path(sys.argv[1]))
