#!/usr/bin/env python3
"""Scale benchmarks of issue #16 that need no server: the CLI as a subprocess, whole-process
figures (wall, CPU, peak RSS via wait4), each beside its reference or the issue's goal.

    python bench/scale.py records  [--n 10000] [--repeat 3]    # vs the in-process floor
    python bench/scale.py plan     [--owners 10000 --zones 100] # goal <= 1 s CPU, <= 60 MB
    python bench/scale.py apply    [--owners 10000 --zones 100] # goal <= 2 s CPU
    python bench/scale.py linear   [--scale 0.1]                # plan 1k -> 10k -> 100k x scale
    python bench/scale.py validate [--owners 100000]            # goal <= 2 s CPU
    python bench/scale.py hook     [--repeat 10]                # one file vs the bare imports
    python bench/scale.py profile  [--owners 10000] [--command plan]   # cProfile top functions

Inputs come from bench/gen.py (services = zones unless ``--services``). Not a test; nothing
here runs in CI. The figures go in bench/README.md.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen
from bench.measure import Run, describe, median_run, ratio, run, table, tlsarotate
from bench.records_bench import make_certs

PARAMS = ("3 1 1", "3 0 1", "3 1 2")

# The in-process floor of `records`: one Python process, a plain loop over the files with the
# libraries tlsarotate uses (cryptography parse, DER, SPKI, hashlib), printing the same text.
FLOOR = r"""
import hashlib, sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
H = {1: hashlib.sha256, 2: hashlib.sha512}
params = [tuple(map(int, p.split())) for p in sys.argv[1].split(",")]
out = []
for f in sys.stdin.read().split("\n"):
    if not f:
        continue
    with open(f, "rb") as fh:
        c = x509.load_pem_x509_certificate(fh.read())
    der = c.public_bytes(Encoding.DER)
    spki = c.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    out.append("; " + f)
    for u, s, m in params:
        out.append(f"{u} {s} {m} " + H[m](spki if s else der).hexdigest())
