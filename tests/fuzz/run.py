"""Run the fuzz targets of ``tests/fuzz/targets.py`` for a while each: ``make fuzz``.

Usage: ``python tests/fuzz/run.py [--seconds N] [--engine auto|atheris|hypothesis]
[--seed] [TARGET ...]`` (all targets by default).

Engines: atheris (coverage-guided libFuzzer, the Python code of wskit
instrumented) when it is installed, hypothesis otherwise (random inputs and
mutations of the corpus, then shrinking). Each target runs for ``--seconds``;
an input that fails, or runs longer than ``--timeout`` seconds, is saved as
``tests/fuzz/corpus/<target>/<sha1 of the input>``: the regression corpus,
committed, which ``tests/fuzz/test_corpus.py`` replays in ``make test``. The
run then stops that target (its bug comes first) and exits with status 1.

The corpus also holds seeds (``--seed`` writes them: valid frames, fragmented
text, a close frame, a valid handshake, wire messages of both protocols), from
which both engines start. atheris keeps the inputs that reached new code in
``build/fuzz/<target>/`` (not committed; ``make clean`` drops them), and
inserts the tokens of ``tests/fuzz/dicts/<target>.dict`` among its mutations.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"
DICTS = HERE / "dicts"
WORK = ROOT / "build" / "fuzz"
NAMES = ("frames", "http", "wire")

# The package of the targets is "fuzz", found under tests/ (as pytest finds it).
sys.path.insert(0, str(HERE.parent))


def corpus_files(name: str) -> list[Path]:
    """The regression corpus of one target, in a stable order."""
    directory = CORPUS / name
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def save(name: str, data: bytes) -> Path:
    """Keep ``data`` in the corpus of ``name``, named by its SHA-1 (as libFuzzer names it)."""
    path = CORPUS / name / hashlib.sha1(data, usedforsecurity=False).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- atheris --------------------------------------------------------------------------


def atheris_child(name: str, seconds: int, timeout: int, artifacts: Path) -> None:
    """In a process of its own (libFuzzer exits when done): fuzz one target."""
    import atheris

    with atheris.instrument_imports(include=["wskit"]):
        from fuzz.targets import TARGETS
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-artifact_prefix={artifacts}/",
        "-rss_limit_mb=4096",
        "-max_len=16384",
        "-print_final_stats=1",
        *([f"-dict={DICTS / f'{name}.dict'}"] if (DICTS / f"{name}.dict").exists() else []),
        str(work),  # libFuzzer adds what reaches new code to the first directory
        str(CORPUS / name),
    ]
    atheris.Setup(argv, TARGETS[name])
    atheris.Fuzz()


def run_atheris(name: str, seconds: int, timeout: int) -> tuple[int, list[Path]]:
    """Fuzz ``name`` with atheris in a subprocess; the runs made and the inputs saved."""
    artifacts = WORK / "artifacts" / name
    artifacts.mkdir(parents=True, exist_ok=True)
    for old in artifacts.iterdir():
        old.unlink()
    log = WORK / f"{name}.log"
    command = [sys.executable, __file__, "--child", name, "--seconds", str(seconds)]
    command += ["--timeout", str(timeout)]
    with open(log, "wb") as out:
        # libFuzzer stops by itself at -max_total_time; the margin covers start-up.
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 120)
    text = log.read_text(errors="replace")
    found = re.findall(r"stat::number_of_executed_units: (\d+)", text)
    saved = [save(name, artifact.read_bytes()) for artifact in sorted(artifacts.iterdir())]
    if saved:
        print(text[-3000:], file=sys.stderr)
    return (int(found[-1]) if found else 0), saved


# -- hypothesis -----------------------------------------------------------------------


class Hang(BaseException):
    """An input ran past the time limit (a BaseException: no ``except Exception`` eats it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("the input ran past the time limit")


def _mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``seed`` with byte edits: (where, what, how) overwrite, insert, delete or duplicate."""
    data = bytearray(seed)
    for where, what, how in edits:
        at = where % (len(data) + 1)
        if how == 0 and at < len(data):
            data[at] = what
        elif how == 1:
            data.insert(at, what)
        elif how == 2:
            del data[at : at + 1 + what % 8]
        else:
            data[at:at] = data[at : at + 1 + what]
    return bytes(data)


def run_hypothesis(name: str, seconds: int, timeout: int) -> tuple[int, list[Path]]:
    """Fuzz ``name`` with hypothesis in rounds until time is up; the runs and inputs saved."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from fuzz.targets import TARGETS

    target = TARGETS[name]
    seeds = [p.read_bytes() for p in corpus_files(name)] or [b""]
    edit = st.tuples(st.integers(0, 2**16), st.integers(0, 255), st.integers(0, 3))
    inputs = st.one_of(
        st.binary(max_size=2048),
        st.builds(_mutate, st.sampled_from(seeds), st.lists(edit, max_size=8)),
    )
    failing: list[bytes] = []
    runs = 0

    @settings(
        max_examples=2000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(inputs)
    def check(data: bytes) -> None:
        nonlocal runs
        runs += 1
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            target(data)
        except BaseException:
            failing.append(data)  # the last one is the shrunk input hypothesis reports
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    previous = signal.signal(signal.SIGALRM, _alarm)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                check()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                print(f"{name}: {type(exc).__name__}: {str(exc)[:2000]}", file=sys.stderr)
                return runs, [save(name, failing[-1])] if failing else []
    finally:
        signal.signal(signal.SIGALRM, previous)
    return runs, []


# -- seeds ----------------------------------------------------------------------------


def _frame(b0: int, payload: bytes, *, masked: bool) -> bytes:
    """A frame with first byte ``b0``, masked with a fixed key (seeds stay the same)."""
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, bit | n])
    elif n < 65536:
        head = bytes([b0, bit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def _seed_frames() -> Iterator[bytes]:
    from wskit.protocol.deflate import PerMessageDeflate

    close = (1000).to_bytes(2, "big") + b"bye"
    for masked, flags in ((True, 0x00), (False, 0x01)):  # server, then client
        f = functools.partial(_frame, masked=masked)
        yield bytes([flags, 0]) + f(0x81, b"hello") + f(0x82, bytes(range(200))) + f(0x88, close)
        # Fragmented text with a ping between the fragments, one byte at a time.
        yield bytes([flags, 1]) + f(0x01, b"frag") + f(0x89, b"ping") + f(0x80, "ménts".encode())
        yield bytes([flags | 0x20, 3]) + f(0x82, bytes(300)) + f(0x8A, b"pong") + f(0x88, b"")
    codec = PerMessageDeflate(
        is_client=True,
        server_no_context_takeover=False,
        client_no_context_takeover=False,
        server_max_window_bits=15,
        client_max_window_bits=15,
    )
    one = codec.encode(b"compressed " * 20, True)
    first, last = codec.encode(b"in two ", False), codec.encode(b"fragments " * 10, True)
    yield (
        bytes([0x02, 0])
        + _frame(0xC1, one, masked=True)
        + _frame(0x41, first, masked=True)
        + _frame(0x80, last, masked=True)
        + _frame(0x88, close, masked=True)
    )
    yield bytes([0x00, 0x85]) + _frame(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce", masked=True)


def _seed_http() -> Iterator[bytes]:
    from fuzz.targets import _KEY
    from wskit.protocol.handshake import accept_key

    request = (
        b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        b"Origin: http://example.com:8080\r\nCookie: a=1; b=2\r\n\r\n"
    )
    yield b"\x00" + request
    yield bytes([0x02 | 7 << 2]) + request  # strict origins, 7-byte chunks
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(_KEY)}\r\nSec-WebSocket-Protocol: chat\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
    ).encode()
    yield b"\x03" + response + b"\x81\x02hi"
    yield b"\x01" + b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n"
    yield bytes([0x01 | 5 << 2]) + (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nmove\r\n0\r\n\r\n"
    )


def _seed_wire() -> Iterator[bytes]:
    for message in (
        '{"a":["move",{"x":1,"y":2}]}',
        '{"i":1,"a":["add",1,"two"]}',
        '{"c":"chat","a":["say","hi",[1,2,3],{"name":"a","size":3}]}',
        '{"i":3,"d":[1,2]}',
        '{"i":"4","e":{"message":"no"},"_":1}',
        '{"i":5,"x":1}',
    ):
        yield b"\x00" + message.encode()
    yield b"\x01" + b'{"a":["point",{"x":1.0,"y":NaN},"red",[1,"x"]]}'
    # Nesting for the mutations to deepen (a depth limit, or RecursionError, lies beyond).
    nested = b'{"a":["deep",' + b"[" * 40 + b'{"x":' * 20 + b"1" + b"}" * 20 + b"]" * 40 + b"]}"
    yield b"\x00" + nested
    yield b"\x01" + nested
    prefix = "iris-websocket-message:"
    for tag, text in ((0, "hello"), (1, "42"), (2, "true"), (4, '{"x":1,"y":2}')):
        yield b"\x02" + f"{prefix}chat;{tag};{text}".encode()
    yield b"\x07" + b"join;3;\xff\x00bytes"


SEEDS: dict[str, Callable[[], Iterator[bytes]]] = {
    "frames": _seed_frames,
    "http": _seed_http,
    "wire": _seed_wire,
}


# -- main -----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"of {', '.join(NAMES)}")
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--seed", action="store_true", help="write the seeds into the corpus")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.targets) - set(NAMES)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.child:
        atheris_child(args.child, args.seconds, args.timeout, WORK / "artifacts" / args.child)
        return 0
    if args.seed:
        for name in args.targets or NAMES:
            for data in SEEDS[name]():
                print(f"seed {save(name, data).relative_to(ROOT)}")
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "hypothesis"
        else:
            engine = "atheris"
    run = run_atheris if engine == "atheris" else run_hypothesis
    failed = False
    print(f"{'target':<8} {'engine':<10} {'seconds':>7} {'inputs run':>11}  saved")
    for name in args.targets or NAMES:
        started = time.monotonic()
        runs, saved = run(name, args.seconds, args.timeout)
        took = time.monotonic() - started
        shown = ", ".join(str(p.relative_to(ROOT)) for p in saved) or "-"
        print(f"{name:<8} {engine:<10} {took:7.0f} {runs:11d}  {shown}", flush=True)
        failed = failed or bool(saved)
    if failed:
        print("make fuzz: failing inputs saved; commit them with the fix", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
