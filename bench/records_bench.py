#!/usr/bin/env python3
"""Benchmark: TLSA records for N certificate files.

Compares, side by side in one run:

* ``tlsarotate records FILE...``  -- one process for all N files (how it is meant to be used);
* ``ldns-dane -n -c FILE create HOST 25 3 1 1``  -- one process per file (ldnsutils);
* ``tlsa --create --certificate FILE ...``  -- one process per file (hash-slinger).

The per-file tools are run on a sample (``--sample``, default 100) and their per-file cost is
projected to N; tlsarotate always runs on all N files. Before timing anything, the three tools'
records for the sample are checked to be identical, so the benchmark is also a cross-check.

    apt-get install -y ldnsutils hash-slinger
    python bench/records_bench.py --n 10000 --sample 100

Not a test and not run in CI; the figures go in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tlsarotate import pki  # noqa: E402

HOST = "mx.example.test"


def make_certs(d: Path, n: int, kind: str) -> list[Path]:
    ca = pki.make_ca(kind="ecdsa-p256")
    distinct = [pki.make_leaf(ca, [HOST], kind) for _ in range(min(n, 500))]
    files = []
    for i in range(n):
        f = d / f"cert{i:05d}.pem"
        f.write_bytes(pki.fullchain_pem(distinct[i % len(distinct)], ca))
        files.append(f)
    return files


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(argv: Sequence[str]) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env(), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def tlsarotate_cmd(files: Sequence[Path]) -> list[str]:
    return [sys.executable, "-m", "tlsarotate", "records", "--params", "3 1 1", *map(str, files)]


def ldns_cmd(f: Path) -> list[str]:
    return ["ldns-dane", "-n", "-c", str(f), "create", HOST, "25", "3", "1", "1"]


def hashslinger_cmd(f: Path) -> list[str]:
    return ["tlsa", "--create", "--certificate", str(f), "--usage", "3", "--selector", "1",
            "--mtype", "1", "--port", "25", HOST]  # fmt: skip


def last_hex(out: str) -> str:
    """The association data of the (last) TLSA line of a tool's output."""
    line = [ln for ln in out.splitlines() if "3 1 1 " in ln or ln.startswith("3 1 1")][-1]
    return line.split("3 1 1 ", 1)[1].split()[0].lower()


def tlsarotate_records(files: Sequence[Path]) -> dict[str, str]:
    out, cur = {}, None
    text = run(tlsarotate_cmd(files))
    if len(files) == 1:
        return {str(files[0]): last_hex(text)}
    for line in text.splitlines():
        if line.startswith("; "):
            cur = line[2:]
        elif cur is not None:
            out[cur] = last_hex(line)
    return out


def timed(fn: object, *args: object) -> float:
    t0 = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="certificate files (default 10000)")
    ap.add_argument("--sample", type=int, default=100, help="files for per-file tools")
    ap.add_argument("--kind", default="ecdsa-p256", choices=pki.KEY_TYPES)
    ap.add_argument("--repeat", type=int, default=3, help="runs of tlsarotate (median)")
    a = ap.parse_args()

    tools = {"ldns-dane": shutil.which("ldns-dane"), "tlsa": shutil.which("tlsa")}
    missing = [k for k, v in tools.items() if not v]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y ldnsutils hash-slinger")

    with tempfile.TemporaryDirectory(prefix="records-bench-") as tmp:
        files = make_certs(Path(tmp), a.n, a.kind)
        sample = files[: min(a.sample, a.n)]

        # 1. the three tools agree on the sample
        ours = tlsarotate_records(sample)
        for f in sample:
            want = ours[str(f)]
            ldns = last_hex(run(ldns_cmd(f)))
            hs = last_hex(run(hashslinger_cmd(f)))
            if not (want == ldns == hs):
                raise SystemExit(f"{f}: records differ: tlsarotate {want} ldns {ldns} tlsa {hs}")

        # 2. timings
        t_ours = statistics.median(
            timed(run, tlsarotate_cmd(files)) for _ in range(max(1, a.repeat))
        )
        t_one = statistics.median(timed(run, tlsarotate_cmd(files[:1])) for _ in range(5))
        t_ldns = timed(lambda: [run(ldns_cmd(f)) for f in sample])
        t_hs = timed(lambda: [run(hashslinger_cmd(f)) for f in sample])
        per_ldns, per_hs = t_ldns / len(sample), t_hs / len(sample)
        proj_ldns, proj_hs = per_ldns * a.n, per_hs * a.n

    py = platform.python_version()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpu(s), Python {py}")
    print(f"input:   {a.n} fullchain files ({a.kind} leaf + CA), records 3 1 1; "
          f"per-file tools timed on {len(sample)} files and projected to {a.n}")  # fmt: skip
    print(f"agree:   all three tools printed identical records for the {len(sample)} sampled files")
    print()
    print(f"{'tool':<40} {'per file':>12} {'total for N':>14} {'vs tlsarotate':>14}")
    rows = [
        ("tlsarotate records (1 process, N files)", t_ours / a.n, t_ours, 1.0),
        ("tlsarotate records (1 process, 1 file)", t_one, t_one * a.n, t_one * a.n / t_ours),
        ("ldns-dane create (1 process per file)", per_ldns, proj_ldns, proj_ldns / t_ours),
        ("hash-slinger tlsa --create (per file)", per_hs, proj_hs, proj_hs / t_ours),
    ]
    for name, per, total, ratio in rows:
        print(f"{name:<40} {per * 1000:>9.2f} ms {total:>12.2f} s {ratio:>13.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
