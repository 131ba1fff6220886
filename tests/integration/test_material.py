"""Every bad certificate/key input gives ONE clear line naming the file; good ones load.

Command-line cases run ``tlsarotate records`` as a real process (assert_one_line_error);
load_pair / load_combined / load_lineage are also called directly, since the config uses them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line, assert_one_line_error, cli_env, run_cli
from tlsarotate import certfiles, material, pki, records
from tlsarotate.errors import MaterialError

Pair = Callable[..., tuple[Path, Path, pki.Issued]]


def ossl(*args: str | Path) -> None:
    exe = shutil.which("openssl")
    assert exe is not None, "openssl must be installed"
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()


def one_line(exc: pytest.ExceptionInfo[MaterialError], *needles: str) -> str:
    return assert_one_line(exc.value, *needles)


def records_fails(path: Path | str, *needles: str, params: str | None = None) -> str:
    args = ["records", *(["--params", params] if params else []), str(path)]
    proc = run_cli(*args)
    assert_one_line_error(proc, str(path), *needles)
    return proc.stderr


# --- unreadable, missing, wrong kind of file --------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    records_fails(tmp_path / "nope.pem", "not found")


def test_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "cert.pem"
    link.symlink_to("../gone/cert7.pem")
    records_fails(link, "broken symbolic link", "../gone/cert7.pem")


def test_unreadable_file(tmp_path: Path, write_pair: Pair) -> None:
    """chmod 000. Root reads any file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so as
    root the CLI runs under ``setpriv`` with those two capabilities dropped: still uid 0 (the
    code and the temp dir stay reachable), but the mode bits now apply, as for any user."""
    cert, _, _ = write_pair()
    cert.chmod(0)
    argv = [sys.executable, "-m", "tlsarotate", "records", str(cert)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's DAC override"
        caps = "-dac_override,-dac_read_search"
        argv = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=60)
    assert_one_line_error(proc, str(cert), "permission denied")


def test_plain_directory(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    d.mkdir()
    records_fails(d, "is a directory but not a certbot lineage")


def test_empty_and_blank_files(tmp_path: Path) -> None:
    for name, data in (("empty.pem", b""), ("blank.pem", b"\n \n\t\n")):
        f = tmp_path / name
        f.write_bytes(data)
        records_fails(f, "empty file")


def test_garbage(tmp_path: Path) -> None:
    for name, data in (
        ("random.bin", os.urandom(600)),
        ("text.pem", b"hello, this is not a certificate\n"),
        ("der-seq.der", b"\x30\x82\x01\x00" + b"\x00" * 256),
        ("half.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n"),
    ):
        f = tmp_path / name
        f.write_bytes(data)
        records_fails(f, "not a PEM or DER certificate, key or CSR")


def test_pem_with_corrupt_base64(tmp_path: Path, write_pair: Pair) -> None:
    cert, _, _ = write_pair()
    lines = cert.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3][:10] + b"*&%$" + lines[3][14:]
    bad = tmp_path / "bad-b64.pem"
    bad.write_bytes(b"".join(lines))
    records_fails(bad, "corrupt PEM block 'CERTIFICATE'")


def test_pem_with_garbage_der(tmp_path: Path) -> None:
    body = base64.encodebytes(os.urandom(300))
    for label, needle in (
        (b"CERTIFICATE", "corrupt certificate (PEM block 1)"),
        (b"PRIVATE KEY", "unreadable private key"),
        (b"PUBLIC KEY", "unreadable public key"),
        (b"CERTIFICATE REQUEST", "unreadable certificate signing request"),
    ):
        f = tmp_path / f"{label.decode().replace(' ', '_')}.pem"
        f.write_bytes(
            b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"
        )
        err = records_fails(f, needle, params="3 1 1")
        assert body.decode().splitlines()[0] not in err


def test_unsupported_pem_blocks(tmp_path: Path) -> None:
    f = tmp_path / "params.pem"
    ossl("ecparam", "-name", "prime256v1", "-out", f)
    records_fails(f, "'EC PARAMETERS'", "expected a certificate, key or CSR")
    f = tmp_path / "crl.pem"
    f.write_bytes(b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n")
    records_fails(f, "unsupported PEM block 'X509 CRL'")


@pytest.mark.parametrize(
    "form",
    ["pkcs8-pem", "pkcs8-der", "traditional-rsa", "traditional-ec"],
)
def test_encrypted_private_key(tmp_path: Path, form: str) -> None:
    plain = tmp_path / "plain.key"
    alg = "RSA" if form == "traditional-rsa" else "EC"
    opt = "rsa_keygen_bits:2048" if alg == "RSA" else "ec_paramgen_curve:P-256"
    ossl("genpkey", "-algorithm", alg, "-pkeyopt", opt, "-out", plain)
    enc = tmp_path / f"enc-{form}.key"
    if form.startswith("pkcs8"):
        outform = "DER" if form.endswith("der") else "PEM"
        ossl("pkcs8", "-topk8", "-in", plain, "-v2", "aes-256-cbc", "-passout", "pass:s3cret",
             "-outform", outform, "-out", enc)  # fmt: skip
    else:
        ossl("pkey", "-in", plain, "-traditional", "-aes256", "-passout", "pass:s3cret",
             "-out", enc)  # fmt: skip
        assert b"Proc-Type: 4,ENCRYPTED" in enc.read_bytes()
    err = records_fails(enc, "the private key is encrypted", "unencrypted key")
    assert "s3cret" not in err
    with pytest.raises(material.EncryptedKeyError) as ei:  # a type, not a message to parse
        material.parse(enc.read_bytes(), enc)
    assert isinstance(ei.value, MaterialError) and str(ei.value) in err


# --- chains in the wrong order --------------------------------------------------------------


@pytest.fixture
def three(ca: pki.Issued) -> tuple[pki.Issued, pki.Issued, pki.Issued]:
    inter = pki.make_ca("Intermediate", issuer=ca)
    leaf = pki.make_leaf(inter, ["mx.example.test"])
    return leaf, inter, ca


def test_chain_reversed(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, inter, root = three
    f = tmp_path / "reversed.pem"
    f.write_bytes(root.cert_pem + inter.cert_pem + leaf.cert_pem)
    records_fails(f, "reverse order", "leaf first")
    f.write_bytes(inter.cert_pem + leaf.cert_pem)
    records_fails(f, "reverse order")


def test_chain_ca_first(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, inter, _ = three
    f = tmp_path / "ca-first.pem"
    other_ca = pki.make_ca("Unrelated CA")
    f.write_bytes(other_ca.cert_pem + leaf.cert_pem + inter.cert_pem)
    records_fails(f, "is a CA certificate, not the leaf", "CN=Unrelated CA")


def test_chain_unrelated_second(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, _, root = three
    f = tmp_path / "gap.pem"
    f.write_bytes(leaf.cert_pem + root.cert_pem)
    records_fails(f, "did not issue the first", "CN=mx.example.test")


def test_chain_in_order_and_ca_only(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, inter, root = three
    f = tmp_path / "ok.pem"
    f.write_bytes(leaf.cert_pem + inter.cert_pem + root.cert_pem)
    m = certfiles.load(f)
    assert m.kind == "chain" and len(m.chain) == 3
    f.write_bytes(inter.cert_pem + root.cert_pem)  # a CA chain, issuer after subject
    assert len(certfiles.load(f).chain) == 2


# --- certificate + key pairs, combined files, certbot lineages -----------------------------


def test_load_pair(tmp_path: Path, write_pair: Pair) -> None:
    cert, key, leaf = write_pair("a")
    m = certfiles.load_pair(cert, key)
    assert m.spki == certfiles.load(key).spki
    cert_b, key_b, _ = write_pair("b")
    with pytest.raises(MaterialError) as e:
        certfiles.load_pair(cert, key_b)
    one_line(e, str(key_b), "does not belong to the certificate", str(cert))
    with pytest.raises(MaterialError) as e:
        certfiles.load_pair(key, key)
    one_line(e, str(key), "expected a certificate, found a private key")
    with pytest.raises(MaterialError) as e:
        certfiles.load_pair(cert, cert_b)
    one_line(e, str(cert_b), "expected a private key, found a chain")
    with pytest.raises(MaterialError) as e:
        certfiles.load_pair(cert, tmp_path / "missing.key")
    one_line(e, str(tmp_path / "missing.key"), "private key not found")
    assert leaf.key_pem.decode().splitlines()[1] not in str(e.value)


@pytest.mark.parametrize("key_first", [True, False])
def test_load_combined_good(tmp_path: Path, three: tuple[pki.Issued, ...], key_first: bool) -> None:
    leaf, inter, root = three
    chain = pki.fullchain_pem(leaf, inter, root)
    f = tmp_path / "combined.pem"
    f.write_bytes(leaf.key_pem + chain if key_first else chain + leaf.key_pem)
    m = certfiles.load_combined(f)
    assert m.chain_der == certfiles.load(f).chain_der and len(m.chain) == 3


def test_load_combined_bad(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, inter, root = three
    chain = pki.fullchain_pem(leaf, inter, root)
    f = tmp_path / "combined.pem"
    cases = [
        (pki.key_pem(pki.new_key()) + chain, "does not belong to the leaf certificate"),
        (chain, "no private key found in the combined key+chain file"),
        (leaf.key_pem, "no certificate found in the combined key+chain file"),
        (inter.key_pem + inter.cert_pem + leaf.cert_pem, "reverse order"),
    ]
    for data, needle in cases:
        f.write_bytes(data)
        with pytest.raises(MaterialError) as e:
            certfiles.load_combined(f)
        one_line(e, str(f), needle)


def certbot_lineage(base: Path, name: str, fullchain: bytes, key: bytes) -> Path:
    """What certbot makes: live/NAME/*.pem -> ../../archive/NAME/*N.pem (relative)."""
    arch, live = base / "archive" / name, base / "live" / name
    arch.mkdir(parents=True)
    live.mkdir(parents=True)
    end = b"-----END CERTIFICATE-----\n"
    (arch / "cert2.pem").write_bytes(fullchain.split(end)[0] + end)
    (arch / "fullchain2.pem").write_bytes(fullchain)
    (arch / "privkey2.pem").write_bytes(key)
    for f in ("cert", "fullchain", "privkey"):
        (live / f"{f}.pem").symlink_to(f"../../archive/{name}/{f}2.pem")
    return live


def test_lineage_good(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, inter, _ = three
    live = certbot_lineage(tmp_path / "le", "mx", pki.fullchain_pem(leaf, inter), leaf.key_pem)
    m = certfiles.load_lineage(live)
    assert m.kind == "lineage" and m.source == str(live) and len(m.chain) == 2
    assert certfiles.load(live).chain_der == m.chain_der
    # records through the CLI: the same as for the archive's fullchain file
    a = run_cli("records", "--params", "3 1 1", "--params", "2 0 1", live)
    b = run_cli("records", "--params", "3 1 1", "--params", "2 0 1",
                tmp_path / "le" / "archive" / "mx" / "fullchain2.pem")  # fmt: skip
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout.splitlines()) == 2


def test_lineage_bad(tmp_path: Path, three: tuple[pki.Issued, ...]) -> None:
    leaf, inter, _ = three
    full = pki.fullchain_pem(leaf, inter)

    live = certbot_lineage(tmp_path / "a", "mx", full, leaf.key_pem)
    (live / "fullchain.pem").unlink()
    with pytest.raises(MaterialError) as e:
        certfiles.load_lineage(live)
    one_line(e, str(live), "not a certbot lineage (no fullchain.pem)")
    records_fails(live, "no fullchain.pem")

    live = certbot_lineage(tmp_path / "b", "mx", full, pki.key_pem(pki.new_key()))
    with pytest.raises(MaterialError) as e:
        certfiles.load_lineage(live)
    one_line(e, str(live / "privkey.pem"), "does not belong to the certificate")
    proc = run_cli("records", live)  # the lineage with a foreign key is refused
    assert_one_line_error(proc, str(live / "privkey.pem"), "does not belong")

    live = certbot_lineage(tmp_path / "c", "mx", full, leaf.key_pem)
    (live / "privkey.pem").unlink()
    with pytest.raises(MaterialError) as e:
        certfiles.load_lineage(live)
    one_line(e, str(live), "no privkey.pem")
    assert certfiles.load(live).chain_der == certfiles.load(live / "fullchain.pem").chain_der

    live = certbot_lineage(tmp_path / "d", "mx", full, leaf.key_pem)
    (tmp_path / "d" / "archive" / "mx" / "fullchain2.pem").unlink()
    with pytest.raises(MaterialError) as e:
        certfiles.load_lineage(live)
    one_line(e, str(live / "fullchain.pem"), "broken symbolic link", "fullchain2.pem")

    with pytest.raises(MaterialError) as e:
        certfiles.load_lineage(tmp_path / "nowhere")
    one_line(e, "certbot lineage directory not found")
    with pytest.raises(MaterialError) as e:
        certfiles.load_lineage(live / "cert.pem")
    one_line(e, "not a directory")

    live = certbot_lineage(tmp_path / "e", "mx", leaf.key_pem, leaf.key_pem)
    with pytest.raises(MaterialError) as e:
        certfiles.load(live)
    one_line(e, str(live / "fullchain.pem"), "expected a certificate, found a private key")
    (live / "privkey.pem").unlink()
    with pytest.raises(MaterialError) as e:
        certfiles.load(live)
    one_line(e, str(live / "fullchain.pem"), "expected a certificate chain, found a private key")


def test_records_for_key_is_not_an_error(tmp_path: Path, write_pair: Pair) -> None:
    """Guard for the lineage test above: printing a lone private key's records works."""
    _, key, leaf = write_pair()
    proc = run_cli("records", "--params", "3 1 1", key)
    assert proc.returncode == 0
    m = certfiles.load(key)
    assert proc.stdout.strip() == records.to_text(records.build(m, records.Params(3, 1, 1)))
    assert leaf.key_pem.decode().splitlines()[1] not in proc.stdout


# --- what a Material is ----------------------------------------------------------------------


def test_material_identity(tmp_path: Path, write_pair: Pair, ca: pki.Issued) -> None:
    cert, key, leaf = write_pair()
    c, k = certfiles.load(cert), certfiles.load(key)
    assert c.kind == "chain" and k.kind == "private key"
    assert c.spki == k.spki and c.spki_sha256 == k.spki_sha256
    assert not c.same_as(k) and k.fingerprint.startswith("spki:")
    # a new certificate for the same key: same SPKI, different identity
    again = pki.make_leaf(ca, ["mx.example.test"], key=leaf.key)
    f = tmp_path / "again.pem"
    f.write_bytes(again.cert_pem)
    a = certfiles.load(f)
    assert a.spki == c.spki and not a.same_as(c) and a.kind == "certificate"
    assert "PRIVATE" not in repr(k) and "chain_der" not in repr(c)
