"""Plain helpers the tests share: run the CLI as a real subprocess, check one-line errors, make
TLSA test data. Fixtures live in tests/conftest.py; real-server fixtures in tests/support/."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.change import TlsaRRset

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike[str] | int | float,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tlsarotate ARGS`` from this checkout as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tlsarotate", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        input=input,
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Bad input: non-zero exit, exactly one line on stderr, no traceback, naming the culprit."""
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


def assert_one_line(err: BaseException, *needles: str, secrets: Sequence[str] = ()) -> str:
    """An expected error's text: one non-empty line without surrounding blanks, naming every
    needle, showing no secret. Returns the text."""
    text = str(err)
    assert "\n" not in text and text.strip() == text and text, repr(text)
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    for s in secrets:
        assert s not in text, f"secret leaked in {text!r}"
    return text


def rd(i: int, params: str = "3 1 1") -> TLSA:
    """A distinct TLSA rdata per ``i`` (its data: SHA-256 of ``str(i)``)."""
    return records.from_text(f"{params} {hashlib.sha256(str(i).encode()).hexdigest()}")


def rrset(*tags: int, ttl: int = 300) -> TlsaRRset:
    """A TLSA RRset of ``3 1 1 <tag as 64 hex digits>`` records."""
    return TlsaRRset.of(ttl, [records.from_text(f"3 1 1 {t:064x}") for t in tags])
