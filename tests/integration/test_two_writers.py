"""Two writers on one RRset (issue #15), with real runners on a real BIND.

Two hosts behind one MX name, each with its own certificate, each running ``tlsarotate apply
--wait`` from its own config and state directory, do a full rollover at the same time as real
concurrent subprocesses (rfc2136 with TSIG to a BIND primary + secondary with inline signing).
An independent sampler thread asks the primary every ~50 ms what it serves and, afterwards,
every sample is checked:

- each host's served certificate is matched by every usage/selector/mtype combination present
  (the other host's records must never break it);
- an RRset a resolver may have cached at a host's swap (answered within one TTL before it)
  accepts that host's new certificate;
- the RRset changes a bounded number of times (no fight: publish + retire per host);
- both hosts end with exactly their new certificates' records present.

Plus the same config run twice at once (one state directory: the lock serialises them), and
the supported shared layout: one service with a certificate slot per host.
"""

# ruff: noqa: F811
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support.helpers import cli_env, run_cli
from tests.support.moto_server import fresh_bucket, moto_url, route53_env  # noqa: F401
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles, material, pki, records

TTL = 2
MX = "mx.example.test"
OWNER = dns.name.from_text(f"_25._tcp.{MX}.")

CONFIG = """\
state_dir: state
safety_margin: 0
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {port}
    tsig_key_file: {key}
    timeout: 2
    retries: 2
services:
  - name: mail
    zone: example.test.
    provider: bind
    hosts: [{mx}]
    ports: [25]
    ttl: {ttl}
    records: [{params}]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
{certs}"""

SLOT = """\
      - name: {name}
        deployed: {{cert: {name}/deployed/fullchain.pem, key: {name}/deployed/privkey.pem}}
        next: {{cert: {name}/next/fullchain.pem, key: {name}/next/privkey.pem}}
        reload: [{reload}, {name}]
"""

RELOAD = """#!/bin/sh
# the service "reloads": it serves what is deployed now (copied atomically to served-NAME.pem)
d="$(dirname "$0")"
cp "$d/$1/deployed/fullchain.pem" "$d/.served-$1.tmp" && mv "$d/.served-$1.tmp" "$d/served-$1.pem"
echo "$1 $(date +%s.%N)" >> "$d/reloads"
"""


def write_pair(d: Path, leaf: pki.Issued, ca: pki.Issued) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)
    (d / "privkey.pem").chmod(0o600)


@dataclass
class Host:
    """One machine: its own directory, config, state and certificate slot(s)."""

    dir: Path
    slots: tuple[str, ...]

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    def served(self, slot: str) -> bytes:
        return (self.dir / f"served-{slot}.pem").read_bytes()

    def reload_log(self) -> list[tuple[str, float]]:
        """(slot, when) per reload, in order."""
        p = self.dir / "reloads"
        lines = p.read_text().splitlines() if p.exists() else []
        return [(slot, float(t)) for slot, t in (line.split() for line in lines)]

    def reloads(self) -> list[str]:
        return [slot for slot, _ in self.reload_log()]

    def new_next(self, ca: pki.Issued) -> dict[str, material.Material]:
        out = {}
        for s in self.slots:
            write_pair(self.dir / s / "next", pki.make_leaf(ca, [MX]), ca)
            out[s] = certfiles.load_pair(
                self.dir / s / "next/fullchain.pem", self.dir / s / "next/privkey.pem"
            )
        return out


def make_host(
    d: Path, bind: BindServers, ca: pki.Issued, slots: Sequence[str], params: str
) -> Host:
    d.mkdir(parents=True)
    (d / "reload.sh").write_text(RELOAD)
    (d / "reload.sh").chmod(0o755)
    for s in slots:
        leaf = pki.make_leaf(ca, [MX])
        write_pair(d / s / "deployed", leaf, ca)
        write_pair(d / s / "next", leaf, ca)
        (d / f"served-{s}.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    certs = "    certificates:\n" + "".join(
        SLOT.format(name=s, reload=d / "reload.sh") for s in slots
    )
    (d / "config.yaml").write_text(
        CONFIG.format(port=bind.port, key=bind.key_file, mx=MX, ttl=TTL, params=params, certs=certs)
    )
    return Host(d, tuple(slots))


