"""Full rollovers against a real Knot DNS primary with automatic DNSSEC signing
(tests/support/knot.py), through the rfc2136 provider and the real DNS observer.

Modelled on test_rollover_bind.py: a recorder thread samples what knotd answers every few
milliseconds, and the invariants are checked on that record afterwards. Where Knot behaves
unlike BIND it is asserted here: Knot signs an UPDATE before it answers it, so the write is
served, signed, when the provider returns, and the engine's first look after the publish finds
it visible (no wait for propagation on a lone primary).
"""

# ruff: noqa: F811
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.name
import pytest

from tests.support.helpers import run_cli
from tests.support.knot import KnotServer, knot, knot_server  # noqa: F401
from tests.support.recorder import Recorder
from tlsarotate import certfiles, config, material, phases, pki, records
from tlsarotate.authoritative import DnsObserver
from tlsarotate.engine import Engine, make_providers
from tlsarotate.providers.base import ProviderContext
from tlsarotate.stores.file import FileStateStore

TTL = 2
HOSTS = ("mx1.example.test", "mx2.example.test")
ZONE = dns.name.from_text("example.test.")


def write_pair(d: Path, leaf: pki.Issued, ca: pki.Issued) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)


CONFIG = """
state_dir: state
safety_margin: 0
providers:
  knot:
    type: rfc2136
    server: 127.0.0.1
    port: {port}
    tsig_key_file: {key}
    timeout: 2
    retries: 2
services:
  - name: mail
    zone: example.test.
    provider: knot
    hosts: [{hosts}]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1", "3 0 1"]
    nameservers: ["127.0.0.1:{port}"]
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{cert: next/fullchain.pem, key: next/privkey.pem}}
      reload: [reload-mail-service]
"""


