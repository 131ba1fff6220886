"""CA sets for DANE-TA (``ca_set``, issue #13) against a real BIND primary + secondary with
inline signing, through the real rfc2136 provider and DNS observer and the real CLI.

One service pins ``2 1 1`` to a set of intermediates (R10, R11) beside ``3 1 1``. A recorder
samples both servers throughout, and afterwards every RRset they answered must accept the
chain served at that moment, and every RRset answered within one TTL before a swap must accept
the chain swapped in (what a cache may still hold).
"""

# ruff: noqa: F811
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support import schemas
from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.recorder import Recorder
from tests.support.servers import (  # noqa: F401
    BindServers,
    Unbound,
    bind,
    bind_servers,
    query,
    unbound,
)
from tests.support.tls_servers import Chain, SmtpdServer, openssl_dane
from tlsarotate import caset, certfiles, config, material, phases, pki, records
from tlsarotate.engine import Engine, make_providers
from tlsarotate.providers.base import ProviderContext
from tlsarotate.stores.file import FileStateStore

TTL = 2
HOST = "mx1.example.test"
P211 = records.parse_params("2 1 1")

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
    hosts: [{host}]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1", "2 1 1"]
    ca_set: [cas/]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{cert: next/fullchain.pem, key: next/privkey.pem}}
      reload: [reload-mail-service]
"""


def write_pair(d: Path, leaf: pki.Issued, ca: pki.Issued) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)


@dataclass
class Rig:
    tmp: Path
    bind: BindServers
    cas: dict[str, pki.Issued]
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

    def run(self, wait: bool = True) -> list[str]:
        seen: list[str] = []
        engine = self.engine()
        engine.on_plan = lambda p: seen.append(p.phase)
        engine.run(self.cfg.services, wait=wait, deadline=time.time() + 60)
        return seen

    def pin_set(self, *names: str) -> None:
        """ca_set's directory holds these CAs: R10 and R11 in one bundle file, others alone."""
        d = self.tmp / "cas"
        for f in d.iterdir():
            f.unlink()
        bundle = [n for n in names if n in ("R10", "R11")]
        if bundle:
            (d / "bundle.pem").write_bytes(b"".join(self.cas[n].cert_pem for n in bundle))
        for n in names:
            if n not in bundle:
                (d / f"{n}.pem").write_bytes(self.cas[n].cert_pem)

    def next_from(self, ca: str, same_key: bool = False) -> material.Material:
        key = self.deployed_key() if same_key else None
        write_pair(self.tmp / "next", pki.make_leaf(self.cas[ca], [HOST], key=key), self.cas[ca])
        return certfiles.load_pair(self.tmp / "next/fullchain.pem", self.tmp / "next/privkey.pem")

    def deployed_key(self) -> pki.PrivateKey:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key((self.tmp / "deployed/privkey.pem").read_bytes(), None)
        return key  # type: ignore[return-value]

    def served(self) -> set[str]:
        """What both servers serve at the owner (they must agree)."""
        owner = self.cfg.services[0].owners[0]
        got = []
        for addr, port in self.bind.addresses:
            r = query(addr, port, owner, "TLSA")
            rrset = r.get_rrset(r.answer, owner, dns.rdataclass.IN, dns.rdatatype.TLSA)
            got.append({records.to_text(rd) for rd in rrset or ()})
        assert all(g == got[0] for g in got), got
        return got[0]

    def pin(self, ca: str) -> str:
        return records.to_text(caset.CaCert("-", self.cas[ca].cert).pin(P211))

    def ee(self, m: material.Material) -> str:
        return records.to_text(records.build(m, records.parse_params("3 1 1")))


@pytest.fixture
def rig(tmp_path: Path, bind: BindServers) -> Iterator[Rig]:
    root = pki.make_ca("Test Root")
    cas = {n: pki.make_ca(n, issuer=root) for n in ("R10", "R11", "R12")}
    first = pki.make_leaf(cas["R10"], [HOST])
    write_pair(tmp_path / "deployed", first, cas["R10"])
    write_pair(tmp_path / "next", first, cas["R10"])
    (tmp_path / "cas").mkdir()
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(CONFIG.format(port=bind.port, key=bind.key_file, ttl=TTL, host=HOST))
    r = Rig(tmp_path, bind, cas, config.load(cfg_path), [])
    r.pin_set("R10", "R11")
    assert r.run() and r.served() == {r.ee(r.deployed()), r.pin("R10"), r.pin("R11")}
    yield r


