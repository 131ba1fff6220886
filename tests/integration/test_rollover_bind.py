"""Full rollovers against a real BIND primary + secondary with DNSSEC inline signing.

The engine runs with the real rfc2136 provider and the real DNS observer; a recorder thread
samples what both authoritative servers answer every few milliseconds, and the invariants are
checked on that record afterwards: at every moment, every RRset a resolver may have cached
(answered within the last TTL) accepts the chain the service serves.
"""

# ruff: noqa: F811
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support.helpers import run_cli
from tests.support.recorder import Recorder
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles, config, material, phases, pki, records
from tlsarotate.engine import Engine, make_providers
from tlsarotate.providers.base import ProviderContext
from tlsarotate.stores.file import FileStateStore

TTL = 2
HOSTS = ("mx1.example.test", "mx2.example.test")


def write_pair(d: Path, leaf: pki.Issued, ca: pki.Issued) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)


CONFIG = """
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
    hosts: [{hosts}]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1", "3 0 1"]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{cert: next/fullchain.pem, key: next/privkey.pem}}
      reload: [reload-mail-service]
"""


@dataclass
class Rig:
    tmp: Path
    bind: BindServers
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
def rig(tmp_path: Path, bind: BindServers) -> Iterator[Rig]:
    ca = pki.make_ca()
    first = pki.make_leaf(ca, [HOSTS[0]])
    write_pair(tmp_path / "deployed", first, ca)
    write_pair(tmp_path / "next", first, ca)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(
        CONFIG.format(port=bind.port, key=bind.key_file, ttl=TTL, hosts=", ".join(HOSTS))
    )
    cfg = config.load(cfg_path)
    r = Rig(tmp_path, bind, ca, cfg, [])
    # start from an idle service: the deployed certificate's records published and visible
    plans = r.engine().run(cfg.services, wait=True, deadline=time.time() + 60)
    assert [p.phase for p in plans] == [phases.IDLE]
    yield r


def test_full_rollover_on_bind_primary_and_secondary(rig: Rig) -> None:
    old = rig.deployed()
    owners = rig.service.owners
    rec = Recorder(rig.bind.addresses, owners)
    rec.start()
    try:
        time.sleep(0.1)
        nxt = rig.new_next()
        engine = rig.engine()
        provider = engine.providers["bind"]
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
    # every phase was gone through, in order
    order = [phases.PUBLISH, phases.WAIT_TTL, phases.SWAP, phases.CLEANUP, phases.IDLE]
    firsts = [seen_phases.index(ph) for ph in order]
    assert firsts == sorted(firsts), seen_phases
    assert phases.WAIT_PROPAGATION in seen_phases  # NOTIFY + transfer lag is real
    # exactly one UPDATE per write step (publish, retire)
    writes = [e for e in events if e.startswith(("mail: add", "mail: retire"))]
    assert len(writes) == 2, events
    assert provider.sent["UPDATE"] == 2  # type: ignore[attr-defined]
    # both servers end up serving only the new certificate's records
    want = {records.to_text(rd) for rd in records.build_all(nxt, rig.service.params)}
    last = {(s.server, s.owner): s.texts for s in rec.samples}
    assert len(last) == 2 * len(owners)
    assert all(t == want for t in last.values()), last
    # the invariants, on the record of what the servers answered
    assert len(rig.reloads) == 1
    swap_t, served_after = rig.reloads[0]
    assert served_after.same_as(nxt)
    cached_at_swap = 0
    for s in rec.samples:
        served = old if s.t < swap_t else nxt
        # anything answered within one TTL before the swap may be in a cache at the swap
        if swap_t - TTL < s.t < swap_t and s.texts:
            cached_at_swap += 1
            assert records.accepts(map(records.from_text, s.texts), nxt.chain_der), s
        if s.texts:  # (a) what is served matches the chain served at that moment
            assert records.accepts(map(records.from_text, s.texts), served.chain_der), s
    assert cached_at_swap > 0  # the check above really ran
    # the new records were served by BOTH servers at least TTL before the swap. The recorder
    # saw them first at sample k; a server may have started serving them (and the engine seen
    # that) anywhere after sample k-1, one sampler round earlier: measure from there.
    both_since = 0.0
    for srv, owner in {(s.server, s.owner) for s in rec.samples}:
        mine = [s for s in rec.samples if (s.server, s.owner) == (srv, owner)]
        k = next(i for i, s in enumerate(mine) if want <= s.texts)
        assert k > 0, (srv, owner)  # the recorder saw the server before it served them
        both_since = max(both_since, mine[k - 1].t)
    assert swap_t - both_since >= TTL


