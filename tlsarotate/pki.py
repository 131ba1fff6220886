"""Throwaway keys and certificates: the demo, the tests and keep-ahead next keys use these.

Nothing here is meant for production trust: the CA is a local, short-lived one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ecdsa-p256", "ecdsa-p384", "ed25519", "ed448")


def new_key(kind: str = "ecdsa-p256") -> PrivateKey:
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"unknown key type {kind!r}; one of {', '.join(KEY_TYPES)}")


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    return hashes.SHA256()


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Issued:
    key: PrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(
    cn: str = "tlsarotate throwaway CA",
    kind: str = "ecdsa-p256",
    days: int = 30,
    issuer: Issued | None = None,
    not_before: dt.datetime | None = None,
) -> Issued:
    """A CA certificate: self-signed, or an intermediate when ``issuer`` is given; valid from
    five minutes ago (or ``not_before``) for ``days``."""
    key = new_key(kind)
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    signer_key = issuer.key if issuer else key
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return Issued(key, b.sign(signer_key, _hash_for(signer_key)))


def make_leaf(
    ca: Issued,
    names: list[str],
    kind: str = "ecdsa-p256",
    days: int = 30,
    key: PrivateKey | None = None,
    not_before: dt.datetime | None = None,
) -> Issued:
    """A server certificate for ``names`` signed by ``ca`` (a new key unless ``key`` is given)."""
    key = key or new_key(kind)
    now = dt.datetime.now(dt.timezone.utc)
    start = not_before or now - dt.timedelta(minutes=5)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
    )
    return Issued(key, b.sign(ca.key, _hash_for(ca.key)))


def fullchain_pem(leaf: Issued, *cas: Issued) -> bytes:
    return leaf.cert_pem + b"".join(c.cert_pem for c in cas)
