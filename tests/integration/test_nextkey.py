"""Keep-ahead next keys: generation, permissions, rotation, CSRs that a CA accepts."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.helpers import ROOT, cli_env
from tlsarotate import certfiles, nextkey, pki, records
from tlsarotate.errors import MaterialError


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("kind", ["ecdsa-p256", "rsa2048", "ed25519"])
def test_ensure_generates_0600_pkcs8_and_returns_public_half(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "keys" / "next.key"
    m = nextkey.ensure(p, kind)
    assert _mode(p) == 0o600
    data = p.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    key = serialization.load_pem_private_key(data, None)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert m.spki == spki and m.kind == "private key"
    assert b"PRIVATE" not in repr(m).encode()
    # only the key file is left behind (no temp files)
    assert sorted(x.name for x in p.parent.iterdir()) == ["next.key"]
    assert _mode(p.parent) == 0o700


def test_ensure_is_stable_and_does_not_regenerate(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    a = nextkey.ensure(p, "ecdsa-p256")
    before = p.read_bytes()
    b = nextkey.ensure(p, "ecdsa-p256")
    assert a.spki == b.spki and p.read_bytes() == before


def test_ensure_concurrent_callers_agree(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    out: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        try:
            out.append(nextkey.ensure(p, "ecdsa-p256").spki)
        except BaseException as e:  # a thread's exception would otherwise vanish
            errors.append(e)

    ts = [threading.Thread(target=go) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert len(out) == 4  # every caller got a key
    assert len(set(out)) == 1
    assert certfiles.load(p).spki == out[0]


def test_ensure_refuses_world_readable_or_wrong_file(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    nextkey.ensure(p, "ecdsa-p256")
    p.chmod(0o644)
    with pytest.raises(MaterialError, match=r"readable by others \(mode 644\); chmod 600"):
        nextkey.ensure(p, "ecdsa-p256")
    ca = pki.make_ca()
    cert = tmp_path / "cert.pem"
    cert.write_bytes(pki.make_leaf(ca, ["mx.example.test"]).cert_pem)
    with pytest.raises(MaterialError, match="next_key must be a private key, found a certificate"):
        nextkey.ensure(cert, "ecdsa-p256")
    with pytest.raises(MaterialError, match="unknown next key type 'dsa'"):
        nextkey.ensure(tmp_path / "other.key", "dsa")


def test_rotate_moves_consumed_key_aside_and_makes_a_new_one(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    first = nextkey.ensure(p, "ecdsa-p256")
    old_bytes = p.read_bytes()
    second = nextkey.rotate(p, "ecdsa-p256")
    used = tmp_path / "next.key.used"
    assert used.read_bytes() == old_bytes and _mode(used) == 0o600
    assert second.spki != first.spki
    assert certfiles.load(p).spki == second.spki and _mode(p) == 0o600


def test_rotate_with_consumed_spki_is_idempotent(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    first = nextkey.ensure(p, "ecdsa-p256")
    second = nextkey.rotate(p, "ecdsa-p256", consumed_spki=first.spki_sha256)
    # a repeated call (e.g. after a crash) must not throw away the fresh, unconsumed key
    again = nextkey.rotate(p, "ecdsa-p256", consumed_spki=first.spki_sha256)
    assert again.spki == second.spki
    assert certfiles.load(tmp_path / "next.key.used").spki == first.spki


def test_rotate_without_key_just_generates(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    m = nextkey.rotate(p, "ed25519")
    assert certfiles.load(p).spki == m.spki
    assert not (tmp_path / "next.key.used").exists()


@pytest.mark.parametrize("kind", ["ecdsa-p384", "rsa2048", "ed25519"])
def test_csr_for_is_signed_by_the_next_key(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "next.key"
    m = nextkey.ensure(p, kind)
    pem = nextkey.csr_for(p, ["mx.example.test", "mx2.example.test"])
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx.example.test", "mx2.example.test"]
    # the CSR's key is the published key: its 3 1 1 record equals the key's
    f = tmp_path / "next.csr"
    f.write_bytes(pem)
    prm = records.parse_params("3 1 1")
    assert records.to_text(records.build(certfiles.load(f), prm)) == records.to_text(
        records.build(m, prm)
    )
    assert b"PRIVATE" not in pem


def test_csr_openssl_verifies(tmp_path: Path) -> None:
    p = tmp_path / "next.key"
    nextkey.ensure(p, "ecdsa-p256")
    f = tmp_path / "next.csr"
    f.write_bytes(nextkey.csr_for(p, ["mx.example.test"]))
    r = subprocess.run(
        ["openssl", "req", "-in", str(f), "-noout", "-verify"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "verify OK" in (r.stdout + r.stderr)


def test_csr_errors(tmp_path: Path) -> None:
    with pytest.raises(MaterialError, match="not found"):
        nextkey.csr_for(tmp_path / "missing.key", ["a.example.test"])
    p = tmp_path / "next.key"
    nextkey.ensure(p, "ecdsa-p256")
    with pytest.raises(MaterialError, match="at least one DNS name"):
        nextkey.csr_for(p, [])


def test_key_never_printed(tmp_path: Path) -> None:
    """Generating through a subprocess prints nothing at all."""
    p = tmp_path / "k.pem"
    code = (
        "import sys; from pathlib import Path; from tlsarotate import nextkey; "
        "nextkey.ensure(Path(sys.argv[1]), 'ecdsa-p256')"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(p)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