def check_invariants(rig: Rig, rec: Recorder, first: material.Material) -> None:
    """Every answer accepts the chain served then; every answer within one TTL before a swap
    accepts the chain swapped in."""
    swaps = sorted(rig.reloads, key=lambda x: x[0])
    checked = 0
    for s in rec.samples:
        if not s.texts:
            continue
        rrset = [records.from_text(t) for t in s.texts]
        before = [m for t, m in swaps if t <= s.t]
        served = before[-1] if before else first
        assert records.accepts(rrset, served.chain_der), s
        for t, m in swaps:
            if t - TTL < s.t < t:
                checked += 1
                assert records.accepts(rrset, m.chain_der), (s, t)
    assert checked or not swaps


def test_ca_set_rollover_on_bind(rig: Rig) -> None:
    owner = rig.cfg.services[0].owners[0]
    rec = Recorder(rig.bind.addresses, [owner])
    first = rig.deployed()
    rec.start()
    try:
        time.sleep(TTL + 0.5)  # the set's first publication is old enough now
        # 1. a renewal by another CA of the set, same key: every record it needs is published
        #    and old: swapped at once, with no DNS write
        nxt = rig.next_from("R11", same_key=True)
        out = run_cli("-c", rig.cfg.path, "plan", "--output", "json")
        doc = schemas.validate("plan", out.stdout)["services"][0]
        assert doc["phase"] == phases.SWAP, out.stdout + out.stderr
        assert doc["pins"] == [
            {
                "certificate": "default",
                "params": "2 1 1",
                "ca": "CN=R11",
                "in_ca_set": True,
                "published": True,
                "safe": True,
            }
        ]
        sent = []
        engine = rig.engine()
        engine.run(rig.cfg.services, wait=True, deadline=time.time() + 60)
        sent.append(engine.providers["bind"].sent.get("UPDATE", 0))  # type: ignore[attr-defined]
        assert sent == [0] and rig.deployed().same_as(nxt) and len(rig.reloads) == 1
        val = run_cli("-c", rig.cfg.path, "validate")
        assert val.returncode == 0, val.stderr
        assert "mail: ca_set pins 2 CA certificate(s): CN=R10, CN=R11" in val.stdout
        # 2. a renewal by R12, not in the set: blocked, plan and validate name the missing pin
        #    (its own 3 1 1 is published first, as for any next certificate)
        rig.next_from("R12")
        assert rig.run()[-1] == phases.BLOCKED and len(rig.reloads) == 1
        out = run_cli("-c", rig.cfg.path, "plan")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "issued by CN=R12, which is not in ca_set" in out.stdout
        assert "pin: next certificate 'default' needs 2 1 1 of CN=R12: not in ca_set" in out.stdout
        val = run_cli("-c", rig.cfg.path, "validate")
        assert_one_line_error(val, "issued by CN=R12, which is not in ca_set")
        # 3. R12 joins the set: its pin is published, then the swap waits until it is safe
        rig.pin_set("R10", "R11", "R12")
        seen = rig.run()
        assert seen[0] == phases.PUBLISH and phases.SWAP in seen, seen
        assert seen.index(phases.WAIT_TTL) < seen.index(phases.SWAP), seen
        assert (
            len(rig.reloads) == 2 and rig.deployed().chain[1].subject == rig.cas["R12"].cert.subject
        )
        assert rig.pin("R12") in rig.served()
        # 4. R10 and R12 leave the set: R10's pin is retired (no --force), R12's stays (served)
        rig.pin_set("R11")
        out = run_cli("-c", rig.cfg.path, "check", "--no-live", "--output", "json")
        doc = schemas.validate("check", out.stdout)
        assert doc["status"] == "WARNING", out.stdout
        messages = [f["message"] for f in doc["findings"]]
        assert any("issued by CN=R12, which is not in ca_set" in m for m in messages), messages
        assert any("pins a CA that is not in ca_set" in m for m in messages), messages
        assert doc["services"][0]["ca_set"]["retired"] == [
            {"owner": owner.to_text(), "record": rig.pin("R10")}
        ]
        plain = run_cli("-c", rig.cfg.path, "check", "--no-live")
        assert plain.returncode == 1 and "pins a CA that is not in ca_set" in plain.stdout
        seen = rig.run()
        assert phases.CLEANUP in seen, seen
        assert rig.served() == {rig.ee(rig.deployed()), rig.pin("R11"), rig.pin("R12")}
    finally:
        rec.halt.set()
        rec.join()
    check_invariants(rig, rec, first)
    # check's other formats carry the signals too
    prom = rig.tmp / "check.prom"
    out = run_cli(
        "-c", rig.cfg.path, "check", "--no-live", "--output", "nagios", "--prometheus", prom
    )
    assert out.returncode == 1 and out.stdout.startswith("TLSAROTATE WARNING"), out.stdout
    text = prom.read_text()
    assert 'tlsarotate_ca_set_issuer_pinned{service="mail",slot="default"} 0' in text
    assert 'tlsarotate_ca_set_published{service="mail",ca="CN=R11"} 1' in text
    assert 'tlsarotate_ca_set_retired_records{service="mail"} 0' in text
    assert 'tlsarotate_ca_set_expiry_timestamp_seconds{service="mail",ca="CN=R11"} ' in text


