"""Key types for dual certificates: a server serving an RSA and an ECDSA certificate side by
side presents the one the client's offer allows. Which key type a certificate or key has
(:func:`of_spki`), how it is written (:data:`LABEL`), and what a TLS client offers so that the
server must present that type (:data:`CIPHERS` for TLS 1.2 and below, :data:`SIGALGS` for
TLS 1.3 and the CertificateVerify of 1.2). Pure: :mod:`tlsarotate.handshake` applies them.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

RSA, ECDSA = "rsa", "ecdsa"
KEY_TYPES = (RSA, ECDSA)  # the types a handshake can be restricted to, in report order
LABEL = {RSA: "RSA", ECDSA: "ECDSA"}

# TLS <= 1.2: the cipher suites authenticated by that key type (ECDHE-RSA-*, ECDHE-ECDSA-*, ...)
CIPHERS = {RSA: "aRSA", ECDSA: "aECDSA"}
# TLS 1.3 (and 1.2's signatures): only signatures that key type makes. Without a
# signature_algorithms_cert extension (none is sent) these do not restrict the CA's signatures.
SIGALGS = {
    RSA: "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:"
    "rsa_pkcs1_sha256:rsa_pkcs1_sha384:rsa_pkcs1_sha512",
    ECDSA: "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512",
}


def of_spki(spki: bytes) -> str | None:
    """``rsa`` or ``ecdsa`` for a DER SubjectPublicKeyInfo; None for any other key (Ed25519,
    ...) or one that cannot be parsed."""
    try:
        key = load_der_public_key(spki)
    except (ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return RSA
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECDSA
    return None


def label(key_type: str | None) -> str:
    """``RSA`` / ``ECDSA``; ``any`` for no restriction."""
    return LABEL.get(key_type, key_type) if key_type else "any"


def distinct(types: Iterable[str | None]) -> tuple[str, ...]:
    """The restrictable key types among ``types``, once each, in :data:`KEY_TYPES` order."""
    present = set(types)
    return tuple(t for t in KEY_TYPES if t in present)
