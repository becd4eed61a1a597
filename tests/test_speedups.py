"""The compiled kernels: built where the suite expects them, and equal to the Python ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import REPO_ROOT, in_ci, require
from wskit import speedups
from wskit.protocol import connection as conn_module
from wskit.protocol import frames
from wskit.protocol.connection import Connection, Side
from wskit.protocol.events import DataReceived

ORIGINAL_PARSE_SIMPLE = conn_module._parse_simple

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
        from wskit.speedups import frames as mask
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


# -- parse_simple: the parser's common case, compiled ---------------------------------


def compiled_parse_simple() -> Callable[..., int]:
    try:
        from wskit.speedups import frames as kernels
    except ImportError:
        require(False, "the compiled frame kernels (pip install -e . with a C compiler)")
    return kernels.parse_simple


def raw_frame(b0: int, payload: bytes, *, masked: bool, length_form: int = 0) -> bytes:
    """A frame with first byte ``b0``; ``length_form`` forces a 16 or 64-bit length."""
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if length_form == 64 or n >= 65536:
        head = bytes([b0, mask_bit | 127]) + n.to_bytes(8, "big")
    elif length_form == 16 or n >= 126:
        head = bytes([b0, mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mask_bit | n])
    if not masked:
        return head + payload
    key = b"\x11\x22\x33\x44"
    return head + key + frames._apply_mask_python(payload, key)


FRAMES = st.one_of(
    st.builds(lambda t: (0x81, t.encode()), st.text(max_size=300)),  # text
    st.builds(lambda b: (0x82, b), st.binary(max_size=300)),  # binary
    st.just((0x81, b"\xff\xfe")),  # invalid UTF-8
    st.just((0x01, b"frag")),  # a fragment (no FIN)
    st.just((0x80, b"ment")),  # its continuation
    st.just((0x89, b"ping")),  # a control frame
    st.just((0xC1, b"rsv1")),  # RSV1 without an extension
    st.just((0x82, bytes(70000))),  # a 64-bit length
)


def parse_all(data: bytes, chunks: list[int], *, side: Side, kernel: bool) -> object:
    """Feed ``data`` in ``chunks``; what the connection reports, comparable."""
    conn = Connection(side, max_size=65536 + 10)
    # The kernel itself, even where WSKIT_NO_EXTENSIONS keeps wskit off it.
    conn_module._parse_simple = compiled_parse_simple() if kernel else None
    try:
        pos = 0
        for size in [*chunks, len(data)]:
            conn.receive_data(data[pos : pos + size])
            pos += size
    finally:
        conn_module._parse_simple = ORIGINAL_PARSE_SIMPLE
    output = conn.data_to_send()
    # A client masks what it sends with random keys: compare sizes there.
    sent = [len(piece) for piece in output] if side is Side.CLIENT else output
    return conn.events_received(), sent, conn.close_sent, conn.state


@given(
    st.lists(
        st.tuples(FRAMES, st.sampled_from([0, 16, 64]), st.booleans()), min_size=1, max_size=8
    ),
    st.lists(st.integers(min_value=1, max_value=200), max_size=6),
    st.sampled_from([Side.SERVER, Side.CLIENT]),
)
def test_the_compiled_parser_reports_what_the_python_parser_reports(
    specs: list[tuple[tuple[int, bytes], int, bool]], chunks: list[int], side: Side
) -> None:
    masked = side is Side.SERVER  # a server receives masked frames
    data = b""
    for (b0, payload), form, wrong_mask in specs:
        data += raw_frame(b0, payload, masked=masked != wrong_mask, length_form=form)
    assert parse_all(data, chunks, side=side, kernel=True) == parse_all(
        data, chunks, side=side, kernel=False
    )


def test_parse_simple_takes_whole_messages_and_stops_at_anything_else() -> None:
    parse_simple = compiled_parse_simple()
    events: list[object] = []
    data = (
        raw_frame(0x81, "héllo".encode(), masked=True)
        + raw_frame(0x82, bytes(300), masked=True)
        + raw_frame(0x89, b"ping", masked=True)
    )
    stop = len(data) - 10
    assert parse_simple(data, 0, 0x80, 1000, events, DataReceived) == stop
    assert events == [DataReceived("héllo", True), DataReceived(bytes(300), True)]
    assert all(type(event) is DataReceived for event in events)
    # Each of these stops it at once, for the Python parser to handle.
    for frame in (
        raw_frame(0x82, b"unmasked", masked=False),  # the mask bit is wrong
        raw_frame(0x82, bytes(1001), masked=True),  # over max_size
        raw_frame(0x82, b"short form", masked=True, length_form=16),  # not shortest
        raw_frame(0x81, b"\xc3\x28", masked=True),  # invalid UTF-8
        raw_frame(0x81, b"cut short", masked=True)[:-1],  # incomplete
        raw_frame(0x01, b"fragment", masked=True),
    ):
        assert parse_simple(frame, 0, 0x80, 1000, events, DataReceived) == 0
    assert len(events) == 2
    with pytest.raises(ValueError):
        parse_simple(data, len(data) + 1, 0x80, 1000, events, DataReceived)
    with pytest.raises(TypeError):
        parse_simple(data, 0, 0x80, 1000, (), DataReceived)


@given(st.binary(max_size=4096), st.binary(min_size=4, max_size=4), st.integers(0, 7))
def test_compiled_unmask_in_place_equals_python(data: bytes, key: bytes, offset: int) -> None:
    compiled_mask()  # built (else skip, or fail in CI)
    from wskit.speedups import frames as kernels

    compiled, python = bytearray(data), bytearray(data)
    kernels.unmask_in_place(compiled, key, offset)
    frames._unmask_in_place_python(python, key, offset)
    assert compiled == python
    rotated = key[offset % 4 :] + key[: offset % 4]
    assert bytes(compiled) == frames._apply_mask_python(data, rotated)


def test_new_payload_gives_bytes_filled_through_a_view_that_keeps_them_alive() -> None:
    compiled_mask()
    from wskit.speedups import frames as kernels

    payload, view = kernels.new_payload(6)
    assert type(payload) is bytes and len(payload) == 6 and not view.readonly
    view[:] = b"abcdef"
    kernels.unmask_in_place(view[2:], b"\x00\x00\x00\x20", 2)
    del payload  # the view holds the memory it writes, whoever else lets go
    view[0:1] = b"A"
    assert view.tobytes() == b"AbcDef"  # key byte 3 on payload byte 3
    with pytest.raises(ValueError):
        kernels.new_payload(-1)
    with pytest.raises(BufferError):
        kernels.unmask_in_place(b"read-only", b"abcd", 0)
    with pytest.raises(ValueError):
        kernels.unmask_in_place(bytearray(4), b"abc", 0)


# -- the loader: each kernel on its own ------------------------------------------------

# Where the write kernel is not built (macOS, Windows: setup.py), the frames
# kernels serve with the pure-Python writer. Emulated here by making the import
# of the write module fail, in a fresh interpreter.
WITHOUT_WRITE = """
import asyncio, sys
sys.modules["wskit.speedups.write"] = None  # its import now raises ImportError

