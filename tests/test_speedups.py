"""The compiled kernels: built where the suite expects them, and equal to the Python ones."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import in_ci, require
from wskit import speedups
from wskit.protocol import frames

PURE = bool(os.environ.get("WSKIT_NO_EXTENSIONS"))


def test_the_switch_decides_which_kernel_serves() -> None:
    if PURE:
        assert not speedups.ENABLED
        assert frames.apply_mask is frames._apply_mask_python
    elif in_ci():
        # CI builds the extension; a silent fallback would hide a broken build.
        assert speedups.ENABLED
    if speedups.ENABLED:
        assert frames.apply_mask is speedups.apply_mask


def compiled_mask() -> Callable[[bytes | bytearray | memoryview, bytes], bytes]:
    """The compiled kernel itself, even when ``WSKIT_NO_EXTENSIONS`` keeps wskit off it."""
    try:
        from wskit.speedups import mask
    except ImportError:
        require(False, "the compiled masking kernel (pip install -e . with a C compiler)")
    return mask.apply_mask


@given(st.binary(max_size=4096), st.binary(min_size=4, max_size=4))
def test_compiled_mask_equals_python_mask(data: bytes, key: bytes) -> None:
    assert compiled_mask()(data, key) == frames._apply_mask_python(data, key)


def test_compiled_mask_takes_any_buffer_and_checks_the_key() -> None:
    apply_mask = compiled_mask()
    data = bytes(range(256)) * 3 + b"tail"
    expected = frames._apply_mask_python(data, b"\x01\x02\x03\x04")
    assert apply_mask(bytearray(data), b"\x01\x02\x03\x04") == expected
    assert apply_mask(memoryview(data), b"\x01\x02\x03\x04") == expected
    with pytest.raises(ValueError):
        apply_mask(data, b"abc")
