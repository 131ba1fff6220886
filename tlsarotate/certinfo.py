"""What a certificate says, read for DANE reasons and reports: dates, key type, names, CA-ness,
SPKI and certificate digests (:func:`chain_info` for a served chain, leaf first), and the
RFC 6125 name match. A served certificate is remote input: extensions that cannot be parsed
are reported (:func:`bad_extensions`), never raised. No I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from tlsarotate.material import is_ca, spki_of_cert


@dataclass(frozen=True)
class CertInfo:
    depth: int
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    spki_sha256: str
    cert_sha256: str
    names: tuple[str, ...]
    is_ca: bool

    def to_json(self) -> dict[str, object]:
        return {
            "depth": self.depth,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_type": self.key_type,
            "spki_sha256": self.spki_sha256,
            "cert_sha256": self.cert_sha256,
            "names": list(self.names),
            "ca": self.is_ca,
        }


def not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


def not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


def key_type(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "EC P-256", "secp384r1": "EC P-384", "secp521r1": "EC P-521"}.get(
            key.curve.name, f"EC {key.curve.name}"
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def bad_extensions(cert: x509.Certificate) -> str | None:
    """Why the certificate's extensions cannot be parsed, or None. A served certificate is
    remote input: OpenSSL serves one with, say, a subjectAltName that is not a GeneralNames,
    and a DANE-EE(3) client accepts it by its key, but every client that validates the chain
    (DANE-TA, PKIX) rejects it ("invalid certificate")."""
    try:
        cert.extensions  # noqa: B018  (parses every extension)
    except x509.DuplicateExtension as e:
        return f"duplicate extension {e.oid.dotted_string}"
    except ValueError as e:
        where = re.search(r'location: \["([^"\]]*)"', str(e))
        return f"malformed {where.group(1)}" if where else str(e).split(":", 1)[0]
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    """A CA certificate whose extensions can be read."""
    return bad_extensions(cert) is None and is_ca(cert)


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """subjectAltName dNSNames, or the subject CN when there are none; () when the
    extensions cannot be parsed (:func:`bad_extensions`)."""
    if bad_extensions(cert) is not None:
        return ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if names:
        return names
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return tuple(str(a.value) for a in cns)


def chain_info(chain_der: Sequence[bytes]) -> list[CertInfo]:
    """One :class:`CertInfo` per certificate of a chain (DER), at its depth."""
    out = []
    for i, der in enumerate(chain_der):
        cert = x509.load_der_x509_certificate(der)
        out.append(
            CertInfo(
                depth=i,
                subject=cert.subject.rfc4514_string(),
                issuer=cert.issuer.rfc4514_string(),
                not_before=not_before(cert),
                not_after=not_after(cert),
                key_type=key_type(cert),
                spki_sha256=hashlib.sha256(spki_of_cert(cert)).hexdigest(),
                cert_sha256=hashlib.sha256(der).hexdigest(),
                names=dns_names(cert),
                is_ca=_is_ca(cert),
            )
        )
    return out


def name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 style: exact (case-insensitive), or ``*.`` in the leftmost label only."""
    p = pattern.rstrip(".").lower()
    h = host.rstrip(".").lower()
    if p == h:
        return True
    if p.startswith("*.") and "*" not in p[2:]:
        head, _, rest = h.partition(".")
        return bool(head) and rest == p[2:] and rest.count(".") >= 1
    return False


def common_name(cert: x509.Certificate) -> str:
    """The subject CN, else the whole subject (RFC 4514)."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()
