"""Key material and its parsing from bytes: certificates, chains, public and private keys,
CSRs, a certificate with its key, a combined key+chain. No I/O: :mod:`tlsarotate.certfiles`
reads the files (and certbot lineages) and hands their bytes here.

Everything is reduced to a :class:`Material`: the chain as served (leaf first) and the leaf's
SubjectPublicKeyInfo. Private keys are parsed only to derive their public half; the private
key object is dropped before returning and never printed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from tlsarotate import timefmt
from tlsarotate.errors import MaterialError

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_SPKI_DER = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class EncryptedKeyError(MaterialError):
    """The private key is encrypted: tlsarotate needs it unencrypted (only its public half is
    used)."""

    def __init__(self, source: str | os.PathLike[str]) -> None:
        super().__init__(
            f"{source}: the private key is encrypted; tlsarotate needs an unencrypted key "
            "(only its public half is used)"
        )


@dataclass(frozen=True)
class Material:
    """What a TLSA record can be built from.

    ``chain`` holds the certificates leaf first (empty for a bare key or CSR); ``chain_der`` their
    DER encodings; ``spki`` the DER SubjectPublicKeyInfo of the leaf (or of the key/CSR).
    """

    source: str
    kind: str  # "certificate" | "chain" | "public key" | "private key" | "csr" | "lineage"
    spki: bytes
    chain: tuple[x509.Certificate, ...] = ()
    chain_der: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None

    @property
    def spki_sha256(self) -> str:
        return hashlib.sha256(self.spki).hexdigest()

    @property
    def fingerprint(self) -> str:
        """A stable identity: the leaf certificate's SHA-256, or the SPKI's for a bare key."""
        if self.chain_der:
            return hashlib.sha256(self.chain_der[0]).hexdigest()
        return "spki:" + self.spki_sha256

    def same_as(self, other: Material) -> bool:
        return self.fingerprint == other.fingerprint


def _spki_of_public(key: object) -> bytes:
    if not isinstance(
        key,
        (
            rsa.RSAPublicKey,
            ec.EllipticCurvePublicKey,
            ed25519.Ed25519PublicKey,
            ed448.Ed448PublicKey,
            dsa.DSAPublicKey,
        ),
    ):
        raise TypeError(f"unsupported key type {type(key).__name__}")
    return key.public_bytes(*_SPKI_DER)


def _private_spki(data: bytes, path: Path, pem: bool) -> bytes:
    try:
        if pem:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise EncryptedKeyError(path) from None
    except (ValueError, UnsupportedAlgorithm):
        raise MaterialError(f"{path}: unreadable private key") from None
    try:
        return _spki_of_public(key.public_key())
    except TypeError as e:
        raise MaterialError(f"{path}: {e}") from None
    finally:
        del key


def spki_of_cert(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo, DER."""
    return cert.public_key().public_bytes(*_SPKI_DER)


def _check_chain_order(certs: list[x509.Certificate], path: Path) -> None:
    if len(certs) < 2:
        return
    first, second = certs[0], certs[1]
    if first.issuer == second.subject:
        return  # leaf first (or a chain of CA certificates, issuer after subject)
    if second.issuer == first.subject:
        raise MaterialError(
            f"{path}: the chain is in reverse order (the first certificate, "
            f"{first.subject.rfc4514_string()}, is a CA); a chain file must list the leaf "
            "first, then its issuers"
        )
    if is_ca(first) and not all(is_ca(c) for c in certs[1:]):
        raise MaterialError(
            f"{path}: the first certificate ({first.subject.rfc4514_string()}) is a CA "
            "certificate, not the leaf; a chain file must list the leaf first, then its issuers"
        )
    raise MaterialError(
        f"{path}: the second certificate ({second.subject.rfc4514_string()}) did not issue "
        f"the first ({first.subject.rfc4514_string()}); the chain must be leaf first"
    )


