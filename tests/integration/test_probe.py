"""probe: verdicts on real served chains, cross-checked against openssl s_client as the
independent DANE oracle; the incident (renewed certificate, stale TLSA) through the CLI."""

# ruff: noqa: F811
from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization

from tests.support.acme_servers import wait_port
from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.servers import free_port, stop_process
from tests.support.tls_servers import (  # noqa: F401
    LOOPBACKS,
    Chain,
    ServerPool,
    chains,
    need_openssl,
    openssl_dane,
    servers,
)
from tlsarotate import material, pki, records
from tlsarotate.handshake import fetch_chain
from tlsarotate.verdict import diagnose

HOST = "mx.example.test"


def rec(chain: Chain, params: str, ta_depth: int = 1) -> str:
    m = material.parse(chain.fullchain.read_bytes(), chain.fullchain)
    return records.to_text(records.build(m, records.parse_params(params), ta_depth))


def rec_of(issued: pki.Issued, params: str) -> str:
    """A usage-2 style record over a CA certificate itself."""
    p = records.parse_params(params)
    data = (
        issued.cert.public_bytes(serialization.Encoding.DER)
        if p.selector == 0
        else issued.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return records.to_text(records.make(p, data))


@dataclass
class Case:
    name: str
    serve: str  # which chain the server sends
    rrdata: Callable[[dict[str, Chain], dict[str, pki.Issued]], list[str]]
    expect_ok: bool
    host: str = HOST


CASES = [
    Case("3 1 1 served", "cur", lambda c, a: [rec(c["cur"], "3 1 1")], True),
    Case("3 0 1 served", "cur", lambda c, a: [rec(c["cur"], "3 0 1")], True),
    Case("3 1 2 served", "cur", lambda c, a: [rec(c["cur"], "3 1 2")], True),
    Case("3 0 2 served", "cur", lambda c, a: [rec(c["cur"], "3 0 2")], True),
    Case("3 1 0 served", "cur", lambda c, a: [rec(c["cur"], "3 1 0")], True),
    Case("3 1 1 other key", "cur", lambda c, a: [rec(c["other"], "3 1 1")], False),
    Case("3 1 2 other key", "cur", lambda c, a: [rec(c["other"], "3 1 2")], False),
    Case("3 0 1 same key other cert", "cur", lambda c, a: [rec(c["samekey"], "3 0 1")], False),
    Case(
        "3 1 1 rollover old+new",
        "cur",
        lambda c, a: [rec(c["other"], "3 1 1"), rec(c["cur"], "3 1 1")],
        True,
    ),
    Case("3 1 1 any name", "cur", lambda c, a: [rec(c["cur"], "3 1 1")], True, "other.example"),
    Case("2 0 1 CA sent", "cur", lambda c, a: [rec_of(a["ca"], "2 0 1")], True),
    Case("2 1 1 CA sent", "cur", lambda c, a: [rec_of(a["ca"], "2 1 1")], True),
    Case("2 0 2 CA sent", "cur", lambda c, a: [rec_of(a["ca"], "2 0 2")], True),
    Case("2 0 1 other CA", "cur", lambda c, a: [rec_of(a["ca2"], "2 0 1")], False),
    Case(
        "2 0 1 wrong name",
        "cur",
        lambda c, a: [rec_of(a["ca"], "2 0 1")],
        False,
        "other.example.test",
    ),
    Case("2 0 1 CA not sent", "leafonly", lambda c, a: [rec_of(a["ca"], "2 0 1")], False),
    Case("2 0 1 intermediate", "inter", lambda c, a: [rec_of(a["inter"], "2 0 1")], True),
    Case("2 0 1 root not sent", "inter", lambda c, a: [rec_of(a["ca"], "2 0 1")], False),
    Case("2 1 1 wildcard name", "wild", lambda c, a: [rec_of(a["ca"], "2 1 1")], True),
    # digest agility (RFC 7671 §9): the weaker digest is ignored when a stronger one exists
    Case(
        "agility: 3 1 2 stale hides a good 3 1 1",
        "cur",
        lambda c, a: [rec(c["other"], "3 1 2"), rec(c["cur"], "3 1 1")],
        False,
    ),
    Case(
        "agility: 3 1 2 good beside a stale 3 1 1",
        "cur",
        lambda c, a: [rec(c["cur"], "3 1 2"), rec(c["other"], "3 1 1")],
        True,
    ),
    Case(
        "agility: Full(0) is never hidden",
        "cur",
        lambda c, a: [rec(c["cur"], "3 1 0"), rec(c["other"], "3 1 2")],
        True,
    ),
    Case(
        "agility is per selector",
        "cur",
        lambda c, a: [rec(c["other"], "3 1 2"), rec(c["cur"], "3 0 1")],
        True,
    ),
]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, Chain], dict[str, pki.Issued]]:
    from tests.support.tls_servers import make_chain

    d = tmp_path_factory.mktemp("chains")
    ca = pki.make_ca("Probe Test Root")
    ca2 = pki.make_ca("Some Other CA")
    inter = pki.make_ca("Probe Test Intermediate", issuer=ca)
    cur = make_chain(d, "cur", ca)
    chains_ = {
        "cur": cur,
        "other": make_chain(d, "other", ca),
        "samekey": make_chain(d, "samekey", ca, key=cur.leaf.key),
        "leafonly": make_chain(d, "leafonly", ca, send_ca=False),
        "inter": make_chain(d, "inter", inter),
        "wild": make_chain(d, "wild", ca, hosts=("*.example.test",)),
    }
    return chains_, {"ca": ca, "ca2": ca2, "inter": inter}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_equals_openssl(
    case: Case,
    world: tuple[dict[str, Chain], dict[str, pki.Issued]],
    servers: ServerPool,
) -> None:
    chains_, cas = world
    rrdata = case.rrdata(chains_, cas)
    for addr in LOOPBACKS:
        srv = servers.smtpd(chains_[case.serve], addr)
        served = fetch_chain(addr, srv.port, "smtp", 10, case.host)
        assert served.ok, served.error
        verdict = diagnose(served.der, [records.from_text(r) for r in rrdata], case.host, smtp=True)
        oracle = openssl_dane(addr, srv.port, case.host, rrdata)
        assert verdict.ok == oracle.ok, (
            f"probe says {verdict.ok} ({verdict.summary}); openssl says {oracle.ok}:\n"
            f"{oracle.output}"
        )
        assert verdict.ok == case.expect_ok, verdict.summary
        if not oracle.ok:
            assert "no matching DANE TLSA records" in oracle.output or (
                "hostname mismatch" in oracle.output
                or "unable to get local issuer" in oracle.output
            ), oracle.output