@dataclass
class Sample:
    t0: float  # before the query
    t1: float  # after the answer
    texts: frozenset[str]
    served: dict[tuple[int, str], tuple[bytes, bytes]]  # (host, slot) -> (before, after)


class Sampler(threading.Thread):
    """Asks the primary for the TLSA RRset every ~50 ms, noting what each host serves just
    before and just after each query (a reload between the two may have happened)."""

    def __init__(self, server: tuple[str, int], hosts: Sequence[Host]) -> None:
        super().__init__(daemon=True)
        self.server, self.hosts = server, hosts
        self.samples: list[Sample] = []
        self.errors = 0
        self.halt = threading.Event()

    def _served(self) -> dict[tuple[int, str], bytes]:
        return {(i, s): h.served(s) for i, h in enumerate(self.hosts) for s in h.slots}

    def run(self) -> None:
        while not self.halt.is_set():
            before = self._served()
            t0 = time.time()
            q = dns.message.make_query(OWNER, dns.rdatatype.TLSA)
            q.flags &= ~dns.flags.RD
            try:
                r = dns.query.udp(q, self.server[0], port=self.server[1], timeout=0.5)
            except Exception:
                self.errors += 1
                continue
            t1 = time.time()
            after = self._served()
            rrset = r.get_rrset(r.answer, OWNER, dns.rdataclass.IN, dns.rdatatype.TLSA)
            texts = frozenset(records.to_text(rd) for rd in rrset) if rrset else frozenset()
            served = {k: (before[k], after[k]) for k in before}
            self.samples.append(Sample(t0, t1, texts, served))
            time.sleep(0.05)


_CHAINS: dict[bytes, list[bytes]] = {}


def chain(pem: bytes) -> list[bytes]:
    if pem not in _CHAINS:
        _CHAINS[pem] = list(material.parse(pem, "served").chain_der)
    return _CHAINS[pem]


def accepted(texts: frozenset[str], pem: bytes) -> bool:
    return records.accepts([records.from_text(t) for t in texts], chain(pem))


def check_samples(samples: Sequence[Sample]) -> None:
    """Every sampled RRset is matched, combination by combination, by what each host serves."""
    assert len(samples) > 50, len(samples)
    bad = []
    for s in samples:
        for (host, slot), (before, after) in s.served.items():
            # a reload between "before" and "after": either certificate may have been served
            if not (accepted(s.texts, before) or (after != before and accepted(s.texts, after))):
                bad.append(f"t={s.t0:.2f} host {host} {slot}: {sorted(s.texts)}")
    assert not bad, f"{len(bad)} sampled moments broke DANE, first: {bad[:3]}"


def check_cached_at_swaps(samples: Sequence[Sample], hosts: Sequence[Host]) -> None:
    """What a resolver may have cached when a host swapped (answered less than one TTL before
    the reload) accepts the certificate it swapped to."""
    checked = 0
    for h in hosts:
        for slot, when in h.reload_log():
            new = (h.dir / slot / "deployed/fullchain.pem").read_bytes()
            for s in samples:
                if when - TTL < s.t1 < when and s.texts:
                    checked += 1
                    assert accepted(s.texts, new), (h.dir.name, slot, when - s.t1, sorted(s.texts))
    assert checked > 0


def changes(samples: Sequence[Sample]) -> int:
    """How often the RRset at the primary changed while sampled."""
    return sum(1 for a, b in itertools.pairwise(samples) if a.texts != b.texts)


def apply_wait(host: Host) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tlsarotate", "-c", str(host.config), "apply", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=host.dir,
    )


