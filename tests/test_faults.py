"""The fault-injection harness's CI share (issue #15): kill campaigns and provider faults on
real BIND, checked by the independent sampler (see tests/faults/harness.py).

- ``test_kill_campaign``: ``TLSAROTATE_FAULT_TRIALS`` (default 200) SIGKILL trials over zonefile
  and rfc2136 lanes in parallel, seeded by ``TLSAROTATE_FAULT_SEED`` (default: a random seed,
  printed and in the failure message). Kill points: uniform over the run, and inside the swap,
  the reload commands and the provider writes. 0 violations, every trial converged.
- ``test_dns_fault`` / ``test_zonefile_fault`` / ``test_reload_fault``: one provider fault each at
  the boundary: one clear line, no traceback, nothing half-applied, and the re-run converges.

The long campaign is ``python bench/faults.py --trials 2000`` (bench/README.md).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.name
import pytest

from tests.faults import inject
from tests.faults.harness import INTERVAL, Campaign, FaultBind, Lane, Run
from tests.faults.sampler import Violation, check, deployed_timeline, sha

pytestmark = [pytest.mark.faults, pytest.mark.servers, pytest.mark.slow]


def _seed() -> int:
    env = os.environ.get("TLSAROTATE_FAULT_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 2**31)


def test_kill_campaign(capsys: pytest.CaptureFixture[str]) -> None:
    trials = int(os.environ.get("TLSAROTATE_FAULT_TRIALS", "200"))
    lanes = int(os.environ.get("TLSAROTATE_FAULT_LANES", "3"))
    seed = _seed()
    with capsys.disabled():
        print(
            f"\nfault campaign: seed {seed} (TLSAROTATE_FAULT_SEED={seed} reproduces the choices)"
        )
    with tempfile.TemporaryDirectory(prefix="tlsarotate-faults-") as d:
        c = Campaign(Path(d), zonefile_lanes=lanes, rfc2136_lanes=lanes, max_reruns=2)
        try:
            c.start()
            s = c.run(trials, seed, renew_p=0.25, two_runners_p=0.05)
        finally:
            c.stop()
    with capsys.disabled():
        print(s.line())
    assert len(s.results) == trials, s.line() + "\n" + "\n".join(s.dead)
    assert sum(r.killed for r in s.results) >= trials // 2, s.line()
    assert not s.violations, "\n".join([s.line(), *s.examples()])


# ---- provider faults --------------------------------------------------------------------


@dataclass
class FaultWorld:
    bind: FaultBind
    proxy: inject.DnsFaultProxy
    rfc: Lane
    zf: Lane


@pytest.fixture(scope="module")
def fault_world() -> Iterator[FaultWorld]:
    with tempfile.TemporaryDirectory(prefix="tlsarotate-faults-") as d:
        root = Path(d)
        bind = FaultBind(root / "bind", ["f.test."], ["fz.test."])
        bind.start()
        owner = dns.name.from_text("_25._tcp.mx.f.test.")

        def concurrent_change() -> None:
            # "another client" adds a record of its own at the owner
            bind.update(
                "f.test.",
                build=lambda m: m.add(owner, 1, "TLSA", "3 1 1 " + "ab" * 32),
                wait=False,
            )

        proxy = inject.DnsFaultProxy(bind.primary, bind.keyring, concurrent_change)
        rfc = Lane(bind, "rfc2136", "f.test.", root, provider_port=proxy.port)
        zf = Lane(bind, "zonefile", "fz.test.", root)
        try:
            rfc.setup()
            zf.setup()
            yield FaultWorld(bind, proxy, rfc, zf)
        finally:
            rfc.stop()
            zf.stop()
            proxy.close()
            bind.stop()


@dataclass
class Before:
    t: float
    serving: list[frozenset[str]]
    deployed: str
    zone_file: bytes | None


def _before(lane: Lane) -> Before:
    zf = lane.world.zone_file(lane.zone).read_bytes() if lane.kind == "zonefile" else None
    return Before(
        time.time(),
        lane.serving(),
        sha((lane.dir / "deployed/fullchain.pem").read_bytes()),
        zf,
    )


def _one_clear_line(r: Run, *needles: str) -> str:
    out = r.out + r.err
    assert "Traceback" not in out, out
    assert r.rc not in (0, None) and not r.timed_out, (r.rc, out)
    errors = [ln for ln in r.err.splitlines() if ln.startswith("tlsarotate: error:")]
    assert len(errors) == 1, r.err
    line = errors[0]
    for n in needles:
        assert n in line, (n, line)
    return line


def _nothing_half_applied(lane: Lane, b: Before) -> None:
    assert lane.serving() == b.serving
    assert sha((lane.dir / "deployed/fullchain.pem").read_bytes()) == b.deployed
    state = json.loads((lane.dir / "state/svc.json").read_text())
    assert not state.get("swap"), state
    if b.zone_file is not None:
        assert lane.world.zone_file(lane.zone).read_bytes() == b.zone_file


def _converges(lane: Lane, since: float, runs: list[Run]) -> None:
    r = lane.apply(timeout=60)
    runs.append(r)
    final = lane.next_hash()
    problems: list[Violation] = []
    if r.rc != 0:
        problems.append(Violation("no-convergence", time.time(), r.out + r.err))
    problems += lane.converged_checks(final, runs)
    lane.refresh_served()
    assert lane.sampler is not None
    ds, fs = lane.sampler.window(since, time.time())
    dep = deployed_timeline(lane.sampler.all_files())
    v, _ = check(ds, fs, lane.served, dep, lane.certs, lane.key_of, INTERVAL)
    problems += v
    if problems:
        lane.repair(final)  # so that the next test of the module starts from idle
    assert not problems, [(p.cls, p.detail) for p in problems]


@pytest.mark.parametrize(
    "fault,count,needle",
    [
        ("servfail", 1, "SERVFAIL"),
        ("refused", 1, "REFUSED"),
        ("badsig", 1, "BADSIG"),
        ("timeout", 2, "no answer"),
        ("blackhole", 2, "no answer"),
        ("nxrrset", 1, ""),
        ("lost-answer", 1, ""),
    ],
)
def test_dns_fault(fault_world: FaultWorld, fault: str, count: int, needle: str) -> None:
    """An rfc2136 fault on the publish UPDATE: one clear line and nothing applied (or, for a
    concurrent change and a lost answer, a re-plan that finishes the job); then the re-run
    converges with the invariants held throughout."""
    lane, proxy = fault_world.rfc, fault_world.proxy
    b = _before(lane)
    lane.write_next(lane.new_pair())
    proxy.arm(fault, count)
    try:
        r = lane.apply(timeout=40)
    finally:
        proxy.disarm()
    assert proxy.injected[-1:] == [fault]
    runs = [r]
    if needle:
        _one_clear_line(r, needle, "rfc2136")
        _nothing_half_applied(lane, b)
    else:
        assert "Traceback" not in r.out + r.err, r.err
    _converges(lane, b.t, runs)


@pytest.mark.parametrize("fault", ["read-only", "reload-fails", "reload-hangs"])
def test_zonefile_fault(fault_world: FaultWorld, fault: str) -> None:
    """A read-only zone file (a read-only bind mount: root is not stopped by chmod), a zone
    reload that fails, one that hangs (killed after 5 s, as a unit timeout would)."""
    lane = fault_world.zf
    b = _before(lane)
    lane.write_next(lane.new_pair())
    runs: list[Run] = []
    if fault == "read-only":
        r = lane.apply(prefix=inject.read_only_prefix(lane.world.zone_file(lane.zone).parent))
        runs.append(r)
        _one_clear_line(r, "zone file", "Read-only file system")
        _nothing_half_applied(lane, b)
    elif fault == "reload-fails":
        flag = lane.dir / "fault-zreload-fail"
        flag.touch()
        try:
            r = lane.apply()
        finally:
            flag.unlink()
        runs.append(r)
        _one_clear_line(r, "zone file", "reload")
        _nothing_half_applied(lane, b)
    else:
        flag = lane.dir / "fault-zreload-hang"
        flag.touch()
        try:
            r = lane.apply(timeout=5)
        finally:
            flag.unlink()
        assert r.timed_out
    _converges(lane, b.t, runs)


@pytest.mark.parametrize("kind", ["rfc2136", "zonefile"])
@pytest.mark.parametrize("fault", ["fails", "hangs"])
def test_reload_fault(fault_world: FaultWorld, kind: str, fault: str) -> None:
    """The service's reload fails (the swap is rolled back: one line, previous pair in place,
    records not retired) or hangs (killed after 5 s); then the re-run converges."""
    lane = fault_world.rfc if kind == "rfc2136" else fault_world.zf
    b = _before(lane)
    lane.write_next(lane.new_pair())
    flag = lane.dir / f"fault-reload-{'fail' if fault == 'fails' else 'hang'}"
    flag.touch()
    try:
        r = lane.apply(timeout=5 if fault == "hangs" else 40)
    finally:
        flag.unlink()
    runs = [r]
    if fault == "fails":
        _one_clear_line(r, "reload", "restored")
        assert sha((lane.dir / "deployed/fullchain.pem").read_bytes()) == b.deployed
    else:
        assert r.timed_out
    _converges(lane, b.t, runs)
