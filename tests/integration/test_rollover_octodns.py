"""Full rollovers through the ``octodns`` provider on real servers: octodns-bind's
Rfc2136Provider on the BIND primary + secondary (inline signing, NOTIFY/AXFR), and
octodns-powerdns's PowerDnsProvider on a real pdns_server (signed zone, HTTP API).

The engine runs with the real DNS observer (RRSIGs validated against each server's DNSKEY); a
sampler records what every authoritative server answers, and afterwards: every phase ran in
order, one octoDNS plan was applied per write step (publish, retire), the new records were
served by every server at least one TTL before the swap, what is served at the end is the new
certificate's records with a valid RRSIG, and every other record of the zone is byte for byte
what it was before.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support.helpers import run_cli
from tests.support.powerdns import PowerDns, powerdns, powerdns_server  # noqa: F401
from tests.support.servers import (  # noqa: F401
    BindServers,
    BindZone,
    bind,
    bind_servers,
    query,
)
from tlsarotate import certfiles, config, material, phases, pki, records
from tlsarotate.engine import Engine, make_providers
from tlsarotate.providers.base import ProviderContext
from tlsarotate.stores.file import FileStateStore

TTL = 2
HOSTS = ("mx1.example.test", "mx2.example.test")
ZONE = dns.name.from_text("example.test.")
# the BIND zone holds the same other records as tests/support/powerdns.py's OTHER_RECORDS
BIND_ZONES = [
    BindZone(
        "example.test.",
        extra='@ MX 10 mx\n@ TXT "v=spf1 mx -all"\n_dmarc 600 TXT "v=DMARC1; p=reject"\n',
    )
]

CONFIG = """
state_dir: state
safety_margin: 0
providers:
  octo:
    type: octodns
    class: {cls}
    options:
{options}
services:
  - name: mail
    zone: example.test.
    provider: octo
    hosts: [{hosts}]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1", "3 0 1"]
    nameservers: [{nameservers}]
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{cert: next/fullchain.pem, key: next/privkey.pem}}
      reload: [reload-mail-service]
