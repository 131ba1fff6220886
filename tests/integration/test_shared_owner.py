"""One TLSA RRset for many MX hosts (issue #13): each ``_25._tcp.mxN`` a CNAME to one shared
owner (RFC 7671 §7), against a real BIND primary + secondary with inline signing.

The operator publishes the CNAMEs (here: a TSIG-signed UPDATE, as another client would);
``plan``/``apply`` write only the shared owner, one RRset however many hosts, and refuse to
retire or swap while an alias does not lead to it."""

# ruff: noqa: F811
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.update
import pytest

from tests.support import schemas
from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.servers import BindServers, bind, bind_servers, query  # noqa: F401
from tlsarotate import certfiles, material, pki, records

ZONE = "example.test."
SHARED = "_dane.example.test."
HOSTS = ("mx1.example.test", "mx2.example.test", "mx3.example.test")
TTL = 2

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
    records: ["3 1 1"]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    shared_owner: {shared}
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{cert: next/fullchain.pem, key: next/privkey.pem}}
      reload: ["true"]
"""


def alias(host: str) -> dns.name.Name:
    return records.owner_name(host, 25)


def set_cname(
    b: BindServers, name: dns.name.Name | str, target: str | None, ttl: int = TTL
) -> None:
    """What the operator does: (re)point ``name`` (None: remove its CNAME), then wait for the
    secondary."""

    def build(m: dns.update.UpdateMessage) -> None:
        m.delete(name, "CNAME")
        if target is not None:
            m.add(name, ttl, "CNAME", target)

    r = b.update(ZONE, build=build)
    assert r.rcode() == 0, r
    b.wait_synced(ZONE)


@dataclass
class Rig:
    tmp: Path
    bind: BindServers
    ca: pki.Issued
    config: Path

    def cli(self, *args: str) -> tuple[int, str, str]:
        p = run_cli("-c", self.config, *args, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def write(self, which: str) -> material.Material:
        d = self.tmp / which
        d.mkdir(exist_ok=True)
        leaf = pki.make_leaf(self.ca, list(HOSTS))
        (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, self.ca))
        (d / "privkey.pem").write_bytes(leaf.key_pem)
        return certfiles.load_pair(d / "fullchain.pem", d / "privkey.pem")

    def deployed(self) -> material.Material:
        d = self.tmp / "deployed"
        return certfiles.load_pair(d / "fullchain.pem", d / "privkey.pem")

    def tlsa(self, name: str | dns.name.Name, server: tuple[str, int]) -> set[str]:
        r = query(*server, dns.name.from_text(str(name)), "TLSA")
        return {
            records.to_text(rd)
            for rr in r.answer
            if rr.rdtype == dns.rdatatype.TLSA and rr.name == dns.name.from_text(str(name))
            for rd in rr
        }


@pytest.fixture
def rig(tmp_path: Path, bind: BindServers) -> Iterator[Rig]:
    for h in HOSTS:
        set_cname(bind, alias(h), SHARED)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        CONFIG.format(
            port=bind.port, key=bind.key_file, ttl=TTL, hosts=", ".join(HOSTS), shared=SHARED
        )
    )
    r = Rig(tmp_path, bind, pki.make_ca(), cfg)
    first = r.write("deployed")
    (tmp_path / "next").mkdir()
    for f in ("fullchain.pem", "privkey.pem"):
        (tmp_path / "next" / f).write_bytes((tmp_path / "deployed" / f).read_bytes())
    assert first.spki
    yield r
    for h in HOSTS:
        set_cname(bind, alias(h), None)


def test_one_rrset_at_the_shared_owner_for_every_host(rig: Rig) -> None:
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    want = {
        records.to_text(r)
        for r in records.build_all(rig.deployed(), [records.parse_params("3 1 1")])
    }
    for server in rig.bind.addresses:
        assert rig.tlsa(SHARED, server) == want
        for h in HOSTS:  # nothing written at the aliases: they stay CNAMEs
            assert rig.tlsa(alias(h), server) == set()
    # a rollover: the next certificate's records join the ONE RRset, then the old go
    nxt = rig.write("next")
    rc, out, err = rig.cli("plan", "--output", "json")
    assert rc == 2, (out, err)
    doc = json.loads(out)
    owners = {c["owner"] for c in doc["services"][0]["changes"]}
    assert owners == {SHARED}
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    assert rig.deployed().spki == nxt.spki
    want = {records.to_text(r) for r in records.build_all(nxt, [records.parse_params("3 1 1")])}
    for server in rig.bind.addresses:
        assert rig.tlsa(SHARED, server) == want


def test_an_alias_that_is_not_a_cname_blocks_the_swap(rig: Rig) -> None:
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    before = rig.deployed()
    rig.write("next")
    # mx2 now points elsewhere: its senders would not see the next certificate's records
    set_cname(rig.bind, alias(HOSTS[1]), "_other.example.test.")
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 1, (out, err)
    assert "_25._tcp.mx2.example.test. is a CNAME to _other.example.test." in out + err
    assert rig.deployed().spki == before.spki  # not swapped
    rc, out, err = rig.cli("plan", "--output", "json")
    assert rc == 1
    svc = json.loads(out)["services"][0]
    assert svc["phase"] == "blocked"
    assert any("_25._tcp.mx2.example.test." in w for w in svc["waiting_for"])
    # fixed: the rollover finishes (after the wait for what caches held for mx2)
    set_cname(rig.bind, alias(HOSTS[1]), SHARED)
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    assert rig.deployed().spki != before.spki


def test_observe_read_axfr_follows_the_aliases_too(rig: Rig) -> None:
    # the zone-transfer observer asks a CNAME by query and follows its chain, as the
    # per-owner one does: the same rollover, the same block on a repointed alias
    text = rig.config.read_text()
    rig.config.write_text(
        text.replace("    shared_owner:", "    observe_read: axfr\n    shared_owner:")
    )
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    before = rig.deployed()
    rig.write("next")
    set_cname(rig.bind, alias(HOSTS[1]), "_other.example.test.")
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 1, (out, err)
    assert "_25._tcp.mx2.example.test. is a CNAME to _other.example.test." in out + err
    assert "refused the transfer" not in err
    set_cname(rig.bind, alias(HOSTS[1]), SHARED)
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    assert rig.deployed().spki != before.spki


def test_an_alias_missing_on_every_server_is_blocked_after_publishing(rig: Rig) -> None:
    set_cname(rig.bind, alias(HOSTS[2]), None)
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 1, (out, err)
    assert "_25._tcp.mx3.example.test. is not a CNAME to _dane.example.test." in out + err
    # the shared records are published all the same (adding them breaks nobody)
    assert rig.tlsa(SHARED, rig.bind.primary)


def test_a_cname_loop_is_named(rig: Rig) -> None:
    set_cname(rig.bind, alias(HOSTS[0]), "_loop.example.test.")
    set_cname(rig.bind, "_loop.example.test.", alias(HOSTS[0]).to_text())
    try:
        rc, out, err = rig.cli("apply", "--wait")
        assert rc == 1, (out, err)
        assert "CNAME loop: _25._tcp.mx1.example.test. -> _loop.example.test. -> " in out
    finally:
        set_cname(rig.bind, "_loop.example.test.", None)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("_dane.other.test.", "is not inside zone example.test."),
        ("_25._tcp.mx1.example.test.", "is a host's own TLSA name"),
        ("bad..name", "shared_owner"),
    ],
)
def test_bad_shared_owner_is_one_line(tmp_path: Path, value: str, needle: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(port=53, key="k", ttl=TTL, hosts=", ".join(HOSTS), shared=value))
    p = run_cli("-c", cfg, "validate")
    assert_one_line_error(p, "services[0].shared_owner", needle)
    assert f"{cfg}:" in p.stderr


def test_shared_owner_needs_observe_dns(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    text = CONFIG.format(port=53, key="k", ttl=TTL, hosts=", ".join(HOSTS), shared=SHARED)
    cfg.write_text(text.replace("    shared_owner:", "    observe: provider\n    shared_owner:"))
    p = run_cli("-c", cfg, "validate")
    assert_one_line_error(p, "services[0].shared_owner", "needs observe: dns")


def test_check_carries_the_alias_signals(rig: Rig) -> None:
    rc, out, err = rig.cli("apply", "--wait")
    assert rc == 0, (out, err)
    prom = rig.tmp / "metrics.prom"
    rc, out, err = rig.cli("check", "--no-live", "--output", "json", "--prometheus", str(prom))
    assert rc == 0, (out, err)
    doc = schemas.validate("check", out)
    aliases = doc["services"][0]["aliases"]
    assert [(a["alias"], a["owner"], a["ok"]) for a in aliases] == [
        (alias(h).to_text(), SHARED, True) for h in HOSTS
    ]
    assert doc["perfdata"]["broken_aliases"] == 0
    assert [o["owner"] for o in doc["services"][0]["owners"]] == [SHARED]
    line = 'tlsarotate_tlsa_alias_ok{service="mail",alias="_25._tcp.mx2.example.test.",'
    assert f'{line}owner="{SHARED}"}} 1' in prom.read_text()

    set_cname(rig.bind, alias(HOSTS[1]), None)  # mx2's senders now see no TLSA records
    rc, out, err = rig.cli("check", "--no-live", "--prometheus", str(prom))
    assert rc == 2, (out, err)
    assert "CRITICAL _25._tcp.mx2.example.test. CNAME -> _dane.example.test." in out
    assert "CRITICAL: 127.0.0.1:" in out and "is not a CNAME to _dane.example.test." in out
    assert f'{line}owner="{SHARED}"}} 0' in prom.read_text()
    rc, out, err = rig.cli("check", "--no-live", "--output", "nagios")
    assert rc == 2 and "broken_aliases=1;;0" in out, out
    rc, out, err = rig.cli("check", "--no-live", "--output", "json")
    doc = schemas.validate("check", out)
    (mx2,) = [a for a in doc["services"][0]["aliases"] if not a["ok"]]
    assert mx2["alias"] == alias(HOSTS[1]).to_text() and len(mx2["problems"]) == 2


def chain_of(rig: Rig, n: int, end: str) -> list[str]:
    """mx1's TLSA name -> _c1 -> ... -> _c{n-1} -> end: n CNAMEs; returns the names made."""
    names = [f"_c{i}.example.test." for i in range(1, n)]
    hops = [alias(HOSTS[0]).to_text(), *names]
    for name, target in zip(hops, [*names, end], strict=True):
        set_cname(rig.bind, name, target)
    return names


