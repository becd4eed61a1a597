"""The fuzz corpus replayed: every input that ever failed, and the seeds, still pass.

``make fuzz`` (``tests/fuzz/run.py``) saves each failing input under
``tests/fuzz/corpus/<target>/``; here each one goes through the same entry
point again (``tests/fuzz/targets.py``), so a fixed bug stays fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.run import CORPUS, NAMES, SEEDS, corpus_files
from fuzz.targets import TARGETS, FrameConfig, _run_frames, compiled_parse_simple
from wskit.exceptions import InvalidRequest
from wskit.protocol.events import CloseReceived, DataReceived
from wskit.protocol.handshake import server_handshake
from wskit.protocol.http11 import RequestParser

INPUTS = [path for name in NAMES for path in corpus_files(name)]


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.name[:12]}")
def test_the_corpus_input_passes_its_target(path: Path) -> None:
    TARGETS[path.parent.name](path.read_bytes())


def test_every_target_has_a_corpus_and_every_seed_is_in_it() -> None:
    assert sorted(TARGETS) == sorted(NAMES) == sorted(p.name for p in CORPUS.iterdir())
    for name in NAMES:
        kept = {path.read_bytes() for path in corpus_files(name)}
        assert set(SEEDS[name]()) <= kept, f"run tests/fuzz/run.py --seed {name}"


def test_the_frame_seeds_are_whole_conversations() -> None:
    """The seeds reach past the first frame: messages arrive, both parsers agree."""
    seeds = list(SEEDS["frames"]())
    for kernel in {None, compiled_parse_simple()}:
        messages = closes = 0
        errors = []
        for data in seeds:
            config = FrameConfig.read(data[0], data[1])
            events, _, (error, _, _, _) = _run_frames(config, data[2:], kernel)
            messages += sum(type(e) is DataReceived and e.fin for e in events)
            closes += sum(type(e) is CloseReceived for e in events)
            errors.append(error)
        assert messages >= 10 and closes >= 5
        # The last seed is text cut inside a character: the one meant to fail.
        assert errors == ["NoneType"] * (len(seeds) - 1) + ["InvalidUTF8"]


def test_the_handshake_seed_is_a_valid_handshake() -> None:
    data = next(iter(SEEDS["http"]()))
    request = RequestParser().feed(data[1:])
    assert request is not None
    try:
        server_handshake(request, subprotocols=["chat"])
    except InvalidRequest as exc:  # pragma: no cover - the assertion's message
        raise AssertionError(f"the seed is refused: {exc}") from None
