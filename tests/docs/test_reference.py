"""The API reference documents every public name, and the command line page every command.

The reference (``docs/reference/*.rst``) is written with autodoc directives;
this test reads them, without building the docs, and checks that every name
in the ``__all__`` of every public module is documented somewhere: under its
own module, or where users import it (``wskit.Hub`` documents
``wskit.hub.hub.Hub``, the same object). Public modules are those of the
public API snapshot (``tests/public_api/``) except the internal parts of
``wskit.hub.backplane.redis`` and the commands of ``wskit.cli`` (README,
"Public names and deprecation").
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from doc_examples import DOCS, ROOT
from wskit.cli import build_parser

REFERENCE = DOCS / "reference"
SNAPSHOT = ROOT / "tests" / "public_api"

#: Modules with an ``__all__`` that are internal all the same.
INTERNAL = ("wskit.hub.backplane.redis.", "wskit.cli.")


def public_modules() -> list[str]:
    names = sorted(path.stem for path in SNAPSHOT.glob("*.txt"))
    return [name for name in names if not name.startswith(INTERNAL)]


def docs_conf() -> Any:
    """``docs/conf.py``, imported as a module (Sphinx is not run)."""
    spec = importlib.util.spec_from_file_location("wskit_docs_conf", DOCS / "conf.py")
    assert spec is not None and spec.loader is not None
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


# A name resolves here as the docs build resolves it: with the same function.
_CONF = docs_conf()
#: ``load(dotted)``: the object at ``dotted`` (``package.module.Class``), or ``_MISSING``.
load = _CONF._import
_MISSING = _CONF._MISSING


DIRECTIVE = re.compile(r"^\.\. (?:py:)?(?P<kind>[\w]+):: (?P<target>[\w.]+)")
OPTION = re.compile(r"^\s+:(?P<name>[\w-]+):(?P<value>.*)$")
#: Directives that document one object, by hand or from its docstring.
OBJECT_DIRECTIVES = {
    "autoclass",
    "autoexception",
    "autofunction",
    "autodata",
    "autodecorator",
    "class",
    "exception",
    "function",
    "data",
    "decorator",
}


def directives(text: str) -> Iterable[tuple[str, str, dict[str, str]]]:
    """Each top-level directive: its kind, its target, its options (continuations joined)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = DIRECTIVE.match(line)
        if match is None:
            continue
        options: dict[str, str] = {}
        name = None
        for following in lines[index + 1 :]:
            option = OPTION.match(following)
            if option:
                name = option["name"]
                options[name] = option["value"].strip()
            elif name is not None and following.startswith("      ") and following.strip():
                options[name] += " " + following.strip()
            else:
                break
        yield match["kind"], match["target"], options


def names_of(option: str) -> set[str]:
    return {name.strip() for name in option.split(",") if name.strip()}


def documented_names(texts: Iterable[str]) -> set[str]:
    """The full names the reST ``texts`` document, as autodoc would."""
    documented = set()
    for text in texts:
        module = ""
        for kind, target, options in directives(text):
            if kind in ("currentmodule", "module", "automodule"):
                module = target
            if "no-index" in options:
                continue
            if kind == "automodule" and "members" in options:
                listed = names_of(options["members"]) or set(load(target).__all__)
                excluded = names_of(options.get("exclude-members", ""))
                documented |= {f"{target}.{name}" for name in listed - excluded}
            elif kind in OBJECT_DIRECTIVES:
                documented.add(target if target.startswith("wskit") else f"{module}.{target}")
    return documented


def identities(names: Iterable[str]) -> set[tuple[str, int]]:
    """(last name, object id) of each documented name: a re-export is the same object."""
    keys = set()
    for name in names:
        obj = load(name)
        if obj is not _MISSING:
            keys.add((name.rpartition(".")[2], id(obj)))
    return keys


def undocumented(modules: Iterable[str], documented: set[str]) -> list[str]:
    """The public names of ``modules`` that ``documented`` leaves out."""
    keys = identities(documented)
    missing = []
    for module in modules:
        loaded = importlib.import_module(module)
        for name in loaded.__all__:
            if f"{module}.{name}" in documented:
                continue
            if (name, id(getattr(loaded, name))) not in keys:
                missing.append(f"{module}.{name}")
    return missing


def reference_texts() -> list[str]:
    return [page.read_text() for page in sorted(REFERENCE.glob("*.rst"))]