"""


@dataclass
class Backend:
    cls: str
    options: dict[str, Any]
    servers: list[tuple[str, int]]
    env: dict[str, str]

    def others(self) -> dict[tuple[str, int], set[str]]:
        """Every other record each server serves at :data:`OTHER_NAMES`, one text line each
        (the SOA is left out: its serial moves with every write)."""
        out: dict[tuple[str, int], set[str]] = {}
        for srv in self.servers:
            seen: set[str] = set()
            for name, rtype in OTHER_NAMES:
                r = query(*srv, name, rtype, dnssec=False)
                seen |= {line for rr in r.answer for line in rr.to_text().splitlines()}
            out[srv] = seen
        return out


OTHER_NAMES = (
    ("example.test.", "NS"),
    ("example.test.", "MX"),
    ("example.test.", "TXT"),
    ("mx.example.test.", "A"),
    ("ns1.example.test.", "A"),
    ("_dmarc.example.test.", "TXT"),
)


@pytest.fixture(params=["octodns-bind", "octodns-powerdns"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    if request.param == "octodns-bind":
        b: BindServers = request.getfixturevalue("bind")
        monkeypatch.setenv("TLSAROTATE_TEST_OCTO_TSIG", b.key_secret)
        return Backend(
            "octodns_bind.Rfc2136Provider",
            {
                "host": "127.0.0.1",
                "port": b.port,
                "key_name": b.key_name,
                "key_secret": "env/TLSAROTATE_TEST_OCTO_TSIG",
                "key_algorithm": "hmac-sha256",
            },
            list(b.addresses),
            {"TLSAROTATE_TEST_OCTO_TSIG": b.key_secret},
        )
    p: PowerDns = request.getfixturevalue("powerdns")
    monkeypatch.setenv("TLSAROTATE_TEST_OCTO_PDNS", p.api_key)
    opts = p.octodns_options()
    opts.pop("api_key")
    return Backend(
        "octodns_powerdns.PowerDnsProvider",
        {**opts, "api_key_env": "TLSAROTATE_TEST_OCTO_PDNS"},
        [p.address],
        {"TLSAROTATE_TEST_OCTO_PDNS": p.api_key},
    )


def write_pair(d: Path, leaf: pki.Issued, ca: pki.Issued) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)


class Sampler(threading.Thread):
    """Samples the TLSA answers of every server for every owner until stopped."""

    def __init__(self, servers: Sequence[tuple[str, int]], owners: Sequence[dns.name.Name]):
        super().__init__(daemon=True)
        self.servers, self.owners = servers, owners
        self.samples: list[tuple[float, tuple[str, int], dns.name.Name, frozenset[str]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for srv in self.servers:
                for owner in self.owners:
                    try:
                        r = query(*srv, owner, "TLSA", dnssec=False, timeout=0.5)
                    except Exception:
                        continue
                    rrset = r.get_rrset(r.answer, owner, dns.rdataclass.IN, dns.rdatatype.TLSA)
                    texts = frozenset(records.to_text(rd) for rd in rrset) if rrset else frozenset()
                    self.samples.append((time.time(), srv, owner, texts))
            time.sleep(0.02)


@dataclass
class Rig:
    tmp: Path
    backend: Backend
    ca: pki.Issued
    cfg: config.Config
    reloads: list[tuple[float, material.Material]]
    others_at_start: dict[tuple[str, int], set[str]]  # before the first write

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


@pytest.fixture
def rig(tmp_path: Path, backend: Backend) -> Iterator[Rig]:
    ca = pki.make_ca()
    first = pki.make_leaf(ca, [HOSTS[0]])
    write_pair(tmp_path / "deployed", first, ca)
    write_pair(tmp_path / "next", first, ca)
    cfg_path = tmp_path / "config.yaml"
    ns = ", ".join(f'"[{a}]:{p}"' if ":" in a else f'"{a}:{p}"' for a, p in backend.servers)
    options = "\n".join(f"      {k}: {v}" for k, v in backend.options.items())
    cfg_path.write_text(
        CONFIG.format(
            cls=backend.cls, options=options, hosts=", ".join(HOSTS), ttl=TTL, nameservers=ns
        )
    )
    cfg = config.load(cfg_path)
    r = Rig(tmp_path, backend, ca, cfg, [], backend.others())
    assert all(len(v) >= 5 for v in r.others_at_start.values()), r.others_at_start
    plans = r.engine().run(cfg.services, wait=True, deadline=time.time() + 90)
    assert [p.phase for p in plans] == [phases.IDLE]
    yield r


def validated_tlsa(server: tuple[str, int], owner: dns.name.Name) -> set[str]:
    """The TLSA records ``server`` serves at ``owner``, after checking their RRSIG against the
    DNSKEY RRset the same server serves."""
    keys = query(*server, ZONE, "DNSKEY", tcp=True)
    dnskey = keys.get_rrset(keys.answer, ZONE, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    assert dnskey is not None, f"{server} serves no DNSKEY"
    r = query(*server, owner, "TLSA", tcp=True)
    tlsa = r.get_rrset(r.answer, owner, dns.rdataclass.IN, dns.rdatatype.TLSA)
    sig = r.get_rrset(r.answer, owner, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.TLSA)
    assert tlsa is not None and sig is not None, (server, owner, r)
    dns.dnssec.validate(tlsa, sig, {ZONE: dnskey})  # raises unless one RRSIG validates
    return {records.to_text(rd) for rd in tlsa}


def test_full_rollover_through_octodns(rig: Rig) -> None:
    old = rig.deployed()
    service = rig.cfg.services[0]
    owners = service.owners
    sampler = Sampler(rig.backend.servers, owners)
    sampler.start()
    try:
        time.sleep(0.1)
        nxt_leaf = pki.make_leaf(rig.ca, [HOSTS[0]])
        write_pair(rig.tmp / "next", nxt_leaf, rig.ca)
        nxt = certfiles.load_pair(rig.tmp / "next/fullchain.pem", rig.tmp / "next/privkey.pem")
        engine = rig.engine()
        octo: Any = engine.providers["octo"]
        applied: list[int] = []
        octo_apply = octo.octo.apply

        def counting_apply(plan: Any) -> Any:
            applied.append(len(plan.changes))
            return octo_apply(plan)

        octo.octo.apply = counting_apply
        events: list[str] = []
        engine.on_event = events.append
        seen: list[str] = []
        engine.on_plan = lambda p: seen.append(p.phase)
        plans = engine.run(rig.cfg.services, wait=True, deadline=time.time() + 120)
        time.sleep(0.3)
    finally:
        sampler.halt.set()
        sampler.join()
    assert [p.phase for p in plans] == [phases.IDLE]
    assert rig.deployed().same_as(nxt)
    order = [phases.PUBLISH, phases.WAIT_TTL, phases.SWAP, phases.CLEANUP, phases.IDLE]
    firsts = [seen.index(ph) for ph in order]
    assert firsts == sorted(firsts), seen
    # one octoDNS plan per write step (publish, retire), each changing both owners
    writes = [e for e in events if e.startswith(("mail: add", "mail: retire"))]
    assert len(writes) == 2, events
    assert applied == [len(owners), len(owners)], applied
    # every server serves the new certificate's records, signed
    want = {records.to_text(rd) for rd in records.build_all(nxt, service.params)}
    for srv in rig.backend.servers:
        for owner in owners:
            assert validated_tlsa(srv, owner) == want, (srv, owner)
    # nothing else in the zone moved
    others_after = rig.backend.others()
    for srv, before in rig.others_at_start.items():
        assert others_after[srv] == before, (srv, others_after[srv] ^ before)
    # the swap came at least one TTL after every server served the new records, and what was
    # served matched the chain served at that moment
    assert len(rig.reloads) == 1
    swap_t, _ = rig.reloads[0]
    since = 0.0
    for srv in rig.backend.servers:
        for owner in owners:
            mine = [s for s in sampler.samples if (s[1], s[2]) == (srv, owner)]
            k = next(i for i, s in enumerate(mine) if want <= s[3])
            assert k > 0, (srv, owner)
            since = max(since, mine[k - 1][0])
    assert swap_t - since >= TTL
    for t, _srv, _owner, texts in sampler.samples:
        if texts:
            served = old if t < swap_t else nxt
            assert records.accepts(map(records.from_text, texts), served.chain_der)


def test_cli_apply_runs_the_rollover_and_shows_no_secret(rig: Rig) -> None:
    write_pair(rig.tmp / "next", pki.make_leaf(rig.ca, [HOSTS[0]]), rig.ca)
    nxt = certfiles.load_pair(rig.tmp / "next/fullchain.pem", rig.tmp / "next/privkey.pem")
    (rig.tmp / "reload.sh").write_text('#!/bin/sh\necho reloaded >> "$(dirname "$0")/reloads"\n')
    (rig.tmp / "reload.sh").chmod(0o755)
    text = rig.cfg.path.read_text().replace("[reload-mail-service]", f"[{rig.tmp}/reload.sh]")
    rig.cfg.path.write_text(text)
    check = run_cli("-c", rig.cfg.path, "validate")
    assert check.returncode == 0, check.stdout + check.stderr
    first = run_cli("-c", rig.cfg.path, "-vv", "apply")
    assert first.returncode == 2, first.stdout + first.stderr  # published, now waiting
    done = run_cli("-c", rig.cfg.path, "-vv", "apply", "--wait", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # octoDNS's own log lines go through tlsarotate's logger (at -vv), never raw to stderr
    lines = (first.stderr + done.stderr).splitlines()
    assert lines and all(line.startswith("tlsarotate: ") for line in lines), lines[:5]
    assert any("_request" in line or "populate" in line for line in lines)
    assert (rig.tmp / "reloads").read_text().count("reloaded") == 1
    assert rig.deployed().same_as(nxt)
    texts = [p.stdout + p.stderr for p in (check, first, done)]
    texts += [f.read_text() for f in (rig.tmp / "state").iterdir() if f.is_file()]
    for secret in rig.backend.env.values():
        assert all(secret not in t for t in texts)