def finish(p: subprocess.Popen[str], timeout: float = 150) -> tuple[int, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out + err


def expected(mats: Sequence[material.Material], params: Sequence[str]) -> set[str]:
    ps = [records.parse_params(p) for p in params]
    return {records.to_text(rd) for m in mats for rd in records.build_all(m, ps)}


def primary_texts(bind: BindServers) -> set[str]:
    q = dns.message.make_query(OWNER, dns.rdatatype.TLSA)
    addr, port = bind.primary
    r = dns.query.udp(q, addr, port=port, timeout=2)
    rrset = r.get_rrset(r.answer, OWNER, dns.rdataclass.IN, dns.rdatatype.TLSA)
    return {records.to_text(rd) for rd in rrset} if rrset else set()


def roll_concurrently(
    bind: BindServers, hosts: Sequence[Host], ca: pki.Issued, runs: int = 1
) -> tuple[list[tuple[int, str]], Sampler, dict[tuple[int, str], material.Material]]:
    nxt = {(i, s): m for i, h in enumerate(hosts) for s, m in h.new_next(ca).items()}
    sampler = Sampler(bind.primary, hosts)
    sampler.start()
    try:
        time.sleep(0.2)
        procs = [apply_wait(h) for h in hosts for _ in range(runs)]
        results = [finish(p) for p in procs]
        time.sleep(0.3)
    finally:
        sampler.halt.set()
        sampler.join()
    return results, sampler, nxt


TWO_CONFIGS = [
    ('"3 1 1", "3 0 1"', '"3 1 1", "3 0 1"'),
    ('"3 1 1", "3 0 1"', '"3 1 1"'),  # B's config lacks 3 0 1: it adds its own for A's
]


def _setup_two_hosts(
    tmp_path: Path, bind: BindServers, params: tuple[str, str]
) -> tuple[pki.Issued, list[Host]]:
    ca = pki.make_ca()
    hosts = [
        make_host(tmp_path / name, bind, ca, [name], p)
        for name, p in zip(("a", "b"), params, strict=True)
    ]
    # idle first: each host's records published (one after the other, as they were set up)
    for h in hosts:
        done = run_cli("-c", h.config, "apply", "--wait", timeout=120, cwd=h.dir)
        assert done.returncode == 0, done.stdout + done.stderr
    return ca, hosts


@pytest.mark.parametrize("params", TWO_CONFIGS, ids=["same-records", "b-lacks-3-0-1"])
def test_two_configs_sharing_an_owner_roll_over_at_once(
    tmp_path: Path, bind: BindServers, params: tuple[str, str]
) -> None:
    ca, hosts = _setup_two_hosts(tmp_path, bind, params)
    before = primary_texts(bind)
    results, sampler, nxt = roll_concurrently(bind, hosts, ca)
    for code, out in results:
        assert code == 0, out
        assert "Traceback" not in out
    # each swapped once and serves its next certificate
    for i, h in enumerate(hosts):
        assert h.reloads() == list(h.slots), (i, h.reloads())
        for s in h.slots:
            assert h.served(s) == (h.dir / s / "next/fullchain.pem").read_bytes()
    # both end with their records present, and only those: every combination present
    # (A's 3 0 1 included) has each host's record
    final = primary_texts(bind)
    assert final == expected(list(nxt.values()), ["3 1 1", "3 0 1"]), (params, final)
    assert final != before
    check_samples(sampler.samples)
    check_cached_at_swaps(sampler.samples, hosts)
    # no fight: one publish and one retire per host
    assert changes(sampler.samples) <= 4, changes(sampler.samples)
    for _, out in results:
        # a write refused because the other host wrote in between is re-planned (and the
        # step announced again); every other announced write succeeded
        lost = out.count("re-reading and re-planning")
        writes = out.count("==> mail: add the records") + out.count("==> mail: retire the records")
        assert writes - lost == 2, out
        assert "remove stale records" not in out, out
    # the other host's records were listed as kept, never as going
    plan = run_cli("-c", hosts[0].config, "plan", "--output", "json", cwd=hosts[0].dir)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    doc = json.loads(plan.stdout)["services"][0]
    assert {f["record"] for f in doc["foreign"]} == expected([nxt[(1, "b")]], ["3 1 1", "3 0 1"])
    assert doc["changes"] == [] and doc["stale"] == []


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_same_config_twice_at_once_is_serialised_by_the_lock(
    tmp_path: Path, bind: BindServers, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two runners of one config (two timers, failover CI runners) on one state: in
    ``state_dir`` (flock) or in S3 (conditional writes, a lease): the lock serialises them."""
    ca = pki.make_ca()
    host = make_host(tmp_path / "a", bind, ca, ["a"], '"3 1 1", "3 0 1"')
    if backend == "s3":
        url = request.getfixturevalue("route53_env")  # moto, dummy credentials in the env
        fresh_bucket(url, "tlsarotate-state")
        text = host.config.read_text().replace(
            "state_dir: state\n",
            f"state: {{backend: s3, bucket: tlsarotate-state, prefix: ci/, endpoint_url: {url}}}\n",
        )
        host.config.write_text(text)
    done = run_cli("-c", host.config, "apply", "--wait", timeout=120, cwd=host.dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (host.dir / "state").exists() == (backend == "file")
    results, sampler, nxt = roll_concurrently(bind, [host], ca, runs=2)
    for code, out in results:
        assert code == 0, out
    assert host.reloads() == ["a"]  # one swap: the second run found the rollover done
    assert primary_texts(bind) == expected([nxt[(0, "a")]], ["3 1 1", "3 0 1"])
    check_samples(sampler.samples)
    check_cached_at_swaps(sampler.samples, [host])
    assert changes(sampler.samples) <= 2, changes(sampler.samples)
    adds = sum(out.count("==> mail: add the records") for _, out in results)
    retires = sum(out.count("==> mail: retire the records") for _, out in results)
    assert (adds, retires) == (1, 1), results


def test_one_service_with_a_slot_per_host_is_the_shared_layout(
    tmp_path: Path, bind: BindServers
) -> None:
    """The supported layout where one place runs tlsarotate for both machines: one service,
    one certificate slot per host (each with its own reload). Rolls both, one publish and one
    retire for the pair, every host matched at every moment."""
    ca = pki.make_ca()
    host = make_host(tmp_path / "pair", bind, ca, ["a", "b"], '"3 1 1", "3 0 1"')
    done = run_cli("-c", host.config, "apply", "--wait", timeout=120, cwd=host.dir)
    assert done.returncode == 0, done.stdout + done.stderr
    results, sampler, nxt = roll_concurrently(bind, [host], ca)
    ((code, out),) = results
    assert code == 0, out
    assert sorted(host.reloads()) == ["a", "b"]
    assert primary_texts(bind) == expected(list(nxt.values()), ["3 1 1", "3 0 1"])
    check_samples(sampler.samples)
    check_cached_at_swaps(sampler.samples, [host])
    assert changes(sampler.samples) <= 2, changes(sampler.samples)
    assert out.count("==> mail: add the records") == 1, out
    assert out.count("==> mail: retire the records") == 1, out


def test_force_cleanup_removes_the_other_writers_records_once(
    tmp_path: Path, bind: BindServers
) -> None:
    _, (a, b) = _setup_two_hosts(tmp_path, bind, ('"3 1 1"', '"3 1 1"'))
    b_texts = expected([material.parse(b.served("b"), "b")], ["3 1 1"])
    plan = run_cli("-c", a.config, "plan", cwd=a.dir)
    assert plan.returncode == 0 and "foreign: " in plan.stdout, plan.stdout + plan.stderr
    forced = run_cli("-c", a.config, "plan", "--force-cleanup", cwd=a.dir)
    assert forced.returncode == 2, forced.stdout + forced.stderr
    assert "(foreign (forced))" in forced.stdout and "--force-cleanup" in forced.stdout
    refused = run_cli("-c", a.config, "apply", "--force-cleanup", "--wait", cwd=a.dir)
    assert refused.returncode == 1 and "cannot be combined with --wait" in refused.stderr
    assert b_texts <= primary_texts(bind)  # nothing written by the plan or the refusal
    gone = run_cli("-c", a.config, "apply", "--force-cleanup", cwd=a.dir)
    assert gone.returncode in (0, 2), gone.stdout + gone.stderr
    assert not b_texts & primary_texts(bind)
    # once: B puts its records back, and A's next plain run leaves them alone
    again = run_cli("-c", b.config, "apply", "--wait", timeout=120, cwd=b.dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert b_texts <= primary_texts(bind)
    plain = run_cli("-c", a.config, "apply", "--wait", timeout=120, cwd=a.dir)
    assert plain.returncode == 0 and b_texts <= primary_texts(bind), plain.stdout
