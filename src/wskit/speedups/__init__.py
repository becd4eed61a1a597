"""Compiled accelerators of the protocol's hot paths (optional).

``pip install`` builds them when a C compiler is available; setting
``WSKIT_NO_EXTENSIONS=1`` at build time skips them, and at run time makes
wskit ignore them. :data:`ENABLED` tells whether they are in use.

- ``apply_mask(data, mask)``: the masking kernel (``mask.c``).
- ``write_through(transport, fd, data)``: a frame sent straight on the
  socket when the transport has nothing queued (``write.c``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["ENABLED", "apply_mask", "write_through"]

apply_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] | None = None
write_through: Callable[[Any, int, bytes | bytearray | memoryview], bool] | None = None

if not os.environ.get("WSKIT_NO_EXTENSIONS"):
    try:
        from . import mask, write
    except ImportError:  # not built: the pure-Python code serves
        pass
    else:
        apply_mask = mask.apply_mask
        write_through = write.write_through

ENABLED = apply_mask is not None