def test_documented_difference_openssl_default_ee_namecheck(
    world: tuple[dict[str, Chain], dict[str, pki.Issued]], servers: ServerPool
) -> None:
    """OpenSSL's DEFAULT checks names even for DANE-EE(3); RFC 7672 §3.1.1 says not to (Postfix
    sets DANE_FLAG_NO_DANE_EE_NAMECHECKS). tlsarotate follows the RFC: a 3 1 1 match passes
    whatever names the certificate carries."""
    chains_, _ = world
    srv = servers.smtpd(chains_["cur"])
    rr = [rec(chains_["cur"], "3 1 1")]
    served = fetch_chain("127.0.0.1", srv.port, "smtp", 10, "other.example")
    assert diagnose(served.der, [records.from_text(r) for r in rr], "other.example", smtp=True).ok
    assert openssl_dane("127.0.0.1", srv.port, "other.example", rr).ok
    default = openssl_dane("127.0.0.1", srv.port, "other.example", rr, ee_namechecks=True)
    assert not default.ok and "hostname mismatch" in default.output


def test_reasons_in_words(world: tuple[dict[str, Chain], dict[str, pki.Issued]]) -> None:
    chains_, cas = world
    cur, other = chains_["cur"], chains_["other"]
    served = material.parse(cur.fullchain.read_bytes(), "x").chain_der
    spki = hashlib.sha256(material.parse(cur.fullchain.read_bytes(), "x").spki).hexdigest()
    stale = rec(other, "3 1 1")
    v = diagnose(served, [records.from_text(stale)], HOST, smtp=True)
    assert not v.ok
    assert v.summary == (
        f"no record matches: the leaf's SPKI sha256 is {spki[:12]}…; the published "
        f"3 1 1 {stale.split()[3][:12]}… belongs to another public key"
    )
    good = diagnose(served, [records.from_text(rec(cur, "3 1 1"))], HOST, smtp=True)
    assert good.ok and good.summary == f"DANE ok: 3 1 1 {spki[:12]}… matches the leaf's public key"

    # agility: the report names the weaker record that would have matched
    v = diagnose(
        served,
        [records.from_text(rec(other, "3 1 2")), records.from_text(rec(cur, "3 1 1"))],
        HOST,
        smtp=True,
    )
    assert not v.ok
    assert f"3 1 1 {spki[:12]}… would match, but clients ignore it" in v.summary
    assert "RFC 7671 §9" in v.summary

    # a stale 3 0 1 beside a good 3 1 1 passes, with a warning that names the cause
    v = diagnose(
        served,
        [records.from_text(rec(cur, "3 1 1")), records.from_text(rec(chains_["samekey"], "3 0 1"))],
        HOST,
        smtp=True,
    )
    assert v.ok and len(v.warnings) == 1
    assert "usage 3 selector 0" in v.warnings[0] and "same key" in v.warnings[0]

    # usage 1 on SMTP is unusable, even when it matches
    v = diagnose(served, [records.from_text(rec(cur, "1 1 1"))], HOST, smtp=True)
    assert not v.ok and "RFC 7672" in v.summary and "not used for SMTP" in v.summary
    assert v.dane == "none"  # no usable record: senders deliver without DANE (§2.2)
    # ... off SMTP it is usable, but only with PKIX validation: the throwaway CA is in no
    # trust store, so it fails (it used to pass unvalidated: "PKIX not checked", yet "ok")
    v = diagnose(served, [records.from_text(rec(cur, "1 1 1"))], HOST, smtp=False)
    assert not v.ok and v.dane == "fails" and "PKIX validation against" in v.summary

    # usage 2: the name check is explained
    v = diagnose(
        served, [records.from_text(rec_of(cas["ca"], "2 0 1"))], "mx.other.test", smtp=True
    )
    assert not v.ok and "do not include mx.other.test" in v.summary
    assert diagnose(served, [], HOST, smtp=True).summary.startswith("no TLSA records")


