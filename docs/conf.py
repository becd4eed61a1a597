"""Sphinx configuration of the wskit documentation (``make docs``).

Built with warnings as errors and nitpicky cross-references: a renamed class, a
broken link or a docstring role that points nowhere fails the build, and so
``make test``.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

from sphinx import addnodes
from sphinx.ext.napoleon.docstring import GoogleDocstring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

project = "wskit"
author = "wskit contributors"
copyright = "wskit contributors"
release = importlib.metadata.version("wskit")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

# Every cross-reference must resolve. Names outside wskit (the standard library,
# third-party types in signatures) have no inventory here -- the build runs
# offline -- so they are listed in nitpick_ignore_regex rather than linked.
nitpicky = True
BUILTIN_TYPES = [
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) or name in ("None", "Ellipsis", "NotImplemented")
]
nitpick_ignore_regex: list[tuple[str, str]] = [
    # The standard library: its modules, the names in them, the built-in types
    # (a bare name that is not a type, ``code`` or ``open``, must still resolve).
    (r"py:mod", rf"({'|'.join(sorted(sys.stdlib_module_names))})(\..+)?"),
    (r"py:.*", rf"({'|'.join(sorted(sys.stdlib_module_names))})\..+"),
    (r"py:.*", rf"(builtins\.)?({'|'.join(sorted(BUILTIN_TYPES))})"),
    # Third-party types in signatures: optional dependencies, never linked.
    (r"py:.*", r"(redis|starlette|fastapi|uvicorn|msgspec|uvloop)(\..+)?"),
    # uvicorn's types as wskit.uvicorn imports them (for type checking only).
    (r"py:class", r"(Config|ServerState)"),
    # Stdlib names as wskit's modules import them.
    (r"py:.*", r"(ssl_module\..+|deque)"),
    # Type variables of generic signatures (one capital letter, or named so):
    # not objects anyone imports.
    (r"py:.*", r"(wskit\.[\w.]+\.)?([A-Z]|M_contra|MiddlewareT|HandlerT_co)"),
    # Aliases that spell a parameter's type in a signature without being
    # public names: the parameter's description says what it takes.
    (
        r"py:.*",
        r"(wskit\.[\w.]+\.)?(ConnHandler|Authorize|PingHandler|IdGenerator|RoomGuard|"
        r"RateLimitPolicy|JsonDumps|JsonLoads)",
    ),
    # Private names (a leading underscore) in signatures: not documented.
    (r"py:.*", r"wskit\.[\w.]+\._\w+"),
]

# wskit's docstrings are reST with Google-style sections (Args:, Raises:...),
# but the docstring of an attribute or a property is prose: napoleon would read
# "Whether the connection closed: ..." as "type: description". Keep it as written.
GoogleDocstring._parse_attribute_docstring = GoogleDocstring._consume_to_end  # type: ignore[method-assign]

# An "Attributes:" section describes the instance attributes as fields of the
# class, not as objects of their own, which autodoc documents from the source.
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Each directive says which members it documents (the reference pages list
# them), so that a name is documented once, where users import it.
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"
html_title = f"wskit {release}"


def resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a reference to a re-exported name to where it is documented.

    wskit documents a name once, where users import it (``wskit.Hub``, not
    ``wskit.hub.hub.Hub`` nor ``wskit.hub.Hub``). A docstring or a page may
    still name the defining module, or a package that re-exports it: the
    reference resolves if the name imports and the very same object is
    documented under another name. A name that does not import, or whose
    object is documented nowhere, stays a broken reference (nitpicky).
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    module = node.get("py:module") or ""
    cls = node.get("py:class") or ""
    candidates = [target]
    if module:
        candidates += [f"{module}.{cls}.{target}" if cls else "", f"{module}.{target}"]
    # A docstring names its neighbours as its own module sees them, even when
    # its object is documented where it is re-exported (wskit.Hub, wskit.connect).
    home = _owner_home(node)
    if home:
        candidates.append(f"{home}.{target}")
    domain = env.get_domain("py")
    for candidate in filter(None, candidates):
        obj = _import(candidate)
        if obj is _MISSING:
            # An instance attribute does not import: its class does.
            parent, _, attr = candidate.rpartition(".")
            owner = _import(parent) if parent else _MISSING
            name = None if owner is _MISSING else _documented_attribute(domain, owner, attr)
        else:
            name = _documented_name(domain, obj, candidate.rpartition(".")[2])
        if name is not None:
            # "obj": a type alias is documented as data, yet read as a class.
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, "obj", name, node, contnode
            )
    return None


_MISSING = object()


@functools.cache
def _import(dotted: str) -> Any:
    """The object at ``dotted`` (``package.module.Class.attr``), or ``_MISSING``."""
    if not dotted.startswith("wskit"):
        return _MISSING
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return _MISSING
        return obj
    return _MISSING


def _documented_name(domain: Any, obj: Any, short: str) -> str | None:
    """The documented full name of ``obj`` (same last component, same object)."""
    for name, _entry in domain.objects.items():
        if name.rpartition(".")[2] == short and _import(name) is obj:
            return str(name)
    return None


def qualify_annotations(app: Any, doctree: Any) -> None:
    """Qualify the bare names of annotations with the module that wrote them.

    A signature's types are the source's strings (``from __future__ import
    annotations``): ``Handler`` in :func:`wskit.serve` means
    ``wskit.asyncio.server.Handler``, yet Sphinx would look for any
    ``*.Handler`` and find several. The module of the documented object
    says which one it is.
    """
    for node in doctree.findall(addnodes.pending_xref):
        target = node.get("reftarget", "")
        if node.get("refdomain") != "py" or "." in target:
            continue
        home = _owner_home(node)
        obj = _import(f"{home}.{target}") if home else _MISSING
        if obj is _MISSING:
            # Imported only for type checking (TYPE_CHECKING): the name that
            # the top level exports, if it is one, as the users read it.
            if home and target in _import("wskit").__all__:
                node["reftarget"] = f"wskit.{target}"
            continue
        # The public module that exports this very object under this name:
        # its own, or the one it imports it from (never a stdlib ``Any``).
        for name, module in sorted(sys.modules.items()):
            exported = name.startswith("wskit") and target in getattr(module, "__all__", ())
            if exported and getattr(module, target) is obj:
                node["reftarget"] = f"{name}.{target}"
                break


def _owner_home(node: Any) -> str | None:
    """The module that defines the object whose description holds ``node``."""
    owner = node.parent
    while owner is not None and not isinstance(owner, addnodes.desc):
        owner = owner.parent
    if owner is None or not isinstance(owner[0], addnodes.desc_signature):
        return None
    signature = owner[0]
    path = f"{signature.get('module')}.{signature.get('fullname')}"
    while path:  # an attribute without a class-level value: its class then
        obj = _import(path)
        home = None if obj is _MISSING else getattr(obj, "__module__", None)
        if isinstance(home, str):
            return home
        path = path.rpartition(".")[0]
    return None


def _documented_attribute(domain: Any, owner: Any, attr: str) -> str | None:
    """The documented full name of attribute ``attr`` of the class ``owner``."""
    for name in domain.objects:
        parent, _, last = name.rpartition(".")
        if last == attr and _import(parent) is owner:
            return str(name)
    return None


def setup(app: Any) -> None:
    app.connect("doctree-read", qualify_annotations)
    app.connect("missing-reference", resolve_reexport)