@pytest.mark.parametrize(
    ("n", "end", "rc", "needle"),
    [
        (3, SHARED, 0, None),  # a chain inside the zone that ends at the shared owner is fine
        (9, SHARED, 1, "CNAME chain from _25._tcp.mx1.example.test. longer than 8 steps"),
        (1, "_dane.policy.test.", 1, "leads out of zone example.test. to _dane.policy.test."),
    ],
)
def test_cname_chains(rig: Rig, n: int, end: str, rc: int, needle: str | None) -> None:
    made = chain_of(rig, n, end)
    try:
        got, out, err = rig.cli("apply", "--wait")
        assert got == rc, (out, err)
        if needle:
            assert needle in out, out
    finally:
        for name in made:
            set_cname(rig.bind, name, None)


def test_check_live_endpoints_are_judged_by_the_shared_rrset(
    tmp_path: Path, bind: BindServers
) -> None:
    """mx.example.test (A 127.0.0.1 in the test zone) serves SMTP with STARTTLS; its TLSA name
    is a CNAME to the shared owner, whose RRset the check reads for the endpoint."""
    from tests.support.tls_servers import SmtpdServer, make_chain

    ca = pki.make_ca()
    chain = make_chain(tmp_path, "mx", ca, ("mx.example.test",))
    srv = SmtpdServer("127.0.0.1", chain).start()
    name = records.owner_name("mx.example.test", srv.port)
    try:
        set_cname(bind, name, SHARED)
        for d in ("deployed", "next"):
            (tmp_path / d).mkdir()
            (tmp_path / d / "fullchain.pem").write_bytes(chain.fullchain.read_bytes())
            (tmp_path / d / "privkey.pem").write_bytes(chain.key.read_bytes())
        cfg = tmp_path / "config.yaml"
        text = CONFIG.format(
            port=bind.port, key=bind.key_file, ttl=TTL, hosts="mx.example.test", shared=SHARED
        )
        text = text.replace("ports: [25]", f"ports: [{srv.port}]")
        cfg.write_text(text + "      verify: {starttls: smtp}\n")
        p = run_cli("-c", cfg, "apply", "--wait")
        assert p.returncode == 0, p.stdout + p.stderr
        p = run_cli("-c", cfg, "check", "--output", "json")
        assert p.returncode == 0, p.stdout + p.stderr
        doc = schemas.validate("check", p.stdout)
        eps = doc["services"][0]["endpoints"]
        assert [(e["owner"], e["ok"]) for e in eps] == [(SHARED, True)]
        assert doc["services"][0]["aliases"][0]["ok"] is True
    finally:
        srv.stop()
        set_cname(bind, name, None)


def test_without_shared_owner_an_owner_that_is_a_cname_is_named(rig: Rig) -> None:
    """The CNAMEs of the rig, but a config that would write TLSA at the hosts' own names: a
    server ignores TLSA at a CNAME, so plan blocks before any write and check is CRITICAL
    (it used to plan a publish there)."""
    text = rig.config.read_text().replace(f"    shared_owner: {SHARED}\n", "")
    rig.config.write_text(text)
    rc, out, err = rig.cli("plan")
    assert rc == 1, (out, err)
    hint = "is itself a CNAME to _dane.example.test.: no TLSA records can be published there"
    assert f"_25._tcp.mx1.example.test. {hint}" in out, out
    assert "with shared_owner: _dane.example.test. it may be a CNAME" in out
    rc, out, err = rig.cli("check", "--no-live")
    assert rc == 2 and hint in out, out
    assert rig.tlsa(SHARED, rig.bind.primary) == set()  # nothing written
