"""The fault-injection harness's CI share (issue #15): kill campaigns and provider faults on
real BIND, checked by the independent sampler (see tests/support/faults/harness.py).

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
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.name
import pytest

from tests.support.fake_cloudflare import FakeCloudflare, cf_server  # noqa: F401  (fixture)
from tests.support.faults import inject
from tests.support.faults.harness import INTERVAL, Campaign, FaultBind, Lane, Run
from tests.support.faults.sampler import Violation, check, deployed_timeline, sha
from tests.support.helpers import run_cli
from tests.support.moto_server import moto_url, raw_client, route53_env  # noqa: F401  (fixtures)

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
    report = "\n".join([s.line(), *s.examples(), *s.dead])
    assert not s.violations and not s.dead, report
    assert len(s.results) == trials, report
    assert sum(r.killed for r in s.results) >= trials // 2, report


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
    v = check(ds, fs, lane.served, dep, lane.certs, lane.key_of, INTERVAL)
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
    if fault == "nxrrset":
        # the concurrent writer's record is another writer's (#15): kept, and said so in the
        # plan; removing it takes --force-cleanup (done here, so the lane ends as it began)
        plan = lane.run("plan", "--output", "json")
        doc = json.loads(plan.out)
        foreign = [f["record"] for svc in doc["services"] for f in svc["foreign"]]
        assert foreign == ["3 1 1 " + "ab" * 32], plan.out
        forced = lane.run("apply", "--force-cleanup")
        runs.append(forced)
        assert forced.rc in (0, 2) and "Traceback" not in forced.err, forced.err
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


# ---- HTTP provider faults (Route 53 on moto_server behind a fault proxy; fake Cloudflare) ---

CF_TOKEN = "cf-faults-token-8c7b6a5f4e"


class HttpWorld:
    """One service on an HTTP provider (``observe: provider``: no name servers to ask)."""

    def __init__(
        self, root: Path, provider: str, read: Callable[[], frozenset[str]], ttl: int = 1
    ) -> None:
        from tlsarotate import pki

        self.root, self.read = root, read
        self.ca = pki.make_ca()
        self.pairs: dict[str, tuple[bytes, bytes]] = {}
        reload = root / "reload.sh"
        reload.write_text("#!/bin/sh\nexit 0\n")
        reload.chmod(0o755)
        (root / "config.yaml").write_text(
            "state_dir: state\nsafety_margin: 0\nproviders:\n  p:\n"
            + provider
            + "services:\n  - name: svc\n    zone: h.test.\n    provider: p\n"
            f"    hosts: [mx.h.test]\n    ttl: {ttl}\n    observe: provider\n"
            "    allow_unsigned: true\n    certificate:\n"
            "      deployed: {cert: deployed/fullchain.pem, key: deployed/privkey.pem}\n"
            "      next: {cert: next/fullchain.pem, key: next/privkey.pem}\n"
            f"      reload: [{reload}]\n"
        )
        first = self.new_pair()
        for slot in ("deployed", "next"):
            self.write(slot, first)

    def new_pair(self) -> str:
        from tlsarotate import pki

        leaf = pki.make_leaf(self.ca, ["mx.h.test"])
        chain = pki.fullchain_pem(leaf, self.ca)
        self.pairs[sha(chain)] = (chain, leaf.key_pem)
        return sha(chain)

    def write(self, slot: str, h: str) -> None:
        chain, key = self.pairs[h]
        d = self.root / slot
        d.mkdir(exist_ok=True)
        (d / "privkey.pem").write_bytes(key)
        (d / "fullchain.pem").write_bytes(chain)

    def deployed(self) -> str:
        return sha((self.root / "deployed/fullchain.pem").read_bytes())

    def want(self, h: str) -> frozenset[str]:
        from tlsarotate import material, records

        m = material.parse(self.pairs[h][0], "chain")
        ps = [records.parse_params(p) for p in ("3 1 1", "3 0 1")]
        return frozenset(records.to_text(rd) for rd in records.build_all(m, ps))

    def apply(self) -> subprocess.CompletedProcess[str]:
        return run_cli("-c", self.root / "config.yaml", "apply", "--wait", timeout=120)


def _http_case(
    world: HttpWorld, arm: Callable[[], None], disarm: Callable[[], None], lost: bool = False
) -> None:
    """``lost``: the faulty request was carried out and only its answer lost: the write is then
    all there (or, re-planned, done), never half of it."""
    r = world.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    old = world.deployed()
    before = world.read()
    assert before == world.want(old)
    nxt = world.new_pair()
    world.write("next", nxt)
    arm()
    try:
        r = world.apply()
    finally:
        disarm()
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    if r.returncode != 0:
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("tlsarotate: error:")]
        assert len(errors) == 1, r.stderr
        # nothing half-applied
        assert world.read() in ((before, before | world.want(nxt)) if lost else (before,))
        assert world.deployed() == old
    r = world.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert world.deployed() == nxt
    assert world.read() == world.want(nxt)
    state = json.loads((world.root / "state/svc.json").read_text())
    assert not state.get("swap"), state


@pytest.mark.parametrize(
    "status,count,commit",
    [
        (429, 1, False),
        (429, 50, False),
        (500, 50, False),
        (503, 1, False),
        (400, 1, False),  # PriorRequestNotComplete
        (400, 50, False),
        (500, 1, True),  # carried out, the answer lost
    ],
)
def test_route53_fault(
    route53_env: str,  # noqa: F811
    tmp_path: Path,
    status: int,
    count: int,
    commit: bool,
) -> None:
    raw = raw_client(route53_env)
    zid = raw.create_hosted_zone(Name="h.test.", CallerReference=f"f{time.time()}")["HostedZone"][
        "Id"
    ]
    proxy = inject.HttpFaultProxy(route53_env)

    def read() -> frozenset[str]:
        sets = raw.list_resource_record_sets(HostedZoneId=zid)["ResourceRecordSets"]
        return frozenset(
            v["Value"].lower() for s in sets if s["Type"] == "TLSA" for v in s["ResourceRecords"]
        )

    try:
        world = HttpWorld(
            tmp_path,
            f"    type: route53\n    endpoint_url: {proxy.url}\n    max_retries: 2\n"
            "    poll_interval: 0.05\n    max_wait: 5\n",
            read,
        )
        _http_case(world, lambda: proxy.arm(status, count, commit), proxy.disarm, commit)
    finally:
        proxy.close()
    assert proxy.injected, "no fault was injected"


@pytest.mark.parametrize(
    "fault",
    ["429-always", "502-after-commit"],
)
def test_cloudflare_fault(
    cf_server: FakeCloudflare,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    fake = cf_server
    fake.reset()
    fake.tokens = {CF_TOKEN}
    zid = fake.add_zone("h.test")
    monkeypatch.setenv("TLSAROTATE_TEST_CF_TOKEN", CF_TOKEN)

    def read() -> frozenset[str]:
        out = set()
        for rec in fake.list_records(zid):
            if rec["type"] == "TLSA":
                d = rec["data"]
                out.add(
                    f"{d['usage']} {d['selector']} {d['matching_type']} {d['certificate'].lower()}"
                )
        return frozenset(out)

    def arm() -> None:
        if fault == "429-always":
            fake.throttle(100, retry_after="0")
        else:
            fake.fail_batches(1, 502, commit=True)

    def disarm() -> None:
        fake.throttle(0)
        fake.fail_batches(0)

    world = HttpWorld(
        tmp_path,
        "    type: cloudflare\n    api_token_env: TLSAROTATE_TEST_CF_TOKEN\n"
        f"    api_url: {fake.url}\n    max_retries: 2\n",
        read,
        ttl=60,  # the least TTL Cloudflare accepts besides 1 ("automatic", which waits 300 s)
    )
    _http_case(world, arm, disarm, lost=fault.endswith("commit"))


def test_sampler_check_flags_what_a_resolver_or_service_would_see() -> None:
    """The invariants on a made-up record (no servers): an answer cached across a swap that
    does not accept the new certificate, a torn pair outside a running swap, an unsigned and an
    empty answer are flagged; a correct rollover's record is not."""
    from tests.support.faults.sampler import DnsSample, FileSample, Runs, Timeline
    from tlsarotate import material, pki, records

    ca = pki.make_ca()
    pems = {}
    for name in ("a", "b"):
        leaf = pki.make_leaf(ca, ["mx.example.test"])
        pems[name] = (pki.fullchain_pem(leaf, ca), leaf.key_pem)
    h = {n: sha(c) for n, (c, _) in pems.items()}
    certs = {h[n]: material.parse(c, n) for n, (c, _) in pems.items()}
    key_of = {sha(k): h[n] for n, (_, k) in pems.items()}
    ps = [records.parse_params("3 1 1")]
    rec = {n: records.to_text(records.build_all(certs[h[n]], ps)[0]) for n in h}
    served = Timeline()
    served.add(0, h["a"])
    served.add(10, h["b"])  # the swap at t=10
    deployed = Runs()
    deployed.add(0, h["a"])
    deployed.add(9.85, h["a"])  # the last sample that saw a
    deployed.add(9.9, h["b"])
    deployed.add(30, h["b"])

    def dns_(t: float, *names: str, signed: bool = True) -> DnsSample:
        return DnsSample(t, "s", frozenset(rec[n] for n in names), 1, signed)

    good = [dns_(5, "a"), dns_(8.5, "a", "b"), dns_(9.5, "a", "b"), dns_(11.5, "b")]
    files = [FileSample(5, h["a"], sha(pems["a"][1])), FileSample(11, h["b"], sha(pems["b"][1]))]
    v = check(good, files, served, deployed, certs, key_of, INTERVAL)
    assert v == []
    bad = [
        dns_(9.2, "a"),
        dns_(12, "a", "b", signed=False),
        DnsSample(13, "s", frozenset(), 0, True),
    ]
    torn = [FileSample(9.95, h["a"], sha(pems["b"][1])), FileSample(20, h["a"], sha(pems["b"][1]))]
    v = check(bad, torn, served, deployed, certs, key_of, INTERVAL)
    assert sorted({x.cls for x in v}) == [
        "dns-vs-deployed",
        "dns-vs-served",
        "no-tlsa",
        "torn-pair",
        "unsigned-answer",
    ]
    # a tear is a violation at any moment, in the middle of a swap too (one rename switches)
    assert [x.t for x in v if x.cls == "torn-pair"] == [9.95, 20]
    # The sampler's own timing is not held against the product: an answer asked for before the
    # retire but received after it (the sampler thread held up), and the deployed files switched
    # between two file samples, are judged on what is certain (answer from its arrival; each
    # certificate from its first to its last sample), not on the sampler's earlier timestamps.
    late = [DnsSample(9.86, "s", frozenset({rec["b"]}), 1, True, answered=10.05)]
    served_late = Timeline()
    served_late.add(0, h["a"])
    served_late.add(10.02, h["b"])
    assert check(late, [], served_late, deployed, certs, key_of, INTERVAL) == []
    # the same answer had it arrived at once, at 9.8: a was in use (served, and deployed as the
    # sample at 9.85 saw)
    early = [DnsSample(9.8, "s", frozenset({rec["b"]}), 1, True)]
    assert {x.cls for x in check(early, [], served_late, deployed, certs, key_of, INTERVAL)} == {
        "dns-vs-served",
        "dns-vs-deployed",
    }
