"""Keep-ahead next keys: a private key generated before it is needed, so its ``3 1 1`` record
can be published long before the certificate that will carry it exists.

The flow (the engine drives it): ``ensure`` makes sure the key exists and returns its public
half; the record for it is published beside the current one; at renewal the CA is asked for a
certificate for this key (``csr_for`` -> ``certbot certonly --csr``); once the swap has
installed that certificate, ``rotate`` moves the consumed key aside and generates the next one.

The private key is written once, atomically, mode 0600, PKCS#8 PEM; it is never printed and
never leaves this module except as the bytes of a CSR signature.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from tlsarotate import certfiles, material, pki
from tlsarotate.errors import MaterialError
from tlsarotate.fsutil import atomic_write, fsync_dir, read_file


def ensure(path: Path, key_type: str) -> material.Material:
    """The public half of the next key at ``path``, generating it first if there is none."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        return load(path)
    _check_type(key_type, path)
    _ensure_parent(path)
    try:
        _write_new(path, pki.key_pem(pki.new_key(key_type)))
    except FileExistsError:
        # another process won the race to create it: use theirs
        return load(path)
    return load(path)


def rotate(path: Path, key_type: str, *, consumed_spki: str | None = None) -> material.Material:
    """After a swap consumed the key at ``path``: keep it as ``path.used`` (0600; the deployed
    certificate carries it) and generate a fresh next key. Returns the new key's public half.

    ``consumed_spki`` (the SPKI SHA-256 hex of the key the swap installed) makes a repeated call
    harmless: when the key at ``path`` is not that one, it was already rotated and is kept.
    """
    path = Path(path)
    _check_type(key_type, path)
    used = path.with_name(path.name + ".used")
    if path.exists():
        current = load(path)  # refuse to move aside something that is not a usable key
        if consumed_spki is not None and current.spki_sha256 != consumed_spki.lower():
            return current
        try:  # _load refused group/other access already: no chmod needed
            os.replace(path, used)
            fsync_dir(path.parent)
        except OSError as e:
            raise MaterialError(
                f"{path}: cannot move the consumed key aside to {used}: {_why(e)}"
            ) from None
    return ensure(path, key_type)


def csr_for(path: Path, names: Sequence[str]) -> bytes:
    """A PEM CSR for ``names`` signed by the next key at ``path`` (for ``certbot --csr``)."""
    path = Path(path)
    if not names:
        raise MaterialError(f"{path}: a CSR needs at least one DNS name")
    key = _private(path)
    try:
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        )
        algo = (
            None
            if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
            else hashes.SHA256()
        )
        csr = builder.sign(key, algo)
    except ValueError as e:
        raise MaterialError(f"{path}: cannot build a CSR for {', '.join(names)}: {e}") from None
    return csr.public_bytes(serialization.Encoding.PEM)


# -- helpers ------------------------------------------------------------------------------


def _check_type(key_type: str, path: Path) -> None:
    if key_type not in pki.KEY_TYPES:
        raise MaterialError(
            f"{path}: unknown next key type {key_type!r}; one of {', '.join(pki.KEY_TYPES)}"
        )


def _ensure_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise MaterialError(f"{path.parent}: cannot create directory: {e.strerror}") from None


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` atomically (0600) but never replace an existing key: FileExistsError
    when somebody else created it first; any other failure is a one-line MaterialError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        atomic_write(tmp, data, mode=0o600)
        try:
            os.link(tmp, path)  # fails with FileExistsError if somebody else created it
            fsync_dir(path.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except FileExistsError:
        raise
    except OSError as e:
        raise MaterialError(f"{path}: cannot write the next private key: {_why(e)}") from None


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def load(path: Path) -> material.Material:
    """The one loader of a next key, for every command: the public half of the private key at
    ``path``; one line naming the file if it is anything else (a certificate, a public key) or
    readable by group or others."""
    path = Path(path)
    m = certfiles.load(path)
    if m.kind != "private key":
        raise MaterialError(f"{path}: next_key must be a private key, found a {m.kind}")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise MaterialError(
            f"{path}: the next private key is readable by others (mode {mode:03o}); chmod 600"
        )
    return m


def _private(
    path: Path,
) -> (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | (ed448.Ed448PrivateKey)
):
    load(path)  # one-line errors for missing / unreadable / world-readable
    try:
        data = read_file(path, "private key", error=MaterialError)
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise MaterialError(f"{path}: unreadable private key") from None
    if not isinstance(
        key,
        (
            rsa.RSAPrivateKey,
            ec.EllipticCurvePrivateKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PrivateKey,
        ),
    ):
        raise MaterialError(f"{path}: unsupported key type for a CSR")
    return key