def is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def _material_from_certs(certs: list[x509.Certificate], ders: list[bytes], path: Path) -> Material:
    _check_chain_order(certs, path)
    try:
        spki = _spki_of_public(certs[0].public_key())
    except (TypeError, ValueError, UnsupportedAlgorithm) as e:
        raise MaterialError(f"{path}: unsupported public key in certificate: {e}") from None
    return Material(
        source=str(path),
        kind="chain" if len(certs) > 1 else "certificate",
        spki=spki,
        chain=tuple(certs),
        chain_der=tuple(ders),
    )


def _parse_pem(data: bytes, path: Path) -> Material:
    blocks = _PEM_RE.findall(data)
    if not blocks:
        raise MaterialError(f"{path}: not a PEM or DER certificate, key or CSR")
    certs: list[x509.Certificate] = []
    ders: list[bytes] = []
    others: list[tuple[str, bytes]] = []
    for label_b, body in blocks:
        label = label_b.decode("ascii")
        if b"Proc-Type: 4,ENCRYPTED" in body or label == "ENCRYPTED PRIVATE KEY":
            raise EncryptedKeyError(path)
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise MaterialError(f"{path}: corrupt PEM block {label!r}") from None
        if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError:
                raise MaterialError(
                    f"{path}: corrupt certificate (PEM block {len(certs) + 1})"
                ) from None
            ders.append(der)
        else:
            others.append((label, der))
    if certs:
        return _material_from_certs(certs, ders, path)
    # "EC PARAMETERS" (openssl ecparam -genkey) and the like carry no key: skip them.
    keyish = [(lb, d) for lb, d in others if not lb.endswith("PARAMETERS")]
    if not keyish:
        raise MaterialError(
            f"{path}: holds only PEM block(s) {', '.join(repr(lb) for lb, _ in others)}; "
            "expected a certificate, key or CSR"
        )
    label, der = keyish[0]
    if label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        try:
            if label == "PUBLIC KEY":
                key = serialization.load_der_public_key(der)
            else:
                key = serialization.load_pem_public_key(_pem(label, der))
            return Material(str(path), "public key", _spki_of_public(key))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise MaterialError(f"{path}: unreadable public key") from None
    if label.endswith("PRIVATE KEY"):
        return Material(str(path), "private key", _private_spki(_pem(label, der), path, pem=True))
    if label in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
        return _from_csr(der, path)
    raise MaterialError(f"{path}: unsupported PEM block {label!r}")


def _pem(label: str, der: bytes) -> bytes:
    """Re-wrap a decoded block, so cryptography sees exactly one clean PEM block."""
    body = base64.encodebytes(der)
    return f"-----BEGIN {label}-----\n".encode() + body + f"-----END {label}-----\n".encode()


def _from_csr(der: bytes, path: Path) -> Material:
    try:
        csr = x509.load_der_x509_csr(der)
        return Material(str(path), "csr", _spki_of_public(csr.public_key()))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise MaterialError(f"{path}: unreadable certificate signing request") from None


def _parse_der(data: bytes, path: Path) -> Material:
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    else:
        return _material_from_certs([cert], [data], path)
    try:
        pub = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        pass
    else:
        try:
            return Material(str(path), "public key", _spki_of_public(pub))
        except TypeError as e:
            raise MaterialError(f"{path}: {e}") from None
    try:
        return _from_csr(data, path)
    except MaterialError:
        pass
    try:
        return Material(str(path), "private key", _private_spki(data, path, pem=False))
    except EncryptedKeyError:
        raise
    except MaterialError:
        pass
    raise MaterialError(f"{path}: not a PEM or DER certificate, key or CSR")


def parse(data: bytes, source: str | os.PathLike[str]) -> Material:
    """Parse bytes already read from ``source`` (used for messages only)."""
    path = Path(source)
    if b"-----BEGIN " in data:
        return _parse_pem(data, path)
    return _parse_der(data, path)


