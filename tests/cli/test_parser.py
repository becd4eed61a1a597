"""The command line of ``wskit`` (:mod:`wskit.cli.parser`)."""

from __future__ import annotations

import pytest

from wskit.cli.parser import build_parser


def test_parser_knows_the_commands() -> None:
    args = build_parser().parse_args(["echo", "--port", "1234", "--no-compression"])
    assert (args.command, args.port, args.no_compression) == ("echo", 1234, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
    args = build_parser().parse_args(["serve", "app:hub", "--log-level", "DEBUG", "--path", "/ws"])
    assert (args.command, args.app, args.log_level, args.path) == (
        "serve",
        "app:hub",
        "DEBUG",
        "/ws",
    )
    assert build_parser().parse_args(["--log-level", "INFO", "demo"]).log_level == "INFO"


def test_loop_choice_is_checked() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["echo", "--loop", "trio"])
    assert build_parser().parse_args(["serve", "app:hub", "--loop", "uvloop"]).loop == "uvloop"
