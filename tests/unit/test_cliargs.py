"""The argument parser's conventions: -V is --version, and every option and argument of every
command has help text (the man page and completion are generated from it)."""

from __future__ import annotations

import argparse

import pytest

from tlsarotate import __version__
from tlsarotate.cliargs import EXIT_CODES, build_parser
from tlsarotate.climan import options, subcommands


def _all() -> list[tuple[str, argparse.ArgumentParser]]:
    p = build_parser()
    return [("tlsarotate", p), *((name, sub) for name, _, sub in subcommands(p))]


def test_every_option_of_every_command_has_help() -> None:
    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, parser in _all()
        for a in options(parser)
        if not (a.help and a.help.strip() and a.help != argparse.SUPPRESS)
    ]
    assert missing == []


def test_every_command_has_help_and_the_exit_codes() -> None:
    for name, help, sub in subcommands(build_parser()):
        assert help.strip(), name
        assert sub.epilog == EXIT_CODES, name


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_dash_V_is_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        build_parser().parse_args([flag])
    assert ei.value.code == 0
    assert capsys.readouterr().out == f"tlsarotate {__version__}\n"


def test_the_epilog_documents_plan_and_apply_codes() -> None:
    rows = {line.split()[0]: line for line in EXIT_CODES.splitlines()[1:] if line[2:3] != " "}
    assert set(rows) == {"0", "1", "2", "4", "0-3", "0-2"}  # 0-2: reports
    assert "changes to make now" in rows["2"] and "still waiting" in EXIT_CODES
    assert "only waiting" in rows["4"]


def test_log_to_before_or_after_the_command() -> None:
    p = build_parser()
    assert p.parse_args(["--log-to", "syslog", "plan"]).log_to == "syslog"
    assert p.parse_args(["plan", "--log-to", "journald"]).log_to == "journald"
    assert p.parse_args(["plan"]).log_to is None