import wskit
from wskit import speedups
from wskit.asyncio import direct_write
from wskit.protocol import frames

assert speedups.ENABLED and speedups.write_kernel is None
assert frames.apply_mask is speedups.apply_mask
assert direct_write.fanout is direct_write._fanout_python


async def echo(conn):
    async for message in conn:
        await conn.send(message)


async def main():
    async with wskit.serve(echo, "127.0.0.1", 0) as server:
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as conn:
            await conn.send("hello")
            assert await conn.recv() == "hello"
    print("frames without write: ok")


asyncio.run(main())
"""


def test_the_frames_kernels_serve_without_the_write_kernel() -> None:
    compiled_mask()  # the frames kernels are built (else skip, or fail in CI)
    env = {k: v for k, v in os.environ.items() if k != "WSKIT_NO_EXTENSIONS"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_WRITE], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "frames without write: ok" in result.stdout


# -- free-threaded and isolated interpreters -----------------------------------------------

#: Prints, per kernel, the slots of the module definition its PyInit function returns
#: (multi-phase init), or null when that function returns a module (single-phase).
#: Read with ctypes: Python cannot see a module's definition otherwise.
DEFINITION_SLOTS = """
import ctypes, importlib.util, json

POINTER = ctypes.sizeof(ctypes.c_void_p)
HEAD = object.__basicsize__  # PyObject_HEAD, whose last field is ob_type
DEF_TYPE = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "PyModuleDef_Type"))
found = {}
for name in ("frames", "write"):
    init = getattr(ctypes.PyDLL(importlib.util.find_spec(f"wskit.speedups.{name}").origin),
                   f"PyInit_{name}")
    init.restype = ctypes.c_void_p
    address = init()
    if ctypes.c_void_p.from_address(address + HEAD - POINTER).value != DEF_TYPE:
        found[name] = None
        continue
    # PyModuleDef: m_base (the head, m_init, m_index, m_copy), m_name, m_doc, m_size,
    # m_methods, then m_slots, an array of {int slot; void *value} ending with slot 0.
    at = ctypes.c_void_p.from_address(address + HEAD + 7 * POINTER).value
    slots = {}
    while at and ctypes.c_int.from_address(at).value:
        slots[ctypes.c_int.from_address(at).value] = (
            ctypes.c_void_p.from_address(at + POINTER).value or 0
        )
        at += 2 * POINTER
    found[name] = slots
