"""Whole-process figures of a command: wall time, CPU time (user + system) and peak RSS.

Each command runs as a child process and is reaped with ``os.wait4``, so the CPU figures are that
child's own (its children's included), never the benchmark's. The peak RSS comes from GNU
``/usr/bin/time`` wrapped around the command when it is installed: a child forked from the
benchmark reports the benchmark's own size as its ``ru_maxrss`` (Linux keeps the high-water mark
of the image it had before ``exec``), a child of the small ``time`` process does not.
Used by the benchmarks in bench/ (not a test; nothing here runs in CI).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


@dataclass(frozen=True)
class Run:
    """One process: wall and CPU seconds, peak resident set in MB, exit status, output."""

    wall: float
    cpu: float
    rss_mb: float
    rc: int
    out: str
    err: str


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH (tlsarotate and tests importable)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra or {})
    return e


def tlsarotate(*args: str) -> list[str]:
    """argv of the public CLI: ``python3 -m tlsarotate ARGS``."""
    return [sys.executable, "-m", "tlsarotate", *args]


def run(argv: Sequence[str], *, stdin: str | None = None, ok: Sequence[int] = (0,)) -> Run:
    """Run ``argv`` to completion; figures from ``wait4``. An exit status outside ``ok`` stops
    the benchmark with the command's stderr."""
    with (
        tempfile.TemporaryFile() as inp,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        inp.write((stdin or "").encode())
        inp.seek(0)
        wrap = [TIME, "-q", "-f", "%M", "-o", rss.name] if TIME else []
        start = time.perf_counter()
        p = subprocess.Popen(
            [*wrap, *argv],
            stdin=inp if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env(),
        )
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        kb = int(rss.read().split()[-1]) if TIME else ru.ru_maxrss
        r = Run(
            wall,
            ru.ru_utime + ru.ru_stime,
            kb / 1024,
            p.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
    if r.rc not in ok:
        tail = "\n".join((r.err or r.out).strip().splitlines()[-8:])
        raise SystemExit(f"{' '.join(argv[:6])} ... exited {r.rc}:\n{tail}")
    return r


def median_run(
    argv: Sequence[str],
    repeat: int,
    *,
    ok: Sequence[int] = (0,),
    before: Callable[[], object] | None = None,
) -> Run:
    """The median of ``repeat`` runs, figure by figure (``before()`` runs untimed before each);
    the output is that of the last run."""
    runs = []
    for _ in range(repeat):
        if before:
            before()
        runs.append(run(argv, ok=ok))
    last = runs[-1]
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        statistics.median(r.rss_mb for r in runs),
        last.rc,
        last.out,
        last.err,
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain fixed-width table (first column left-aligned, the rest right-aligned)."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        parts = [r[0].ljust(widths[0]), *rest]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def describe(r: Run) -> str:
    return f"{r.wall:.2f} s wall, {r.cpu:.2f} s CPU, {r.rss_mb:.0f} MB"
