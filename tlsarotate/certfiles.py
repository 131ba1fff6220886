"""Reading certificate and key files: any single file, a certificate with its key, a combined
key+chain file, a certbot lineage directory. Each file is read once with one-line errors
(:func:`tlsarotate.fsutil.read_file`) and its bytes parsed by :mod:`tlsarotate.material`."""

from __future__ import annotations

import os
from pathlib import Path

from tlsarotate import material
from tlsarotate.errors import MaterialError
from tlsarotate.fsutil import read_file
from tlsarotate.material import Material


def _read_bytes(path: Path, what: str) -> bytes:
    data = read_file(path, what, error=MaterialError)
    if not data.strip():
        raise MaterialError(f"{path}: empty file, expected a {what}")
    return data


def load(path: str | os.PathLike[str]) -> Material:
    """Load any supported file, or a certbot lineage directory (``live/NAME``)."""
    p = Path(path)
    if p.is_dir():
        return load_lineage(p, require_key=False)
    return material.parse(_read_bytes(p, "certificate or key"), p)


def load_pair(cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> Material:
    """Load a certificate chain and check that the private key belongs to its leaf."""
    cert = material.parse(_read_bytes(Path(cert_path), "certificate"), cert_path)
    if not cert.chain:
        raise MaterialError(f"{cert_path}: expected a certificate, found a {cert.kind}")
    key = material.parse(_read_bytes(Path(key_path), "private key"), key_path)
    if key.kind != "private key":
        raise MaterialError(f"{key_path}: expected a private key, found a {key.kind}")
    if key.spki != cert.spki:
        raise MaterialError(
            f"{key_path}: the private key does not belong to the certificate {cert_path}"
        )
    return cert


def load_combined(path: str | os.PathLike[str]) -> Material:
    """Load one file holding a private key and its full chain (Postfix smtpd_tls_chain_files)."""
    p = Path(path)
    return material.combined(_read_bytes(p, "key and certificate chain"), p)


def load_lineage(path: str | os.PathLike[str], require_key: bool = True) -> Material:
    """A certbot lineage: ``fullchain.pem`` (leaf first) and ``privkey.pem``, usually relative
    symlinks into ``archive/``. The key must belong to the leaf. ``require_key=False`` (for
    printing records) accepts a lineage whose ``privkey.pem`` is absent."""
    p = Path(path)
    if not p.is_dir():
        if p.exists() or p.is_symlink():
            raise MaterialError(f"{p}: not a directory, expected a certbot lineage (live/NAME)")
        raise MaterialError(f"{p}: certbot lineage directory not found")
    full, key = p / "fullchain.pem", p / "privkey.pem"
    if not full.exists() and not full.is_symlink():
        raise MaterialError(f"{p}: is a directory but not a certbot lineage (no fullchain.pem)")
    if key.exists() or key.is_symlink():
        m = load_pair(full, key)
    elif require_key:
        raise MaterialError(f"{p}: incomplete certbot lineage (no privkey.pem)")
    else:
        m = material.parse(_read_bytes(full, "certificate chain"), full)
        if not m.chain:
            raise MaterialError(f"{full}: expected a certificate chain, found a {m.kind}")
    return Material(str(p), "lineage", m.spki, m.chain, m.chain_der)