def combined(data: bytes, source: str | os.PathLike[str]) -> Material:
    """One document holding a private key and its full chain (Postfix smtpd_tls_chain_files);
    the key must belong to the leaf."""
    p = Path(source)
    cert = parse(data, p)
    if not cert.chain:
        raise MaterialError(f"{p}: no certificate found in the combined key+chain file")
    blocks = [b for b in _PEM_RE.finditer(data) if b.group(1).endswith(b"PRIVATE KEY")]
    if not blocks:
        raise MaterialError(f"{p}: no private key found in the combined key+chain file")
    if _private_spki(blocks[0].group(0), p, pem=True) != cert.spki:
        raise MaterialError(f"{p}: the private key does not belong to the leaf certificate")
    return cert


# -- is a certificate fit to be installed? --------------------------------------------------
#
# Pure functions of the Material, the time and the service's host names: the planner calls
# them before a swap, ``check`` before it says "safe to swap".

DEFAULT_MIN_VALIDITY = 86400  # seconds the next certificate must stay valid after a swap


@dataclass(frozen=True)
class Unfit:
    """Why a certificate must not be installed now (``blocking``), or what a client checking
    it would object to although DANE-EE clients will not (not ``blocking``: a warning).
    ``until``: when the reason goes away by itself (a certificate not valid yet)."""

    reason: str
    blocking: bool = True
    until: float | None = None


def _when(ts: float) -> str:
    return timefmt.iso(ts) or ""


def unfit(
    m: Material,
    now: float,
    hosts: Sequence[str] = (),
    usages: Collection[int] = (3,),
    min_validity: float = DEFAULT_MIN_VALIDITY,
) -> list[Unfit]:
    """What stops ``m`` from being served from ``now`` on to clients of ``hosts`` through
    TLSA records of ``usages``: validity (now, and ``min_validity`` seconds on), the names
    (every host must be matched by a subjectAltName, or the CN when there is none; only a
    warning when every usage is 3, DANE-EE, whose clients ignore names), and for usage 2/0
    whether the leaf is really signed by the CA certificate those records pin (the chain's
    second certificate). Empty: fit."""
    from tlsarotate.certinfo import dns_names, name_matches  # certinfo imports this module

    leaf = m.leaf
    if leaf is None:
        return [Unfit(f"{m.source}: a {m.kind}, not a certificate")]
    out: list[Unfit] = []
    start = leaf.not_valid_before_utc.timestamp()
    end = leaf.not_valid_after_utc.timestamp()
    if now < start:
        out.append(
            Unfit(
                f"not valid before {_when(start)} (in {timefmt.duration(start - now)}; "
                "is the clock right?)",
                until=start,
            )
        )
    if end <= now:
        out.append(Unfit(f"expired {_when(end)} ({timefmt.duration(now - end)} ago)"))
    elif end < now + min_validity:
        out.append(
            Unfit(
                f"expires {_when(end)}, in {timefmt.duration(end - now)}: less than the "
                f"{timefmt.duration(min_validity)} it must stay valid (next_min_days)"
            )
        )
    names = dns_names(leaf)
    missing = [h.rstrip(".") for h in hosts if not any(name_matches(n, h) for n in names)]
    if missing:
        pkix = sorted(u for u in set(usages) if u != 3)
        has = ", ".join(names) or "no DNS name"
        what = f"does not name {', '.join(missing)} (it names {has})"
        if pkix:
            out.append(Unfit(f"{what}: clients of usage {pkix[0]} check the name"))
        else:
            out.append(
                Unfit(
                    f"{what}: DANE-EE (usage 3) clients ignore names, but any client checking "
                    "them (PKIX, no DANE) will reject it",
                    blocking=False,
                )
            )
    if any(u in (0, 2) for u in usages):
        if len(m.chain) < 2:
            out.append(Unfit("holds no CA certificate above the leaf for the 2 x x records"))
        elif not issued_by(leaf, m.chain[1]):
            out.append(
                Unfit(
                    "the leaf is not signed by the CA certificate after it "
                    f"({m.chain[1].subject.rfc4514_string()}), which the 2 x x records pin"
                )
            )
    return out


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """``child`` names ``parent`` as its issuer and carries its valid signature."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm
        return False
    return True