print(json.dumps(found))
"""

# From CPython 3.13's moduleobject.h.
PY_MOD_MULTIPLE_INTERPRETERS, PY_MOD_GIL = "3", "4"
PY_MOD_PER_INTERPRETER_GIL_SUPPORTED, PY_MOD_GIL_USED = 2, 0

#: Loads both kernels in a subinterpreter with its own GIL (what 3.13's ``_interpreters``
#: makes by default), which refuses single-phase modules, and uses them there.
IN_A_SUBINTERPRETER = """
import _interpreters

interpreter = _interpreters.create()
try:
    failure = _interpreters.run_string(interpreter, '''
from wskit.speedups import frames, write
assert frames.apply_mask(b"abcd", b"\\\\x00\\\\x00\\\\x00\\\\x01") == b"abce"
assert write.fanout({}, b"frame", 0, None) == (0, [])
assert write.Writer.__module__ == "wskit.speedups.write"
''')
finally:
    _interpreters.destroy(interpreter)
print(failure.formatted if failure is not None else "subinterpreter: ok")
"""


def python_313() -> str:
    """A CPython 3.13 with wskit's kernels built: this one, or the bootstrap's .venv-3.13."""
    if sys.version_info[:2] == (3, 13):
        return sys.executable
    other = REPO_ROOT / ".venv-3.13" / "bin" / "python"
    require(other.exists(), "CPython 3.13 (.venv-3.13)")
    return str(other)


def run_on_313(script: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "WSKIT_NO_EXTENSIONS"}
    result = subprocess.run(
        [python_313(), "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="both kernels: Linux only")
def test_the_kernels_declare_that_they_need_the_gil_and_support_isolated_interpreters() -> None:
    # Multi-phase init with Py_mod_gil: a free-threaded build turns the GIL on when it
    # loads them (rather than run C code never checked for free threading, with a
    # warning); Py_mod_multiple_interpreters: no state shared between interpreters.
    slots = json.loads(run_on_313(DEFINITION_SLOTS))
    for name in ("frames", "write"):
        assert slots[name] is not None, f"{name}: single-phase init"
        assert slots[name][PY_MOD_GIL] == PY_MOD_GIL_USED, name
        assert slots[name][PY_MOD_MULTIPLE_INTERPRETERS] == PY_MOD_PER_INTERPRETER_GIL_SUPPORTED


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="both kernels: Linux only")
def test_the_kernels_load_and_work_in_a_subinterpreter_with_its_own_gil() -> None:
    assert run_on_313(IN_A_SUBINTERPRETER) == "subinterpreter: ok"
