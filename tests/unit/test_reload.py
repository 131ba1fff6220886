"""reload: the outcome of a slot's reload command in one line, through a runner (no process is
started here; the real bounded run and its kill are tested in tests/test_swap.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tlsarotate.config import CertPaths, CertSlot
from tlsarotate.reload import run_reload

Run = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _slot(*argv: str, timeout: float = 60.0) -> CertSlot:
    paths = CertPaths(cert=Path("/nonexistent/c"), key=Path("/nonexistent/k"))
    return CertSlot("default", paths, None, reload=argv, reload_timeout=timeout)


def _runner(
    code: int = 0, out: str = "", err: str = "", exc: BaseException | None = None
) -> tuple[list[Sequence[str]], Run]:
    calls: list[Sequence[str]] = []

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        if exc is not None:
            raise exc
        return subprocess.CompletedProcess(list(argv), code, out, err)

    return calls, run


def test_no_reload_command_runs_nothing() -> None:
    calls, run = _runner(code=1)
    assert run_reload(_slot(), run) is None
    assert calls == []


def test_success_is_none_and_runs_the_argv_as_given() -> None:
    calls, run = _runner()
    assert run_reload(_slot("systemctl", "reload", "postfix"), run) is None
    assert calls == [("systemctl", "reload", "postfix")]


@pytest.mark.parametrize(
    ("out", "err", "tail"),
    [
        ("", "bad config\nsecond line\n", " exited 3: bad config"),
        ("only stdout\n", "", " exited 3: only stdout"),
        ("", "   \n", " exited 3"),
    ],
)
def test_a_failure_names_the_command_its_code_and_first_line(out: str, err: str, tail: str) -> None:
    _, run = _runner(code=3, out=out, err=err)
    assert run_reload(_slot("sh", "-c", "x"), run) == "'sh -c x'" + tail


def test_a_timeout_is_one_line_with_the_bound() -> None:
    _, run = _runner(exc=subprocess.TimeoutExpired(["x"], 7))
    got = run_reload(_slot("systemctl", "reload", "exim4", timeout=7.0), run)
    assert got == "'systemctl reload exim4' timed out after 7 s and was killed"


def test_a_command_that_cannot_start_is_one_line() -> None:
    _, run = _runner(exc=FileNotFoundError(2, "No such file or directory"))
    got = run_reload(_slot("/no/such/reload"), run)
    assert got == "'/no/such/reload' could not run: No such file or directory"
