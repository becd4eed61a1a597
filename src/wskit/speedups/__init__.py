"""Compiled accelerators of the protocol's hot paths (optional).

``pip install`` builds them when a C compiler is available; setting
``WSKIT_NO_EXTENSIONS=1`` at build time skips them, and at run time makes
wskit ignore them. :data:`ENABLED` tells whether they are in use (the
``frames`` kernels; ``write_kernel`` is None where ``write`` is not built).

- ``apply_mask(data, mask)``: the masking kernel, and ``parse_simple()``,
  the parser's common case: whole text and binary messages (``frames.c``);
  ``new_payload(size)``, a bytes object and a writable view to read a large
  payload into, and ``unmask_in_place()``, which unmasks it there.
- ``write_kernel`` (the module ``write``): the ``Writer`` of one
  connection, which sends frames on the socket directly when its transport
  holds nothing, and ``fanout()``, which writes one frame to thousands of
  them in one loop (``write.c``; see :mod:`wskit.asyncio.direct_write`).
  Linux only: it needs ``MSG_NOSIGNAL`` and ``sendmsg()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "ENABLED",
    "apply_mask",
    "new_payload",
    "parse_simple",
    "unmask_in_place",
    "write_kernel",
]

apply_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] | None = None
parse_simple: (
    Callable[[bytes | bytearray | memoryview, int, int, int, list[Any], type[Any]], int] | None
) = None
new_payload: Callable[[int], tuple[bytes, memoryview]] | None = None
unmask_in_place: Callable[[memoryview | bytearray, bytes, int], None] | None = None
#: The compiled ``write`` module (a name of its own: ``write`` is the submodule's).
write_kernel: ModuleType | None = None

# Each kernel on its own: ``write`` is built on Linux only (setup.py says why),
# so macOS and Windows run the compiled parser with the pure-Python writer.
if not os.environ.get("WSKIT_NO_EXTENSIONS"):
    try:
        from . import frames
    except ImportError:  # not built: the pure-Python code serves
        pass
    else:
        apply_mask = frames.apply_mask
        parse_simple = frames.parse_simple
        new_payload = frames.new_payload
        unmask_in_place = frames.unmask_in_place
    try:
        from . import write
    except ImportError:  # not built, or not Linux: the pure-Python writer serves
        pass
    else:
        write_kernel = write

ENABLED = apply_mask is not None