@dataclass
class Rig:
    tmp: Path
    knot: KnotServer
    ca: pki.Issued
    cfg: config.Config
    reloads: list[tuple[float, material.Material]]

    def deployed(self) -> material.Material:
        return certfiles.load_pair(
            self.tmp / "deployed/fullchain.pem", self.tmp / "deployed/privkey.pem"
        )

    def runner(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.reloads.append((time.time(), self.deployed()))
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def engine(self) -> Engine:
        providers = make_providers(self.cfg, ProviderContext(base_dir=self.tmp))
        return Engine(self.cfg, FileStateStore(self.cfg.state_dir), providers, runner=self.runner)

    def new_next(self) -> material.Material:
        write_pair(self.tmp / "next", pki.make_leaf(self.ca, [HOSTS[0]]), self.ca)
        return certfiles.load_pair(self.tmp / "next/fullchain.pem", self.tmp / "next/privkey.pem")

    @property
    def service(self) -> config.Service:
        return self.cfg.services[0]


@pytest.fixture
def rig(tmp_path: Path, knot: KnotServer) -> Iterator[Rig]:
    ca = pki.make_ca()
    first = pki.make_leaf(ca, [HOSTS[0]])
    write_pair(tmp_path / "deployed", first, ca)
    write_pair(tmp_path / "next", first, ca)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(
        CONFIG.format(port=knot.port, key=knot.key_file, ttl=TTL, hosts=", ".join(HOSTS))
    )
    cfg = config.load(cfg_path)
    r = Rig(tmp_path, knot, ca, cfg, [])
    plans = r.engine().run(cfg.services, wait=True, deadline=time.time() + 60)
    assert [p.phase for p in plans] == [phases.IDLE]
    yield r


def test_full_rollover_on_knot(rig: Rig) -> None:
    old = rig.deployed()
    owners = rig.service.owners
    rec = Recorder([rig.knot.address], owners)
    rec.start()
    try:
        time.sleep(0.1)
        nxt = rig.new_next()
        engine = rig.engine()
        provider = engine.providers["knot"]
        events: list[str] = []
        engine.on_event = events.append
        seen_phases: list[str] = []
        engine.on_plan = lambda p: seen_phases.append(p.phase)
        plans = engine.run(rig.cfg.services, wait=True, deadline=time.time() + 120)
        time.sleep(3 * 0.02 + 0.2)
    finally:
        rec.halt.set()
        rec.join()
    assert [p.phase for p in plans] == [phases.IDLE]
    assert rig.deployed().same_as(nxt)
    order = [phases.PUBLISH, phases.WAIT_TTL, phases.SWAP, phases.CLEANUP, phases.IDLE]
    firsts = [seen_phases.index(ph) for ph in order]
    assert firsts == sorted(firsts), seen_phases
    # Knot serves an UPDATE, signed, before it answers it: the first look after the publish
    # already finds it on the (only) server; BIND's pair waits for NOTIFY + transfer here
    assert phases.WAIT_PROPAGATION not in seen_phases, seen_phases
    writes = [e for e in events if e.startswith(("mail: add", "mail: retire"))]
    assert len(writes) == 2, events
    assert provider.sent["UPDATE"] == 2  # type: ignore[attr-defined]
    want = {records.to_text(rd) for rd in records.build_all(nxt, rig.service.params)}
    last = {(s.server, s.owner): s.texts for s in rec.samples}
    assert len(last) == len(owners)
    assert all(t == want for t in last.values()), last
    assert len(rig.reloads) == 1
    swap_t, served_after = rig.reloads[0]
    assert served_after.same_as(nxt)
    cached_at_swap = 0
    for s in rec.samples:
        served = old if s.t < swap_t else nxt
        if swap_t - TTL < s.t < swap_t and s.texts:
            cached_at_swap += 1
            assert records.accepts(map(records.from_text, s.texts), nxt.chain_der), s
        if s.texts:
            assert records.accepts(map(records.from_text, s.texts), served.chain_der), s
    assert cached_at_swap > 0
    since = 0.0
    for owner in owners:
        mine = [s for s in rec.samples if s.owner == owner]
        k = next(i for i, s in enumerate(mine) if want <= s.texts)
        assert k > 0, owner
        since = max(since, mine[k - 1].t)
    assert swap_t - since >= TTL
    # what knotd serves at the end validates (RRSIGs over the TLSA RRsets, with its DNSKEY)
    obs = DnsObserver(rig.service.nameservers, timeout=2).observe(ZONE, owners)
    assert obs.zone_signed and all(a.signed.get(o) for a in obs.servers for o in owners), obs


def test_cli_apply_runs_the_rollover_on_knot(rig: Rig) -> None:
    nxt = rig.new_next()
    (rig.tmp / "reload.sh").write_text('#!/bin/sh\necho reloaded >> "$(dirname "$0")/reloads"\n')
    (rig.tmp / "reload.sh").chmod(0o755)
    text = rig.cfg.path.read_text().replace("[reload-mail-service]", f"[{rig.tmp}/reload.sh]")
    rig.cfg.path.write_text(text)
    done = run_cli("-c", rig.cfg.path, "-vv", "apply", "--wait", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rig.knot.key_secret not in done.stdout + done.stderr
    assert (rig.tmp / "reloads").read_text().count("reloaded") == 1
    assert rig.deployed().same_as(nxt)
    check = run_cli("-c", rig.cfg.path, "status", "--output", "json")
    assert check.returncode == 0 and '"phase": "idle"' in check.stdout


def test_unsigned_zone_on_knot_is_refused_unless_allowed(tmp_path: Path, knot: KnotServer) -> None:
    ca = pki.make_ca()
    write_pair(tmp_path / "deployed", pki.make_leaf(ca, ["mx.unsigned.test"]), ca)
    write_pair(tmp_path / "next", pki.make_leaf(ca, ["mx.unsigned.test"]), ca)
    text = (
        CONFIG.format(port=knot.port, key=knot.key_file, ttl=TTL, hosts="mx.unsigned.test")
        .replace("zone: example.test.", "zone: unsigned.test.")
        .replace("[reload-mail-service]", '["true"]')
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not signed" in proc.stdout and "allow_unsigned" in proc.stdout
    unsigned = dns.name.from_text("unsigned.test.")
    assert knot.tlsa_owners(unsigned) == []  # nothing was written
    cfg.write_text(text.replace("    ports: [25]\n", "    ports: [25]\n    allow_unsigned: true\n"))
    ok = run_cli("-c", cfg, "apply", "--wait", timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert knot.tlsa_owners(unsigned) == [dns.name.from_text("_25._tcp.mx.unsigned.test.")]
