"""The ``wskit`` command: ``echo``, ``serve``, ``connect`` and ``demo``.

Each subcommand is a small ``run_*`` coroutine of plain arguments, in a
module of its own; ``parser`` only parses and dispatches, so
the commands are easy to call from tests.

* ``wskit echo`` (``echo``): an echo server (conformance
  suites and benchmarks use it).
* ``wskit serve module:attr`` (``serve``): serve a
  :class:`~wskit.hub.Hub`, a connection handler (``async def handler(conn)``),
  or a factory returning either; ``--workers N`` runs N processes on one
  port (``SO_REUSEPORT``), under the supervisor of ``workers``.
* ``wskit connect ws://...`` (``connect``): an interactive
  client; lines read from stdin are sent as text, what arrives is printed
  with its direction and type.
* ``wskit demo`` (``demo``): the chat demo of :mod:`wskit.demo`.

``--metrics-port`` and ``--status`` (``metrics``) serve the metrics of
:mod:`wskit.metrics` and the status page, described by a
:class:`MetricsOptions`.

What the commands share (:class:`CommandError`, waiting for a signal) is in
``common``, below both them and the parser.
"""

from __future__ import annotations

from .common import CommandError
from .connect import run_connect
from .demo import run_demo
from .echo import run_echo
from .metrics import MetricsOptions
from .parser import build_parser, main
from .serve import App, load_app, run_serve
from .workers import run_workers

__all__ = [
    "main",
    "build_parser",
    "run_echo",
    "run_serve",
    "run_workers",
    "run_connect",
    "run_demo",
    "load_app",
    "App",
    "CommandError",
    "MetricsOptions",
]