def test_every_public_name_is_in_the_reference() -> None:
    assert undocumented(public_modules(), documented_names(reference_texts())) == []


def test_every_documented_name_exists() -> None:
    # A name that moved or went away would be an autodoc warning in the build;
    # here it fails without one.
    documented = documented_names(reference_texts())
    assert (
        [name for name in sorted(documented) if load(name) is _MISSING]
        == [
            # The speedups are None without the compiled kernels: they still exist.
        ]
    )


INVENTORY = DOCS / "_build" / "html" / "objects.inv"


def inventory_names(path: Path) -> set[str]:
    """The Python objects of a Sphinx inventory (``objects.inv``, version 2)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four lines of header, then the zlib-compressed body
        header_end = data.index(b"\n", header_end) + 1
    body = zlib.decompress(data[header_end:]).decode()
    return {line.split(" ")[0] for line in body.splitlines() if " py:" in line}


def is_fresh(built: Path) -> bool:
    """Whether ``built`` is newer than every reference page and every source file."""
    if not built.exists():
        return False
    sources = [*REFERENCE.glob("*.rst"), *(ROOT / "src" / "wskit").rglob("*.py")]
    return built.stat().st_mtime > max(source.stat().st_mtime for source in sources)


@pytest.mark.skipif(not is_fresh(INVENTORY), reason="no fresh docs build (make docs)")
def test_autodoc_documented_every_name_the_directives_ask_for() -> None:
    # autodoc leaves out, without a warning, a module attribute it cannot
    # document (before: wskit.protocol.events.Event, a union with no doc
    # comment); the built inventory shows what it really documented.
    documented = documented_names(reference_texts())
    assert sorted(documented - inventory_names(INVENTORY)) == []


def test_a_missing_name_is_reported() -> None:
    page = """
.. automodule:: wskit.limits
   :members:
   :exclude-members: TokenBucket,
      KeyedBuckets

.. currentmodule:: wskit

.. autoclass:: Hub
   :members:

.. autoclass:: Client
   :no-index:
"""
    documented = documented_names([page])
    assert "wskit.limits.LogLimiter" in documented
    assert undocumented(["wskit.limits"], documented) == [
        "wskit.limits.TokenBucket",
        "wskit.limits.KeyedBuckets",
    ]
    # wskit.Hub documents the very object wskit.hub.hub exports; Client is not indexed.
    missing = undocumented(["wskit.hub.hub"], documented)
    assert "wskit.hub.hub.Hub" not in missing
    assert "wskit.hub.hub.Client" in missing


def test_the_public_modules_include_the_application_packages() -> None:
    modules = public_modules()
    assert {"wskit", "wskit.hub", "wskit.asgi", "wskit.protocol.connection"} <= set(modules)
    assert "wskit.hub.backplane.redis" in modules
    assert not any(module.startswith("wskit.cli.") for module in modules)


# --------------------------------------------------------------------------- the command line

CLI_PAGE = REFERENCE / "cli.rst"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def sections(text: str) -> dict[str, str]:
    """The page's sections titled ````wskit <command>````, each with its text."""
    parts = re.split(r"^``wskit (\w+)``\n-+\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Each option string (``-H``, ``--header``) and positional (``uri``) users see."""
    found = []
    for action in parser._actions:
        # --help, and the hidden options (--reuse-port, which --workers passes to its workers).
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        found += action.option_strings or [action.metavar or action.dest]
    return found


def test_every_subcommand_has_a_section() -> None:
    documented = sections(CLI_PAGE.read_text())
    assert sorted(documented) == sorted(subcommands())


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_every_argument_of_a_subcommand_is_documented(command: str) -> None:
    text = CLI_PAGE.read_text()
    intro = text.split("\n``wskit ", 1)[0]
    section = sections(text)[command]
    # --log-level and --loop, common to every command, are told once, before.
    missing = [
        argument
        for argument in arguments(subcommands()[command])
        if f"``{argument}" not in section
        and not (argument in ("--log-level", "--loop") and f"``{argument}" in intro)
    ]
    assert missing == []


def test_the_program_options_are_documented() -> None:
    intro = CLI_PAGE.read_text().split("\n``wskit ", 1)[0]
    for argument in arguments(build_parser()):
        if not argument.startswith("-"):
            continue  # the subcommand itself
        assert argument in intro