# ---------------------------------------------------------------------------------------------
# the CLI


def _tlsa_file(tmp_path: Path, lines: list[str], name: str = "tlsa.txt") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_incident_renewed_cert_stale_tlsa(
    tmp_path: Path, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    """The server presents a valid renewed certificate; DNS holds only the OLD 3 1 1."""
    old = chains("old", hosts=("localhost",))
    new = chains("renewed", hosts=("localhost",))
    srv = servers.smtpd(new)
    stale = rec(old, "3 1 1")
    f = _tlsa_file(tmp_path, [f"_{srv.port}._tcp.localhost. 300 IN TLSA {stale}"])
    proc = run_cli(
        "probe",
        "localhost",
        "--port",
        srv.port,
        "--starttls",
        "smtp",
        "--tlsa-from",
        f,
        "--timeout",
        "10",
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    new_spki = hashlib.sha256(material.parse(new.fullchain.read_bytes(), "x").spki).hexdigest()
    assert (
        f"FAIL: no record matches: the leaf's SPKI sha256 is {new_spki[:12]}…; the published "
        f"3 1 1 {stale.split()[3][:12]}… belongs to another public key"
    ) in proc.stdout
    assert "result: 1 of 1 address(es) fail DANE" in proc.stdout
    # the oracle agrees
    assert not openssl_dane("127.0.0.1", srv.port, "localhost", [stale]).ok

    # publishing the new record beside the old one fixes it
    f2 = _tlsa_file(tmp_path, [stale, rec(new, "3 1 1")], "tlsa2.txt")
    proc = run_cli(
        "probe", "localhost", "--port", srv.port, "--starttls", "smtp", "--tlsa-from", f2
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "result: all 1 address(es) pass DANE" in proc.stdout


@pytest.mark.parametrize("addr", LOOPBACKS)
def test_cli_json_and_save_chain(
    addr: str, tmp_path: Path, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    ch = chains("j")
    srv = servers.smtpd(ch, addr)
    good = rec(ch, "3 1 1")
    f = _tlsa_file(tmp_path, ["; comment", good, "", "# another"])
    outdir = tmp_path / "saved"
    outdir.mkdir()
    proc = run_cli(
        "probe",
        addr,
        "--port",
        srv.port,
        "--starttls",
        "smtp",
        "--tlsa-from",
        f,
        "--save-chain",
        outdir,
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    js = json.loads(proc.stdout)
    assert js["ok"] is True and js["exit"] == 0 and js["starttls"] == "smtp"
    assert js["tlsa"]["records"] == [good] and js["tlsa"]["source"] == f"file:{f}"
    (a,) = js["addresses"]
    assert a["address"] == addr and a["ok"] is True and a["error"] is None
    assert [c["depth"] for c in a["chain"]] == [0, 1]
    assert a["chain"][0]["spki_sha256"] == good.split()[3]
    assert a["chain"][0]["names"] == [HOST]
    (v,) = a["verdicts"]
    assert v["ok"] is True and v["records"][0]["authenticates"] is True
    saved = Path(a["saved_chain"])
    assert saved.parent == outdir
    assert saved.read_bytes() == ch.fullchain.read_bytes()


def test_cli_text_lists_the_chain(
    tmp_path: Path, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    ch = chains("t")
    srv = servers.smtpd(ch, "::1")
    f = _tlsa_file(tmp_path, [rec(ch, "3 1 1"), rec(chains("x"), "3 0 1")])
    proc = run_cli("probe", "::1", "--port", srv.port, "--starttls", "smtp", "--tlsa-from", f)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"[::1]:{srv.port} (smtp STARTTLS): TLSv1." in out
    assert "0 subject CN=mx.example.test" in out and "1 subject CN=tlsarotate throwaway CA" in out
    assert "EC P-256, SPKI sha256 " in out
    assert "MATCH" in out and "NO MATCH" in out
    assert "warning: no usage 3 selector 0 record matches" in out


def test_cli_unreachable_is_exit_1(tmp_path: Path, chains: Callable[..., Chain]) -> None:
    f = _tlsa_file(tmp_path, [rec(chains("u"), "3 1 1")])
    proc = run_cli(
        "probe",
        "127.0.0.1",
        "--port",
        free_port(),
        "--starttls",
        "smtp",
        "--tlsa-from",
        f,
        "--timeout",
        "3",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR connection refused" in proc.stdout


def test_cli_bad_input(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("probe", "localhost", "--tlsa-from", tmp_path / "missing.txt"),
        "missing.txt",
        "not found",
    )
    bad = _tlsa_file(tmp_path, ["3 1 1 abcd"])
    assert_one_line_error(run_cli("probe", "localhost", "--tlsa-from", bad), f"{bad}:1")
    assert_one_line_error(run_cli("probe", "127.0.0.1"), "give the host name")
    assert_one_line_error(
        run_cli("probe", "mx.example.test", "--resolver", "not-an-ip"), "--resolver"
    )
    empty = _tlsa_file(tmp_path, ["; nothing"], "empty.txt")
    assert_one_line_error(run_cli("probe", "localhost", "--tlsa-from", empty), "no TLSA records")


def _malformed_san_chain(tmp_path: Path, ca: pki.Issued) -> Chain:
    """A leaf whose subjectAltName is not a GeneralNames (an OCTET STRING): OpenSSL serves it
    and a DANE-EE client accepts it by its key, but cryptography cannot parse its extensions."""
    import datetime as dt

    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID

    key = pki.new_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3))
        .add_extension(
            x509.UnrecognizedExtension(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x04\x03\x01\x02\x03"
            ),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    leaf = pki.Issued(key, cert)
    full, keyf = tmp_path / "badsan.fullchain.pem", tmp_path / "badsan.key"
    full.write_bytes(pki.fullchain_pem(leaf, ca))
    keyf.write_bytes(leaf.key_pem)
    keyf.chmod(0o600)
    return Chain(leaf, (ca,), full, keyf)


@contextlib.contextmanager
def _openssl_server(ch: Chain) -> Iterator[int]:
    """``openssl s_server`` (implicit TLS) serving ``ch``: it serves certificates Python's ssl
    refuses to load."""
    leaf, cas = ch.fullchain.with_suffix(".leaf.pem"), ch.fullchain.with_suffix(".cas.pem")
    leaf.write_bytes(ch.leaf.cert_pem)
    cas.write_bytes(b"".join(c.cert_pem for c in ch.cas))
    port = free_port()
    cmd = [need_openssl(), "s_server", "-accept", f"127.0.0.1:{port}", "-quiet"]
    cmd += ["-cert", str(leaf), "-cert_chain", str(cas), "-key", str(ch.key)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, None, "openssl s_server")
        yield port
    finally:
        stop_process(proc)


def test_a_leaf_with_an_unparseable_extension_is_a_verdict_not_a_traceback(
    tmp_path: Path, ca: pki.Issued
) -> None:
    """A remote server's certificate is input too: a malformed subjectAltName made probe
    crash with a ValueError traceback (describing the chain, and the usage-2 name check).
    Now: 3 1 1 authenticates (the key matches; DANE-EE ignores names), 2 0 1 over the served
    CA fails, saying why -- as openssl decides both."""
    ch = _malformed_san_chain(tmp_path, ca)
    ee, ta = rec(ch, "3 1 1"), rec(ch, "2 0 1")
    with _openssl_server(ch) as port:
        for record, verdict, code in ((ee, "authenticated", 0), (ta, "fails", 2)):
            oracle = openssl_dane("127.0.0.1", port, HOST, [record], starttls=None)
            assert oracle.ok is (verdict == "authenticated"), oracle.output
            f = _tlsa_file(tmp_path, [record])
            base: list[str | int | Path] = [
                "probe",
                HOST,
                "--address",
                "127.0.0.1",
                "--port",
                port,
                "--tlsa-from",
                f,
            ]
            text = run_cli(*base, "--starttls", "none")
            assert "Traceback" not in text.stderr, text.stderr
            assert text.returncode == code, text.stdout + text.stderr
            js = run_cli(*base, "--starttls", "none", "--output", "json")
            assert "Traceback" not in js.stderr, js.stderr
            doc = json.loads(js.stdout)
            assert doc["dane"] == verdict, doc
            if verdict == "fails":
                assert "cannot be parsed" in text.stdout, text.stdout