def test_ca_set_pins_authenticate_the_served_chain_through_unbound_and_openssl(
    rig: Rig, unbound: Unbound
) -> None:
    """After a CA-set rollover (R10 -> R11, a new key, `apply --wait`), a validating resolver
    serves the pins with AD, and openssl (an independent DANE verifier) accepts the chain an
    SMTP server serves from the deployed files with the 2 1 1 records alone, and with the
    3 1 1 alone; R10's pin alone (a CA of the set that issued nothing served) does not."""
    rig.next_from("R11")
    # from the CLI this time, as a deploy hook runs it
    cfg = rig.cfg.path
    cfg.write_text(cfg.read_text().replace("[reload-mail-service]", "[/bin/true]"))
    out = run_cli("-c", cfg, "apply", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert rig.deployed().chain[1].subject == rig.cas["R11"].cert.subject
    owner = rig.cfg.services[0].owners[0]
    answer = unbound.resolver().resolve(owner, "TLSA")
    assert answer.response.flags & dns.flags.AD  # DNSSEC-validated
    texts = {records.to_text(rd) for rd in answer}
    assert texts == {rig.ee(rig.deployed()), rig.pin("R10"), rig.pin("R11")}
    d = rig.tmp / "deployed"
    leaf = pki.Issued(rig.deployed_key(), rig.deployed().chain[0])
    chain = Chain(leaf, (rig.cas["R11"],), d / "fullchain.pem", d / "privkey.pem")
    server = SmtpdServer("127.0.0.1", chain).start()
    try:
        pins = [t for t in texts if t.startswith("2 ")]
        ee = [t for t in texts if t.startswith("3 ")]
        for rrdata, ok in ((pins, True), (ee, True), ([rig.pin("R10")], False)):
            got = openssl_dane("127.0.0.1", server.port, HOST, rrdata)
            assert got.ok is ok, (rrdata, got.output)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("leaf", "is not a CA certificate"),
        ("garbage", "not a PEM or DER certificate file"),
        ("empty-dir", "an empty directory, expected CA certificate files"),
    ],
)
def test_a_bad_ca_set_file_is_one_line_and_writes_nothing(
    rig: Rig, content: str, needle: str
) -> None:
    bad = rig.tmp / "cas/leaf.pem"
    if content == "leaf":
        bad.write_bytes(pki.make_leaf(rig.cas["R10"], [HOST]).cert_pem)
    elif content == "garbage":
        bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    else:
        bad = rig.tmp / "cas"
        rig.pin_set()
    rig.next_from("R11")  # a write would be due
    before = rig.served()
    for cmd in ("validate", "plan", "apply", "check"):
        out = run_cli("-c", rig.cfg.path, cmd, *(["--no-live"] if cmd == "check" else []))
        if cmd == "check":  # UNKNOWN, the reason in a finding
            assert out.returncode == 3 and needle in out.stdout, out.stdout + out.stderr
            continue
        assert_one_line_error(out, "ca_set", str(bad), needle)
    assert rig.served() == before and rig.reloads == []


def test_ca_set_needs_a_usage_2_record(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "providers: {p: {type: memory, zones: [example.test.]}}\n"
        "services:\n"
        "  - name: mail\n"
        "    zone: example.test.\n"
        "    provider: p\n"
        "    hosts: [mx1.example.test]\n"
        "    records: ['3 1 1']\n"
        "    ca_set: [cas.pem]\n"
        "    certificate: {deployed: {cert: c.pem, key: k.pem}}\n"
    )
    out = run_cli("-c", cfg, "validate")
    assert_one_line_error(out, f"{cfg}:8: services[0].ca_set: only meaningful with a usage 2")
