"""Compiled accelerators of the protocol's hot paths (optional).

``pip install`` builds them when a C compiler is available; setting
``WSKIT_NO_EXTENSIONS=1`` at build time skips them, and at run time makes
wskit ignore them. :data:`ENABLED` tells whether they are in use.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["ENABLED", "apply_mask"]

apply_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] | None = None

if not os.environ.get("WSKIT_NO_EXTENSIONS"):
    try:
        from . import mask
    except ImportError:  # not built: the pure-Python code serves
        pass
    else:
        apply_mask = mask.apply_mask

ENABLED = apply_mask is not None
