"""Dual certificates checked apart: a real Postfix serving an RSA and an ECDSA key+chain side by
side (``smtpd_tls_chain_files = rsa.pem, ecdsa.pem``), probed once per key type by the swap's
``verify``, by ``check`` (against the real BIND pair) and by ``probe``; ``openssl s_client
-sigalgs ... -cipher ...`` is the independent oracle for what each handshake serves."""

# ruff: noqa: F811
from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.support.acme_servers import Postfix, postfix_running
from tests.support.checkworld import rec, spki
from tests.support.helpers import run_cli
from tests.support.schemas import validate
from tests.support.servers import BindServers, BindZone, bind, bind_servers  # noqa: F401
from tests.support.tls_servers import Chain, make_chain, openssl_dane, publish
from tlsarotate import keytypes, material, pki, records
from tlsarotate.config import CertPaths, CertSlot, Service, Verify
from tlsarotate.handshake import fetch_chain
from tlsarotate.postswap import verify_live

HOST = "mx.example.test"
# Postfix listens on 127.0.0.1 only: the host has no AAAA
BIND_ZONES = [BindZone("example.test.", extra="mx A 127.0.0.1\n")]

# openssl s_client offering one key type, as tlsarotate.keytypes does
OFFER = {
    kt: ["-sigalgs", keytypes.SIGALGS[kt], "-cipher", keytypes.CIPHERS[kt]]
    for kt in keytypes.KEY_TYPES
}


def pair(d: Path, ca: pki.Issued, name: str, kind: str) -> Chain:
    """One key type's certificate, written as the deployed files of its slot."""
    return make_chain(d, name, ca, [HOST], kind=kind)


def mat(ch: Chain) -> material.Material:
    return material.parse(ch.fullchain.read_bytes(), ch.fullchain)


@pytest.fixture
def rsa(tmp_path: Path, ca: pki.Issued) -> Chain:
    return pair(tmp_path, ca, "rsa", "rsa2048")


@pytest.fixture
def ecdsa(tmp_path: Path, ca: pki.Issued) -> Chain:
    return pair(tmp_path, ca, "ecdsa", "ecdsa-p256")


@contextlib.contextmanager
def postfix(*served: Chain) -> Iterator[Postfix]:
    """A real Postfix whose smtpd_tls_chain_files lists each chain's key+chain file."""
    first, *more = ((c.leaf.key_pem, c.fullchain.read_bytes()) for c in served)
    with postfix_running(*first, HOST, more) as pf:
        yield pf


# ---------------------------------------------------------------------------------------------
# the handshake, against the oracle


def test_dual_postfix_serves_each_key_type_to_its_handshake(rsa: Chain, ecdsa: Chain) -> None:
    with postfix(rsa, ecdsa) as pf:
        for kt, mine, other in (("rsa", rsa, ecdsa), ("ecdsa", ecdsa, rsa)):
            got = fetch_chain("127.0.0.1", pf.port, "smtp", 10, HOST, key_type=kt)
            assert got.error is None, got.error
            assert got.der[0] == mat(mine).chain_der[0] and got.key_type == kt
            # openssl offering the same: that certificate's record verifies, the other's not
            assert openssl_dane("127.0.0.1", pf.port, HOST, [rec(mine)], extra=OFFER[kt]).ok
            wrong = openssl_dane("127.0.0.1", pf.port, HOST, [rec(other)], extra=OFFER[kt])
            assert not wrong.ok, wrong.output
        # offering everything, Postfix presents ONE of them (ECDSA: a default client's choice)
        anyone = fetch_chain("127.0.0.1", pf.port, "smtp", 10, HOST)
        assert anyone.der[0] == mat(ecdsa).chain_der[0]


# ---------------------------------------------------------------------------------------------
# the swap's verify


def service(port: int, *slots: CertSlot) -> Service:
    return Service(
        name="mail",
        zone=dns.name.from_text("example.test."),
        provider="p",
        hosts=(f"{HOST}.",),
        ports=(port,),
        protocol="tcp",
        ttl=300,
        params=(records.parse_params("3 1 1"),),
        certificates=slots,
    )


