"""The command line of ``wskit`` (:mod:`wskit.cli.parser`)."""

from __future__ import annotations

import pytest

import wskit
from wskit.cli.parser import _worker_args, build_parser, limit_options


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


def test_server_limit_flags_become_server_options() -> None:
    args = build_parser().parse_args(["echo"])
    # --max-connections left out keeps ServerOptions' default (from the open-file limit).
    assert limit_options(args) == {
        "max_connections_per_ip": None,
        "handshake_rate": None,
        "handshake_burst": 10,
    }
    args = build_parser().parse_args(
        [
            "serve",
            "app:hub",
            "--max-connections",
            "0",
            "--max-connections-per-ip",
            "5",
            "--handshake-rate",
            "2.5",
            "--handshake-burst",
            "20",
        ]
    )
    assert limit_options(args) == {
        "max_connections": None,  # 0: no limit
        "max_connections_per_ip": 5,
        "handshake_rate": 2.5,
        "handshake_burst": 20,
    }
    wskit.ServerOptions(**limit_options(args))  # every key is a field
    with pytest.raises(SystemExit):
        build_parser().parse_args(["echo", "--max-connections", "-1"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["echo", "--handshake-rate", "nan"])


@pytest.mark.parametrize(
    "flags",
    [[], ["--max-connections", "100", "--max-connections-per-ip", "3", "--handshake-rate", "0.5"]],
)
def test_workers_get_the_same_limits(flags: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "app:hub", "--workers", "2", *flags])
    worker = parser.parse_args([*_worker_args(args), "--host", "127.0.0.1", "--port", "1"])
    assert limit_options(worker) == limit_options(args)


def test_version_option_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"wskit {wskit.__version__}\n"
