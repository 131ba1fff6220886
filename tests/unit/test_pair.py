"""pair: the pair a swap installs, read once from tmp_path files: PEM kept as it is, DER made
PEM, a combined file split into key and chain, a certbot lineage; every mismatch one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tlsarotate import pki
from tlsarotate.config import CertPaths
from tlsarotate.errors import SwapError
from tlsarotate.pair import load_or_none, read_pair

WritePair = Callable[..., tuple[Path, Path, pki.Issued]]


def _one_line(e: pytest.ExceptionInfo[SwapError], *needles: str) -> None:
    text = str(e.value)
    assert "\n" not in text
    for n in needles:
        assert n in text


def test_a_pem_pair_is_installed_as_read(write_pair: WritePair, ca: pki.Issued) -> None:
    c, k, leaf = write_pair("next")
    p = read_pair(CertPaths(cert=c, key=k))
    assert p.chain_pem == pki.fullchain_pem(leaf, ca)
    assert p.key_pem == leaf.key_pem
    assert p.combined() == leaf.key_pem + p.chain_pem
    assert p.material.chain_der[0] == leaf.cert.public_bytes(serialization.Encoding.DER)


def test_der_files_become_pem(tmp_path: Path, ca: pki.Issued) -> None:
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    c, k = tmp_path / "c.der", tmp_path / "k.der"
    c.write_bytes(leaf.cert.public_bytes(serialization.Encoding.DER))
    k.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    p = read_pair(CertPaths(cert=c, key=k))
    assert p.chain_pem == leaf.cert_pem
    assert p.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    reread = serialization.load_pem_private_key(p.key_pem, password=None)
    assert reread.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == leaf.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_key_without_final_newline_gets_one(write_pair: WritePair) -> None:
    c, k, leaf = write_pair("next")
    k.write_bytes(leaf.key_pem.rstrip(b"\n"))
    assert read_pair(CertPaths(cert=c, key=k)).key_pem == leaf.key_pem


def test_a_key_of_another_certificate_is_one_line(write_pair: WritePair) -> None:
    c, _, _ = write_pair("a")
    _, k, _ = write_pair("b")
    with pytest.raises(SwapError) as e:
        read_pair(CertPaths(cert=c, key=k))
    _one_line(e, str(k), "does not belong to the certificate")


def test_a_certificate_where_the_key_goes_is_one_line(write_pair: WritePair) -> None:
    c, _, _ = write_pair("a")
    with pytest.raises(SwapError) as e:
        read_pair(CertPaths(cert=c, key=c))
    _one_line(e, str(c), "expected a private key")


def test_a_combined_file_splits_into_key_and_chain(
    tmp_path: Path, write_pair: WritePair, ca: pki.Issued
) -> None:
    _, _, leaf = write_pair("x")
    f = tmp_path / "mx.pem"
    f.write_bytes(leaf.key_pem + pki.fullchain_pem(leaf, ca))
    p = read_pair(CertPaths(combined=f))
    assert p.key_pem == leaf.key_pem and p.chain_pem == pki.fullchain_pem(leaf, ca)
    f.write_bytes(pki.fullchain_pem(leaf, ca))
    with pytest.raises(SwapError) as e:
        read_pair(CertPaths(combined=f))
    _one_line(e, str(f), "no private key found in the combined key+chain file")


def test_a_lineage_is_read_from_fullchain_and_privkey(
    tmp_path: Path, write_pair: WritePair
) -> None:
    c, k, leaf = write_pair("x")
    live = tmp_path / "live"
    live.mkdir()
    (live / "fullchain.pem").write_bytes(c.read_bytes())
    (live / "privkey.pem").write_bytes(k.read_bytes())
    assert read_pair(CertPaths(lineage=live)).key_pem == leaf.key_pem
    (live / "privkey.pem").unlink()
    with pytest.raises(SwapError) as e:
        read_pair(CertPaths(lineage=live))
    _one_line(e, str(live / "privkey.pem"), "private key not found")


def test_load_or_none_is_none_for_no_pair(tmp_path: Path, write_pair: WritePair) -> None:
    c, k, _ = write_pair("x")
    assert load_or_none(CertPaths(cert=c, key=k)) is not None
    assert load_or_none(CertPaths(cert=c, key=tmp_path / "missing")) is None