def slots_for(port: int, rsa: Chain, ecdsa: Chain) -> tuple[Service, CertSlot, CertSlot]:
    v = Verify(starttls="smtp", host="127.0.0.1", port=port, timeout=5)
    r = CertSlot("rsa", CertPaths(cert=rsa.fullchain, key=rsa.key), None, verify=v)
    e = CertSlot("ecdsa", CertPaths(cert=ecdsa.fullchain, key=ecdsa.key), None, verify=v)
    return service(port, e, r), r, e


def test_a_swap_of_the_rsa_slot_is_verified_on_an_rsa_handshake(
    rsa: Chain, ecdsa: Chain, tmp_path: Path, ca: pki.Issued
) -> None:
    """Postfix prefers the ECDSA certificate: a verify taking what the server prefers would
    see it after every RSA swap and roll the swap back. Each slot is verified on its own key
    type, and an RSA certificate that was not reloaded is still seen."""
    with postfix(rsa, ecdsa) as pf:
        svc, r, e = slots_for(pf.port, rsa, ecdsa)
        assert verify_live(svc, r, mat(rsa)) is None
        assert verify_live(svc, e, mat(ecdsa)) is None
        newer = pair(tmp_path, ca, "rsa-new", "rsa2048")  # installed, but not what is served
        problem = verify_live(svc, r, mat(newer))
        assert problem is not None and "still serves another certificate" in problem


def test_verify_of_a_key_type_postfix_does_not_serve_fails(rsa: Chain, ecdsa: Chain) -> None:
    with postfix(ecdsa) as pf:  # the RSA file is not in smtpd_tls_chain_files
        svc, r, _ = slots_for(pf.port, rsa, ecdsa)
        problem = verify_live(svc, r, mat(rsa))
        assert problem is not None and "(offering only RSA certificates)" in problem, problem
        assert problem.startswith(f"after the reload, 127.0.0.1:{pf.port} answered: TLS ")


# ---------------------------------------------------------------------------------------------
# check


def check_config(d: Path, bind: BindServers, port: int, rsa: Chain, ecdsa: Chain) -> Path:
    ns = ", ".join(f'"{n}"' for n in bind.nameservers)
    text = f"""\
state_dir: {d / "state"}
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {bind.port}
    tsig_key_file: {bind.key_file}
services:
  - name: mail
    zone: example.test
    provider: bind
    hosts: [{HOST}]
    ports: [{port}]
    records: ["3 1 1"]
    nameservers: [{ns}]
    certificates:
      - name: ecdsa
        deployed: {{cert: {ecdsa.fullchain}, key: {ecdsa.key}}}
        verify: {{starttls: smtp}}
      - name: rsa
        deployed: {{cert: {rsa.fullchain}, key: {rsa.key}}}
        verify: {{starttls: smtp}}
"""
    p = d / "config.yaml"
    p.write_text(text)
    return p


@dataclasses.dataclass
class Checked:
    """check against a real Postfix: the exit code, the JSON document (schema-validated), the
    nagios line, the text and the Prometheus file (the three runs agree on the code)."""

    port: int
    owner: str
    code: int
    doc: dict[str, Any]
    nagios: str
    text: str
    prom: str


def check_dual(
    bind: BindServers,
    d: Path,
    served: Sequence[Chain],
    published: Sequence[Chain],
    rsa: Chain,
    ecdsa: Chain,
) -> Checked:
    """check a service with an ``ecdsa`` and an ``rsa`` slot while Postfix serves ``served``
    and the zone holds the records of ``published``."""
    with postfix(*served) as pf:
        owner = f"_{pf.port}._tcp.{HOST}."
        publish(bind, "example.test.", owner, [rec(c) for c in published])
        cfg = check_config(d, bind, pf.port, rsa, ecdsa)
        prom = d / "check.prom"
        j = run_cli("-c", cfg, "check", "--output", "json", "--timeout", "5", "--prometheus", prom)
        n = run_cli("-c", cfg, "check", "--output", "nagios", "--timeout", "5")
        t = run_cli("-c", cfg, "check", "--timeout", "5")
    assert j.returncode == n.returncode == t.returncode, (j.stdout, n.stdout, t.stdout)
    doc = validate("check", j.stdout)
    return Checked(pf.port, owner, j.returncode, doc, n.stdout, t.stdout, prom.read_text())