def test_stopped_secondary_keeps_apply_waiting_and_named(rig: Rig) -> None:
    rig.bind.stop_secondary()
    try:
        rig.new_next()
        plans = rig.engine().run(rig.cfg.services, wait=False)
        assert [p.phase for p in plans] == [phases.WAIT_PROPAGATION]
        assert any("::1" in w for w in plans[0].waiting_for), plans[0].waiting_for
        time.sleep(TTL + 0.5)
        plans = rig.engine().run(rig.cfg.services, wait=False)
        assert [p.phase for p in plans] == [phases.WAIT_PROPAGATION]
        assert rig.reloads == []  # never swaps while a server does not serve the records
        out = run_cli("-c", rig.cfg.path, "plan")
        assert out.returncode == 4, out.stderr  # only waiting: nothing to do now
        assert "waiting for:" in out.stdout and "::1" in out.stdout
    finally:
        rig.bind.start_secondary()
    plans = rig.engine().run(rig.cfg.services, wait=True, deadline=time.time() + 60)
    assert [p.phase for p in plans] == [phases.IDLE]
    assert len(rig.reloads) == 1


def test_cli_apply_runs_the_rollover_on_bind(rig: Rig) -> None:
    nxt = rig.new_next()
    (rig.tmp / "reload.sh").write_text('#!/bin/sh\necho reloaded >> "$(dirname "$0")/reloads"\n')
    (rig.tmp / "reload.sh").chmod(0o755)
    text = rig.cfg.path.read_text().replace("[reload-mail-service]", f"[{rig.tmp}/reload.sh]")
    rig.cfg.path.write_text(text)
    first = run_cli("-c", rig.cfg.path, "-vv", "apply")
    assert first.returncode == 2, first.stderr  # published, now waiting
    assert "add the records" in first.stdout
    plan = run_cli("-c", rig.cfg.path, "-vv", "plan", "--output", "json")
    done = run_cli("-c", rig.cfg.path, "-vv", "apply", "--wait", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # the TSIG secret appears nowhere: output, debug logs, plan JSON, state files
    secret = rig.bind.key_secret
    texts = [p.stdout + p.stderr for p in (first, plan, done)]
    texts += [f.read_text() for f in (rig.tmp / "state").iterdir() if f.is_file()]
    assert texts and all(secret not in t for t in texts)
    assert (rig.tmp / "reloads").read_text().count("reloaded") == 1
    assert rig.deployed().same_as(nxt)
    status = run_cli("-c", rig.cfg.path, "status", "--output", "json")
    assert status.returncode == 0 and '"phase": "idle"' in status.stdout


def test_unsigned_zone_is_refused_unless_allowed(tmp_path: Path, bind: BindServers) -> None:
    ca = pki.make_ca()
    write_pair(tmp_path / "deployed", pki.make_leaf(ca, ["mx.unsigned.test"]), ca)
    write_pair(tmp_path / "next", pki.make_leaf(ca, ["mx.unsigned.test"]), ca)
    text = (
        CONFIG.format(port=bind.port, key=bind.key_file, ttl=TTL, hosts="mx.unsigned.test")
        .replace("zone: example.test.", "zone: unsigned.test.")
        .replace("[reload-mail-service]", '["true"]')
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not signed" in proc.stdout and "allow_unsigned" in proc.stdout
    owner = dns.name.from_text("_25._tcp.mx.unsigned.test.")
    assert owner not in {
        n.derelativize(dns.name.from_text("unsigned.test."))
        for n in bind.axfr("unsigned.test.").nodes
    }  # nothing was written
    cfg.write_text(text.replace("    ports: [25]\n", "    ports: [25]\n    allow_unsigned: true\n"))
    ok = run_cli("-c", cfg, "apply", "--wait", timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    served = bind.axfr("unsigned.test.")
    node = served.get_node(owner.relativize(dns.name.from_text("unsigned.test.")))
    assert node is not None and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA)
