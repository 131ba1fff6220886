# ruff: noqa: F811
"""The real-server fixtures work: pebble + certbot (with the real hooks/certbot-deploy) and a
private Postfix whose served certificate changes only on reload."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.acme_servers import (
    HOOKS,
    Certbot,
    Pebble,
    Postfix,
    pebble,  # noqa: F401  (the module-scoped pebble fixture)
    postfix_running,
)
from tests.support.fakes import FakeTlsarotate
from tests.support.tls_servers import openssl_dane
from tlsarotate import certfiles, material, nextkey, pki

pytestmark = pytest.mark.servers


@pytest.fixture
def certbot(pebble: Pebble, tmp_path: Path) -> Certbot:
    return Certbot(pebble, tmp_path / "certbot")


def _fake_on_path(tmp_path: Path, certbot: Certbot, rc: int) -> FakeTlsarotate:
    """The fake tlsarotate first on certbot's PATH: the real deploy hook calls it."""
    fake = FakeTlsarotate.install(tmp_path / "fakebin", tmp_path / "calls.jsonl")
    certbot.env.update(
        PATH=f"{fake.bindir}:{os.environ['PATH']}",
        TLSAROTATE_CONFIG=str(tmp_path / "tlsarotate.yaml"),
        **fake.variables(rc),
    )
    return fake


def _spki(lineage: Path) -> str:
    return certfiles.load_lineage(lineage).spki_sha256


@pytest.mark.slow
def test_certbot_deploy_hook_on_issue_and_renewals(certbot: Certbot, tmp_path: Path) -> None:
    fake = _fake_on_path(tmp_path, certbot, rc=2)  # "still waiting" must not fail certbot
    lineage = certbot.issue(
        ["mx.example.test", "mx2.example.test"], deploy_hook=HOOKS / "certbot-deploy"
    )
    assert (lineage / "fullchain.pem").is_symlink()  # live/ points into archive/
    first = _spki(lineage)
    calls = fake.calls()
    assert len(calls) == 1
    assert calls[0]["argv"] == [
        "-c",
        str(tmp_path / "tlsarotate.yaml"),
        "apply",
        "--lineage",
        str(lineage),
        "--lock-timeout",
        "60",
    ]
    env = calls[0]["env"]
    assert isinstance(env, dict)
    assert env["RENEWED_LINEAGE"] == str(lineage)
    assert env["RENEWED_DOMAINS"] == "mx.example.test mx2.example.test"
    # stored as renew_hook in renewal/NAME.conf, so later renewals run it too
    assert f"renew_hook = {HOOKS / 'certbot-deploy'}" in certbot.renewal_conf("mx.example.test")

    # renewals re-run the stored hook; --no-reuse-key makes a new key
    r = certbot.renew(reuse_key=False)
    assert "reported error" not in r.stderr
    # a good renewal shows no warning: the hook wrote nothing on stderr (certbot would log
    # "Hook 'deploy-hook' ran with error output" at WARNING)
    assert "error output" not in r.stderr + r.stdout, r.stderr
    assert "tlsarotate-hook[certbot]" in r.stdout + r.stderr  # its line was still shown
    second = _spki(lineage)
    assert second != first
    assert len(fake.calls()) == 2

    # --reuse-key keeps the SPKI and is sticky in renewal/NAME.conf
    certbot.renew(reuse_key=True)
    assert _spki(lineage) == second
    assert "reuse_key = True" in certbot.renewal_conf("mx.example.test")
    certbot.renew()  # no flag: still reuses
    assert _spki(lineage) == second
    certbot.renew(reuse_key=False)  # only --no-reuse-key makes a new key again
    assert _spki(lineage) != second
    assert "reuse_key = False" in certbot.renewal_conf("mx.example.test")
    calls = fake.calls()
    assert len(calls) == 5
    assert all(c["argv"][-4:-2] == ["--lineage", str(lineage)] for c in calls)  # type: ignore[index]


def test_failing_apply_is_reported_but_does_not_undo_the_renewal(
    certbot: Certbot, tmp_path: Path
) -> None:
    fake = _fake_on_path(tmp_path, certbot, rc=1)
    lineage = certbot.issue(["fail.example.test"], deploy_hook=HOOKS / "certbot-deploy")
    before = certfiles.load_lineage(lineage).fingerprint
    r = certbot.renew()
    # certbot keeps the new certificate, exits 0 and reports the hook's failure
    assert r.returncode == 0
    assert "Hook 'deploy-hook' reported error code 1" in r.stderr
    assert "tlsarotate-hook[certbot]" in r.stderr and "rc=1 error" in r.stderr
    assert certfiles.load_lineage(lineage).fingerprint != before
    assert len(fake.calls()) == 2