def endpoints(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (svc,) = doc["services"]
    eps: list[dict[str, Any]] = svc["endpoints"]
    return eps


def perf(nagios: str) -> dict[str, str]:
    return dict(i.split("=", 1) for i in nagios.split(" | ", 1)[1].split())


def test_check_handshakes_once_per_slot_key_type(
    bind: BindServers, rsa: Chain, ecdsa: Chain, tmp_path: Path
) -> None:
    c = check_dual(bind, tmp_path, [rsa, ecdsa], [rsa, ecdsa], rsa, ecdsa)
    assert c.code == 0, (c.nagios, c.text)
    eps = endpoints(c.doc)
    assert [(e["key_type"], e["ok"]) for e in eps] == [("rsa", True), ("ecdsa", True)]
    served = {e["key_type"]: e["spki_sha256"] for e in eps}
    assert served == {"rsa": spki(rsa), "ecdsa": spki(ecdsa)}
    assert c.doc["perfdata"]["key_types_missing"] == 0
    assert c.nagios.startswith("TLSAROTATE OK - 2 endpoints pass DANE")
    assert perf(c.nagios)["key_types_missing"] == "0;;0"
    assert f"OK       {c.owner} at 127.0.0.1:{c.port} (RSA): " in c.text
    assert f"OK       {c.owner} at 127.0.0.1:{c.port} (ECDSA): " in c.text
    for kt in ("rsa", "ecdsa"):
        labels = f'service="mail",owner="{c.owner}",address="127.0.0.1",key_type="{kt}"'
        assert f"tlsarotate_endpoint_up{{{labels}}} 1" in c.prom
        assert f"tlsarotate_endpoint_dane_ok{{{labels}}} 1" in c.prom


def test_check_a_configured_key_type_not_served_is_critical(
    bind: BindServers, rsa: Chain, ecdsa: Chain, tmp_path: Path
) -> None:
    """Postfix serves only the ECDSA certificate (the RSA file fell out of
    smtpd_tls_chain_files): every client offering only RSA fails. One handshake taking what
    the server prefers would see a perfect ECDSA certificate and say OK."""
    c = check_dual(bind, tmp_path, [ecdsa], [rsa, ecdsa], rsa, ecdsa)
    assert c.code == 2, (c.nagios, c.text)
    eps = endpoints(c.doc)
    assert [(e["key_type"], e["ok"]) for e in eps] == [("rsa", False), ("ecdsa", True)]
    assert c.doc["perfdata"]["key_types_missing"] == 1
    crit = [f["message"] for f in c.doc["findings"] if f["severity"] == "CRITICAL"]
    assert len(crit) == 1, crit
    assert re.fullmatch(
        rf"{re.escape(c.owner)} at 127\.0\.0\.1:{c.port} \(RSA\): serves no RSA certificate "
        r"\(slot 'rsa'\): TLS handshake failed: .* \(offering only RSA certificates\)",
        crit[0],
    ), crit[0]
    assert c.nagios.startswith("TLSAROTATE CRITICAL - 1 of 2 endpoints fail DANE")
    assert perf(c.nagios)["key_types_missing"] == "1;;0"
    assert f"CRITICAL {c.owner} at 127.0.0.1:{c.port} (RSA): serves no RSA certificate" in c.text
    base = f'service="mail",owner="{c.owner}",address="127.0.0.1"'
    assert f'tlsarotate_endpoint_up{{{base},key_type="rsa"}} 0' in c.prom
    assert f'tlsarotate_endpoint_dane_ok{{{base},key_type="rsa"}} 0' in c.prom
    assert f'tlsarotate_endpoint_dane_ok{{{base},key_type="ecdsa"}} 1' in c.prom


def test_check_matches_each_endpoint_with_its_own_slot(
    bind: BindServers, rsa: Chain, ecdsa: Chain, tmp_path: Path, ca: pki.Issued
) -> None:
    """The RSA slot's file was replaced and Postfix not reloaded: its RSA handshake serves a
    certificate that is not THAT slot's deployed file (the ECDSA one is its own)."""
    newer = pair(tmp_path, ca, "rsa-new", "rsa2048")
    c = check_dual(bind, tmp_path, [rsa, ecdsa], [rsa, newer, ecdsa], newer, ecdsa)
    assert c.code == 1, (c.nagios, c.text)
    warn = [f["message"] for f in c.doc["findings"] if f["severity"] == "WARNING"]
    assert warn == [
        f"{c.owner} at 127.0.0.1:{c.port} (RSA) serves a certificate that is not the deployed "
        "file of slot 'rsa' (reload pending?)"
    ]


# ---------------------------------------------------------------------------------------------
# probe


def probe(port: int, records_file: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    base = ("probe", HOST, "--port", str(port), "--starttls", "smtp", "--address", "127.0.0.1")
    j = run_cli(*base, "--tlsa-from", records_file, "--output", "json", *args)
    t = run_cli(*base, "--tlsa-from", records_file, *args)
    assert j.returncode == t.returncode, (j.stdout, t.stdout)
    return j.returncode, validate("probe", j.stdout), t.stdout


def tlsa_file(d: Path, pairs: Sequence[Chain]) -> Path:
    p = d / ("tlsa-" + "-".join(x.fullchain.stem for x in pairs) + ".txt")
    p.write_text("".join(f"{rec(x)}\n" for x in pairs))
    return p


def addresses(doc: dict[str, Any]) -> list[tuple[object, ...]]:
    return [(a["key_type"], a["key_type_offered"], a["dane"]) for a in doc["addresses"]]


def test_probe_reports_each_key_type_served(rsa: Chain, ecdsa: Chain, tmp_path: Path) -> None:
    both = tlsa_file(tmp_path, [rsa, ecdsa])
    with postfix(rsa, ecdsa) as pf:
        code, doc, text = probe(pf.port, both)
        assert code == 0, text
        assert addresses(doc) == [
            ("ecdsa", None, "authenticated"),  # what Postfix prefers
            ("rsa", "rsa", "authenticated"),  # then RSA offered alone
        ]
        assert doc["key_types"] == "all" and doc["not_served"] == []
        assert text.count(f"127.0.0.1:{pf.port} (smtp STARTTLS): TLSv1.3") == 2
        assert ", RSA certificate\n" in text and ", ECDSA certificate\n" in text
        assert "result: all 2 handshake(s) (one per key type and address) pass DANE" in text

        # a TLSA RRset with only the ECDSA record: every client offering RSA fails DANE
        code, doc, text = probe(pf.port, tlsa_file(tmp_path, [ecdsa]))
        assert code == 2, text
        assert addresses(doc) == [("ecdsa", None, "authenticated"), ("rsa", "rsa", "fails")]

        code, doc, text = probe(pf.port, both, "--key-type", "rsa")
        assert code == 0, text
        assert addresses(doc) == [("rsa", "rsa", "authenticated")] and doc["key_types"] == "rsa"
        assert "result: all 1 address(es) pass DANE" in text


def test_probe_names_a_key_type_not_served(rsa: Chain, ecdsa: Chain, tmp_path: Path) -> None:
    both = tlsa_file(tmp_path, [rsa, ecdsa])
    with postfix(ecdsa) as pf:
        code, doc, text = probe(pf.port, both)
        assert code == 0, text  # the server works, with its one certificate
        assert addresses(doc) == [("ecdsa", None, "authenticated")]
        (ns,) = doc["not_served"]
        assert (ns["address"], ns["key_type"]) == ("127.0.0.1", "rsa")
        assert f"127.0.0.1:{pf.port}: serves no RSA certificate (TLS handshake failed" in text

        # asked for RSA alone, the server has none: nothing could be checked
        code, doc, text = probe(pf.port, both, "--key-type", "rsa")
        assert code == 1, text
        assert addresses(doc) == [("rsa", "rsa", None)]
        assert "(offering only RSA certificates)" in text


def test_probe_saves_each_key_types_chain(rsa: Chain, ecdsa: Chain, tmp_path: Path) -> None:
    out = tmp_path / "saved"
    out.mkdir()
    with postfix(rsa, ecdsa) as pf:
        code, doc, _ = probe(pf.port, tlsa_file(tmp_path, [rsa, ecdsa]), "--save-chain", str(out))
    assert code == 0
    saved = [Path(a["saved_chain"]) for a in doc["addresses"]]
    assert len(set(saved)) == 2
    leaves = {material.parse(p.read_bytes(), p).spki_sha256 for p in saved}
    assert leaves == {spki(rsa), spki(ecdsa)}


# ---------------------------------------------------------------------------------------------
# the whole rollover of the RSA slot, through the CLI

ZONE_FILE = """$TTL 300
$ORIGIN example.test.
@       IN SOA ns1 hostmaster 2026010100 3600 600 86400 300
        IN NS   ns1
ns1     IN A    192.0.2.53
mx      IN A    127.0.0.1
"""


def test_apply_rolls_the_rsa_slot_of_a_dual_postfix(
    rsa: Chain, ecdsa: Chain, tmp_path: Path, ca: pki.Issued
) -> None:
    """``apply --wait`` rolls the RSA slot of a Postfix serving both types from its own
    smtpd_tls_chain_files: publish, wait the TTL, swap the combined file, ``postfix reload``,
    verify on an RSA handshake (Postfix would present the untouched ECDSA certificate to a
    handshake offering both, and the swap was rolled back), retire the old RSA record."""
    nxt = pair(tmp_path, ca, "rsa-next", "rsa2048")
    combined = tmp_path / "next-rsa.pem"
    combined.write_bytes(nxt.leaf.key_pem + nxt.fullchain.read_bytes())
    combined.chmod(0o600)
    with postfix(rsa, ecdsa) as pf:
        (ecdsa_file,) = pf.more_chain_files
        owner = records.owner_name(HOST, 25)
        zone = tmp_path / "example.test.zone"
        zone.write_text(ZONE_FILE + "".join(f"{owner} 2 IN TLSA {rec(c)}\n" for c in (rsa, ecdsa)))
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"""\
state_dir: {tmp_path / "state"}
safety_margin: 0
providers:
  local: {{type: zonefile, path: {zone}}}
services:
  - name: mail
    zone: example.test.
    provider: local
    hosts: [{HOST}]
    ttl: 2
    records: ["3 1 1"]
    observe: provider
    certificates:
      - name: rsa
        deployed: {{combined: {pf.chain_file}}}
        next: {{combined: {combined}}}
        reload: [postfix, -c, {pf.dir}, reload]
        verify: {{starttls: smtp, host: 127.0.0.1, port: {pf.port}, timeout: 5}}
      - name: ecdsa
        deployed: {{combined: {ecdsa_file}}}
""")
        proc = run_cli("-c", cfg, "apply", "--wait", timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        got = {
            kt: fetch_chain("127.0.0.1", pf.port, "smtp", 10, HOST, key_type=kt).der[0]
            for kt in keytypes.KEY_TYPES
        }
    assert got == {"rsa": mat(nxt).chain_der[0], "ecdsa": mat(ecdsa).chain_der[0]}
    lines = [ln for ln in zone.read_text().splitlines() if not ln.lstrip().startswith(";")]
    published = {ln.split(" TLSA ")[1] for ln in lines if " TLSA " in ln}
    assert published == {rec(nxt), rec(ecdsa)}  # the old RSA record retired, ECDSA kept
