"""``tlsarotate completion bash|zsh|tcsh``: the script bash sources registers a completion
that completes command names, a command's options and the shells (COMP_WORDS simulated)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support.helpers import run_cli

# the script is sourced, then the function `complete -p tlsarotate` names is called the way
# readline calls it, and COMPREPLY printed one per line
DRIVER = r"""
source "$1"; shift
complete -p tlsarotate >&2
fn=$(complete -p tlsarotate | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
"$fn" tlsarotate "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    proc = run_cli("completion", "bash")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    path = tmp_path_factory.mktemp("completion") / "tlsarotate.bash"
    path.write_text(proc.stdout)
    return path


def complete(script: Path, *words: str) -> list[str]:
    out = subprocess.run(
        ["bash", "-c", DRIVER, "driver", str(script), *words], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "complete " in out.stderr and " tlsarotate" in out.stderr, out.stderr
    return out.stdout.split()


def test_bash_sources_it_and_registers_tlsarotate(script: Path) -> None:
    out = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(script))}; complete -p tlsarotate"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.strip().endswith(" tlsarotate")


def test_command_names(script: Path) -> None:
    assert sorted(complete(script, "tlsarotate", "p")) == ["plan", "probe"]
    everything = complete(script, "tlsarotate", "")
    for name in ("records", "validate", "plan", "apply", "status", "check", "probe",
                 "install-hooks", "demo", "completion", "man"):  # fmt: skip
        assert name in everything


def test_options_and_choices(script: Path) -> None:
    assert sorted(complete(script, "tlsarotate", "apply", "--lo")) == ["--lock-timeout", "--log-to"]
    assert complete(script, "tlsarotate", "completion", "") == ["bash", "zsh", "tcsh"]
    assert complete(script, "tlsarotate", "check", "--output", "") == ["text", "json", "nagios"]


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_other_shells(shell: str) -> None:
    proc = run_cli("completion", shell)
    assert proc.returncode == 0 and "tlsarotate" in proc.stdout, proc.stderr
    assert "plan" in proc.stdout and "lock-timeout" in proc.stdout
