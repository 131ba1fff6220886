"""``tlsarotate man``: the roff page renders with groff and man without a warning, and lists
every command and option the parser has, and the exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.helpers import run_cli
from tlsarotate.cliargs import EXIT_STATUS, build_parser
from tlsarotate.climan import options, subcommands


def _page(tmp_path: Path) -> Path:
    proc = run_cli("man")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    page = tmp_path / "tlsarotate.1"
    page.write_text(proc.stdout)
    return page


def test_groff_renders_it_without_warnings(tmp_path: Path) -> None:
    page = _page(tmp_path)
    out = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-b", str(page)], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "TLSAROTATE(1)" in out.stdout


def test_man_l_shows_every_section_command_option_and_exit_code(tmp_path: Path) -> None:
    page = _page(tmp_path)
    out = subprocess.run(
        ["man", "-l", str(page)],
        capture_output=True,
        text=True,
        env={"MANWIDTH": "200", "PATH": "/usr/bin:/bin", "LANG": "C"},
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    text = out.stdout
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS",
                    "EXIT STATUS", "ENVIRONMENT"):  # fmt: skip
        assert f"\n{section}\n" in text, section
    parser = build_parser()
    for name, help, sub in subcommands(parser):
        assert f"\n   {name}\n" in text, name
        assert " ".join(help.split()) in " ".join(text.split()), name
        for a in options(sub):
            for opt in a.option_strings:
                assert opt in text, (name, opt)
    for code, meaning in EXIT_STATUS:
        assert f"\n       {code} " in text, code
        assert " ".join(meaning.split()[:6]) in " ".join(text.split()), code
