"""The pair a swap installs: a certificate chain and its private key read once, checked by the
same reader the planner uses, and kept as the exact PEM bytes that get installed (a DER file
becomes PEM here)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tlsarotate import material
from tlsarotate.config import CertPaths, load_cert
from tlsarotate.errors import SwapError, TlsarotateError
from tlsarotate.fsutil import read_file

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)


@dataclass(frozen=True)
class Pair:
    """A certificate chain and its private key as they will be installed (PEM), and what they
    are (parsed from exactly these bytes' sources by the same reader the planner uses)."""

    chain_pem: bytes
    key_pem: bytes
    material: material.Material

    def combined(self) -> bytes:
        return self.key_pem + self.chain_pem


def _pem_chain(m: material.Material) -> bytes:
    """The chain exactly as parsed, as PEM (a DER certificate file becomes PEM here), in the
    strict form of RFC 7468 (64-character lines), as openssl and cryptography write it."""
    out = []
    for der in m.chain_der:
        b64 = base64.b64encode(der)
        lines = b"".join(b64[i : i + 64] + b"\n" for i in range(0, len(b64), 64))
        out.append(b"-----BEGIN CERTIFICATE-----\n" + lines + b"-----END CERTIFICATE-----\n")
    return b"".join(out)


def _pem_key(data: bytes, where: Path) -> bytes:
    """The key's PEM bytes: a PEM file as it is, a DER key converted (PKCS#8)."""
    if b"-----BEGIN " in data:
        return data if data.endswith(b"\n") else data + b"\n"
    try:
        key = serialization.load_der_private_key(data, password=None)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    except (TypeError, ValueError) as e:
        raise SwapError(f"{where}: cannot convert the DER private key to PEM: {e}") from None


def _read(path: Path, what: str) -> bytes:
    return read_file(path, what, error=SwapError)


def _parse_pair(cert_path: Path, cert_data: bytes, key_path: Path, key_data: bytes) -> Pair:
    """The checks of certfiles.load_pair, on bytes already read (PEM or DER, as the planner)."""
    cert = material.parse(cert_data, cert_path)
    if not cert.chain:
        raise SwapError(f"{cert_path}: expected a certificate, found a {cert.kind}")
    key = material.parse(key_data, key_path)
    if key.kind != "private key":
        raise SwapError(f"{key_path}: expected a private key, found a {key.kind}")
    if key.spki != cert.spki:
        raise SwapError(f"{key_path}: the private key does not belong to the certificate")
    return Pair(_pem_chain(cert), _pem_key(key_data, key_path), cert)


def _parse_combined(path: Path, data: bytes) -> Pair:
    """The checks of certfiles.load_combined, on bytes already read."""
    cert = material.parse(data, path)
    if not cert.chain:
        raise SwapError(f"{path}: no certificate found in the combined key+chain file")
    blocks = [m.group(0) for m in _KEY_BLOCK.finditer(data)]
    if not blocks:
        raise SwapError(f"{path}: no private key found in the combined key+chain file")
    key = material.parse(blocks[0], path)
    if key.spki != cert.spki:
        raise SwapError(f"{path}: the private key does not belong to the leaf certificate")
    return Pair(_pem_chain(cert), _pem_key(blocks[0], path), cert)


def read_pair(paths: CertPaths) -> Pair:
    """Read and check the pair at cert+key, a combined file, or a certbot lineage: each file is
    read once, and what is installed is exactly what was checked."""
    try:
        if paths.lineage:
            c, k = paths.lineage / "fullchain.pem", paths.lineage / "privkey.pem"
            return _parse_pair(c, _read(c, "certificate chain"), k, _read(k, "private key"))
        if paths.combined:
            return _parse_combined(paths.combined, _read(paths.combined, "key and chain"))
        assert paths.cert is not None and paths.key is not None
        return _parse_pair(
            paths.cert,
            _read(paths.cert, "certificate"),
            paths.key,
            _read(paths.key, "private key"),
        )
    except SwapError:
        raise
    except TlsarotateError as e:
        raise SwapError(str(e)) from None


def load_or_none(paths: CertPaths) -> material.Material | None:
    """What the pair at ``paths`` is; None if it is unreadable or not a matching pair."""
    try:
        return load_cert(paths)
    except TlsarotateError:
        return None
