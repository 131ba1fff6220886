"""The long fault campaign: the harness of tests/support/faults/ for N SIGKILL trials on real BIND.

    python bench/faults.py --trials 2000 --seed 1 [--lanes 3] [--json out.json]

Runs ``--lanes`` zonefile and ``--lanes`` rfc2136 lanes in parallel (one BIND primary + secondary
with TSIG and inline signing), each trial a rollover to a fresh certificate killed at a seeded
random moment (uniform over the run, or inside the swap, a reload command or a provider write),
then re-run until idle; the independent sampler checks the invariants throughout (see
tests/support/faults/harness.py and tests/support/faults/sampler.py). Prints one line per 50
trials, then the
figures: trials, kill points by phase and by marker, violations by class (trials showing each)
with examples, re-runs and time to converge. Exit status 1 when any violation was seen.
Needs root (the zonefile lanes edit BIND's own zone files) and bind9, bind9-utils, openssl.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.faults.harness import Campaign, TrialResult


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--lanes", type=int, default=3, help="lanes per provider (default 3)")
    ap.add_argument("--renew", type=float, default=0.25, help="share of trials with a renewal")
    ap.add_argument("--two-runners", type=float, default=0.05, help="share with two runners")
    ap.add_argument("--max-reruns", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write every trial's figures here")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    print(f"fault campaign: {args.trials} trials, seed {seed}", flush=True)
    done = 0
    t0 = time.time()

    def progress(r: TrialResult) -> None:
        nonlocal done
        done += 1
        if r.violations:
            print(
                f"  trial {r.lane}#{r.index} ({r.phase} kill at {r.kill_point or '-'}): "
                + "; ".join(sorted({v.cls for v in r.violations})),
                flush=True,
            )
        if done % 50 == 0:
            print(f"  {done}/{args.trials} trials, {time.time() - t0:.0f}s", flush=True)

    with tempfile.TemporaryDirectory(prefix="tlsarotate-faults-") as d:
        c = Campaign(
            Path(d),
            zonefile_lanes=args.lanes,
            rfc2136_lanes=args.lanes,
            max_reruns=args.max_reruns,
        )
        try:
            c.start()
            s = c.run(
                args.trials,
                seed,
                renew_p=args.renew,
                two_runners_p=args.two_runners,
                progress=progress,
            )
        finally:
            c.stop()
    print(s.line())
    points = Counter(r.kill_point for r in s.results if r.killed)
    print("kill points (last marker before the kill):")
    for p, n in points.most_common():
        print(f"  {n:6d}  {p}")
    conv = [r.converge_seconds for r in s.results if r.converged]
    if conv:
        reruns = dict(sorted(Counter(r.reruns for r in s.results).items()))
        print(
            f"convergence after the kill: median {statistics.median(conv):.1f}s, "
            f"max {max(conv):.1f}s; re-runs {reruns}"
        )
    if s.violations:
        print("violations (examples):")
        print("\n".join(s.examples()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seed": seed,
                    "summary": s.line(),
                    "trials": [
                        {
                            "lane": r.lane,
                            "kind": r.kind,
                            "index": r.index,
                            "phase": r.phase,
                            "killed": r.killed,
                            "kill_point": r.kill_point,
                            "renewed": r.renewed,
                            "two_runners": r.two_runners,
                            "reruns": r.reruns,
                            "converged": r.converged,
                            "converge_seconds": round(r.converge_seconds, 2),
                            "violations": [[v.cls, v.detail] for v in r.violations],
                        }
                        for r in s.results
                    ],
                },
                indent=1,
            )
        )
    return 1 if s.violations or s.dead else 0


if __name__ == "__main__":
    raise SystemExit(main())
