"""PKIX for DANE usages PKIX-TA(0) and PKIX-EE(1) off SMTP (RFC 6698 §2.1.1): the trust store
(``$SSL_CERT_FILE`` or the system bundle, read once per path) and RFC 5280 validation of a
served chain for a host name, by cryptography's ``x509.verification``.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509 import verification

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Trust:
    """PKIX trust anchors for PKIX-TA(0)/PKIX-EE(1) records (``error``: none could be read)."""

    source: str
    anchors: tuple[x509.Certificate, ...] = ()
    error: str | None = None


def load_trust(path: str) -> Trust:
    """The certificates of a PEM bundle; blocks that do not parse are skipped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return Trust(path, error=f"cannot read the trust store {path}: {e.strerror or e}")
    end = b"-----END CERTIFICATE-----"
    anchors = []
    for block in data.split(end)[:-1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a root with a negative serial number
            try:
                anchors.append(x509.load_pem_x509_certificate(block.strip() + b"\n" + end))
            except ValueError:
                continue
    if not anchors:
        return Trust(path, error=f"no certificates in the trust store {path}")
    return Trust(path, tuple(anchors))


@functools.lru_cache(maxsize=4)
def _cached_trust(path: str) -> Trust:
    return load_trust(path)


def system_trust() -> Trust:
    """The PKIX trust store: ``$SSL_CERT_FILE`` (as OpenSSL honours it), else the system
    bundle (Debian: /etc/ssl/certs/ca-certificates.crt). Read once per path."""
    return _cached_trust(os.environ.get("SSL_CERT_FILE") or SYSTEM_BUNDLE)


PkixResult = tuple[list[x509.Certificate] | None, str]


def validate(
    certs: Sequence[x509.Certificate], host: str, now: dt.datetime, trust: Trust
) -> PkixResult:
    """(the validated path leaf..root, "") or (None, why not) -- RFC 5280 validation with
    the host name, by cryptography's x509.verification."""
    if trust.error:
        return None, f"PKIX validation was not checked ({trust.error})"
    name = host.rstrip(".")
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        subject = x509.DNSName(name)
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(list(trust.anchors)))
            .time(now)
            .build_server_verifier(subject)
        )
        path = verifier.verify(certs[0], list(certs[1:]))
    except verification.VerificationError as e:
        why = str(e).split(" (encountered processing", 1)[0]
        if "candidates exhausted" in why:
            why = f"no path from the chain to a trust anchor ({why})"
        return None, f"PKIX validation against {trust.source} fails: {why}"
    except Exception as e:  # a name cryptography refuses, an unsupported key, ...
        return None, f"PKIX validation against {trust.source} fails: {e}"
    return list(path), ""