@pytest.mark.slow
def test_certbot_csr_with_keep_ahead_key(certbot: Certbot, tmp_path: Path) -> None:
    """certonly --csr: the certificate carries the pre-published next key; no lineage, no
    renewal config, no deploy hook; existing output files are refused."""
    key = tmp_path / "next.key"
    m = nextkey.ensure(key, "ecdsa-p256")
    csr = tmp_path / "next.csr"
    csr.write_bytes(nextkey.csr_for(key, ["mx.example.test"]))
    cert, full, chain = certbot.issue_csr(csr, ["mx.example.test"], tmp_path / "out")
    assert certfiles.load(cert).spki == m.spki
    assert certfiles.load_pair(full, key).spki == m.spki  # fullchain + next key fit together
    assert not (certbot.config_dir / "live").exists()
    assert not (certbot.config_dir / "renewal").exists()
    again = certbot.run(
        "certonly",
        *certbot._acme(),
        "--csr",
        str(csr),
        "-d",
        "mx.example.test",
        "--cert-path",
        str(cert),
        "--fullchain-path",
        str(full),
        "--chain-path",
        str(chain),
        check=False,
    )
    assert again.returncode != 0 and "File exists" in again.stderr
    # the documented openssl recipe makes an equivalent CSR from the same key
    csr2 = tmp_path / "openssl.csr"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            str(key),
            "-subj",
            "/CN=mx.example.test",
            "-addext",
            "subjectAltName=DNS:mx.example.test",
            "-out",
            str(csr2),
        ],
        check=True,
        capture_output=True,
    )
    cert2, _, _ = certbot.issue_csr(csr2, ["mx.example.test"], tmp_path / "out2")
    assert certfiles.load(cert2).spki == m.spki


# -- Postfix ---------------------------------------------------------------------------------


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def postfix(ca: pki.Issued) -> Iterator[Postfix]:
    """One private Postfix for the Postfix-only tests (start ~2.5 s, stop ~1.2 s)."""
    first = pki.make_leaf(ca, ["mx.example.test"])
    with postfix_running(first.key_pem, pki.fullchain_pem(first, ca)) as pf:
        yield pf


def _serve(pf: Postfix, ca: pki.Issued, leaf: pki.Issued) -> None:
    """Put ``leaf`` into service (each test starts from a known certificate)."""
    pf.install_chain(leaf.key_pem, pki.fullchain_pem(leaf, ca))
    pf.reload()
    assert pf.served() == _der(leaf.cert)


def test_postfix_reload_serves_new_certificate(postfix: Postfix, ca: pki.Issued) -> None:
    a = pki.make_leaf(ca, ["mx.example.test"])
    b = pki.make_leaf(ca, ["mx.example.test"], kind="rsa2048")
    _serve(postfix, ca, a)
    postfix.install_chain(b.key_pem, pki.fullchain_pem(b, ca))
    # the idle smtpd process still holds the old certificate...
    assert postfix.served() == _der(a.cert)
    postfix.reload()
    # ...the next connection after a reload gets the new one
    assert postfix.served() == _der(b.cert)
    assert (postfix.chain_file.stat().st_mode & 0o777) == 0o600


def test_postfix_mismatched_key_drops_starttls(postfix: Postfix, ca: pki.Issued) -> None:
    a = pki.make_leaf(ca, ["mx.example.test"])
    b = pki.make_leaf(ca, ["mx.example.test"])
    _serve(postfix, ca, a)
    postfix.install_chain(a.key_pem, pki.fullchain_pem(b, ca))  # key of a, certificate of b
    postfix.reload()  # reload "succeeds"...
    assert postfix.served() is None  # ...but TLS is gone: the swap must verify after reload
    mb = material.parse(b.cert_pem, "b")
    r = openssl_dane("127.0.0.1", postfix.port, "mx.example.test", [f"3 1 1 {mb.spki_sha256}"])
    assert not r.ok
    assert "disabling TLS support" in postfix.log.read_text()
    _serve(postfix, ca, b)  # a matching pair brings STARTTLS back


def test_openssl_dane_oracle_against_postfix(postfix: Postfix, ca: pki.Issued) -> None:
    a = pki.make_leaf(ca, ["mx.example.test"])
    b = pki.make_leaf(ca, ["mx.example.test"])
    ma = material.parse(a.cert_pem, "a")
    mb = material.parse(b.cert_pem, "b")
    _serve(postfix, ca, a)
    ok = openssl_dane("127.0.0.1", postfix.port, "mx.example.test", [f"3 1 1 {ma.spki_sha256}"])
    assert ok.ok and ok.rc == 0 and "Verification: OK" in ok.output
    bad = openssl_dane("127.0.0.1", postfix.port, "mx.example.test", [f"3 1 1 {mb.spki_sha256}"])
    assert not bad.ok and bad.rc != 0
    assert "no matching DANE TLSA records" in bad.output
    both = openssl_dane(
        "127.0.0.1",
        postfix.port,
        "mx.example.test",
        [f"3 1 1 {mb.spki_sha256}", f"3 1 1 {ma.spki_sha256}"],
    )
    assert both.ok


def test_certbot_lineage_served_by_postfix(certbot: Certbot) -> None:
    """The fixtures compose: a pebble-issued certificate in Postfix, verified by openssl."""
    lineage = certbot.issue(["mx.example.test"])
    key = (lineage / "privkey.pem").read_bytes()
    full = (lineage / "fullchain.pem").read_bytes()
    m = certfiles.load_lineage(lineage)
    pf: Postfix
    with postfix_running(key, full) as pf:
        assert pf.served() == m.chain_der[0]
        r = openssl_dane("127.0.0.1", pf.port, "mx.example.test", [f"3 1 1 {m.spki_sha256}"])
        assert r.ok, r.output