sys.stdout.write("\n".join(out) + "\n")
"""


def parse_records(text: str) -> set[tuple[str, str]]:
    """(file, "U S M HEX") pairs of the multi-file text output."""
    got, cur = set(), ""
    for line in text.splitlines():
        if line.startswith("; "):
            cur = line[2:]
        elif line.strip():
            got.add((cur, line.strip().lower()))
    return got


def cmd_records(a: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="scale-records-") as tmp:
        files = [str(f) for f in make_certs(Path(tmp), a.n, "ecdsa-p256")]
        params = [x for p in PARAMS for x in ("--params", p)]
        ours = median_run(tlsarotate("records", *params, *files), a.repeat)
        floor_argv = [sys.executable, "-c", FLOOR, ",".join(PARAMS)]
        floors = []
        for _ in range(a.repeat):
            floors.append(run(floor_argv, stdin="\n".join(files) + "\n"))
        floors.sort(key=lambda r: r.cpu)
        floor = floors[len(floors) // 2]
        same = parse_records(ours.out) == parse_records(floor.out)
    print(f"records: {a.n} full-chain files (ecdsa-p256 leaf + CA), params {', '.join(PARAMS)}")
    print(f"agree: {'identical records from both' if same else 'RECORDS DIFFER'}")
    print(compare("tlsarotate records (1 call)", ours, "floor: Python loop", floor))
    print(f"goal: <= 1.3x the floor's CPU; now {ratio(ours.cpu, floor.cpu)}")
    if not same:
        raise SystemExit(1)


def compare(name: str, ours: Run, ref_name: str, ref: Run) -> str:
    rows = [
        (name, f"{ours.wall:.2f}", f"{ours.cpu:.2f}", f"{ours.rss_mb:.0f}"),
        (ref_name, f"{ref.wall:.2f}", f"{ref.cpu:.2f}", f"{ref.rss_mb:.0f}"),
        (
            "ratio",
            ratio(ours.wall, ref.wall),
            ratio(ours.cpu, ref.cpu),
            ratio(ours.rss_mb, ref.rss_mb),
        ),
    ]
    return table(rows, ("", "wall s", "CPU s", "max RSS MB"))


def make_input(d: Path, owners: int, zones: int, services: int | None) -> gen.Layout:
    lay = gen.generate(d, owners, zones, services or zones)
    run(tlsarotate("-c", str(lay.config), "validate"))  # a benchmark on a bad input is no use
    return lay


def added(out: str) -> int:
    return sum(1 for line in out.splitlines() if line.lstrip().startswith("+ "))


def cmd_plan(a: argparse.Namespace, command: str = "plan") -> None:
    with tempfile.TemporaryDirectory(prefix=f"scale-{command}-") as tmp:
        pristine = Path(tmp) / "pristine"
        lay = make_input(pristine, a.owners, a.zones, a.services)
        work = Path(tmp) / "work"
        cfg = work / "config.yaml"

        def fresh() -> None:  # apply changes the zone files and the state: start each anew
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(pristine, work, symlinks=True)

        fresh()
        r = median_run(tlsarotate("-c", str(cfg), command), a.repeat, ok=(0, 2), before=fresh)
    want = lay.owner_count * len(lay.params)
    shown = added(r.out)
    goal_cpu, goal_mb = {"plan": (1.0, 60.0), "apply": (2.0, None), "validate": (2.0, None)}[
        command
    ]
    print(
        f"{command}: {lay.owner_count} owners in {len(lay.zones)} zones, "
        f"{len(lay.services)} services (zonefile, observe: provider), median of {a.repeat}"
    )
    if command != "validate":
        note = "" if shown == want else f"  (expected {want}!)"
        print(f"records to add shown: {shown}{note}")
    rows = [(f"tlsarotate {command}", f"{r.wall:.2f}", f"{r.cpu:.2f}", f"{r.rss_mb:.0f}")]
    rows.append(("goal (issue #16)", "", f"<= {goal_cpu:g}", f"<= {goal_mb:g}" if goal_mb else ""))
    mb = ratio(r.rss_mb, goal_mb) if goal_mb else ""
    rows.append(("ratio to goal", "", ratio(r.cpu, goal_cpu), mb))
    print(table(rows, ("", "wall s", "CPU s", "max RSS MB")))


def cmd_linear(a: argparse.Namespace) -> None:
    rows = []
    prev: tuple[int, float] | None = None
    for owners in (1000, 10000, 100000):
        n, z = int(owners * a.scale), max(1, int(owners * a.scale) // 100)
        if n < 100:
            continue
        with tempfile.TemporaryDirectory(prefix="scale-linear-") as tmp:
            lay = make_input(Path(tmp), n, z, None)
            r = median_run(tlsarotate("-c", str(lay.config), "plan"), a.repeat, ok=(0, 2))
        # the marginal cost: start-up and imports are paid once, whatever the input
        step = f"{(r.cpu - prev[1]) / (n - prev[0]) * 1e6:.0f}" if prev else "-"
        prev = (n, r.cpu)
        rows.append((f"{n} owners / {z} zones", f"{r.wall:.2f}", f"{r.cpu:.2f}",
                     f"{r.rss_mb:.0f}", f"{r.cpu / n * 1e6:.0f}", step))  # fmt: skip
        print(f"  {rows[-1][0]}: {describe(r)}", flush=True)
    print(f"plan, 100 owners per zone, one service per zone, median of {a.repeat}")
    head = ("input", "wall s", "CPU s", "max RSS MB", "CPU us/owner", "us/owner added")
    print(table(rows, head))
    print("goal: 100k owners <= 10 s CPU, <= 200 MB; linear: 'us/owner added' flat")


def cmd_hook(a: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="scale-hook-") as tmp:
        (f,) = make_certs(Path(tmp), 1, "ecdsa-p256")
        ours = median_run(tlsarotate("records", str(f)), a.repeat)
        ref_argv = [sys.executable, "-c", "import cryptography.x509, dns.rdata"]
        ref = median_run(ref_argv, a.repeat)
    print(f"one `records` call on one file (a hook's cost), median of {a.repeat}")
    print(compare("tlsarotate records FILE", ours, "python3 -c 'import crypto.., dns..'", ref))
    print(f"goal: <= 1.5x the imports' wall; now {ratio(ours.wall, ref.wall)}")


def cmd_profile(a: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="scale-profile-") as tmp:
        lay = make_input(Path(tmp) / "in", a.owners, a.zones, a.services)
        prof = Path(tmp) / "prof.out"
        argv = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "tlsarotate"]
        run([*argv, "-c", str(lay.config), a.command], ok=(0, 2))
        st = pstats.Stats(str(prof))
        for key in ("tottime", "cumulative"):
            print(f"== {a.command} {a.owners} owners / {a.zones} zones: top {a.top} by {key}")
            st.sort_stats(key).print_stats(a.top)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("records")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--repeat", type=int, default=3)
    for name, owners, zones in (
        ("plan", 10000, 100),
        ("apply", 10000, 100),
        ("validate", 100000, 1000),
        ("profile", 10000, 100),
    ):
        p = sub.add_parser(name)
        p.add_argument("--owners", type=int, default=owners)
        p.add_argument("--zones", type=int, default=zones)
        p.add_argument("--services", type=int, default=None, help="default: one per zone")
        p.add_argument("--repeat", type=int, default=3 if owners <= 10000 else 1)
        if name == "profile":
            p.add_argument("--command", default="plan", choices=("plan", "apply", "validate"))
            p.add_argument("--top", type=int, default=25)
    p = sub.add_parser("linear")
    p.add_argument("--scale", type=float, default=0.1, help="1.0: 1k, 10k and 100k owners")
    p.add_argument("--repeat", type=int, default=1)
    p = sub.add_parser("hook")
    p.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args(argv)
    if a.cmd in ("plan", "apply", "validate"):
        cmd_plan(a, a.cmd)
    else:
        {"records": cmd_records, "linear": cmd_linear, "hook": cmd_hook, "profile": cmd_profile}[
            a.cmd
        ](a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
