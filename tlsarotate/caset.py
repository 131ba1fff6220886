"""CA sets for DANE-TA (usage 2, and 0): the issuing CA certificates a service pins (config
``ca_set:``), every current and backup intermediate of its CA, not only the issuer of today's
chain. Pure: certificates parsed from bytes (:mod:`tlsarotate.planinputs` reads the files), the
records they make, and which chain's issuer they pin. No I/O.

With a CA set, the records a service wants for a usage 0/2 parameter are one per CA in the set,
plus the served chain's issuer while it is served (a record matching what is served is never
retired); a next certificate whose issuer is not in the set is not swapped in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import material, records
from tlsarotate.errors import MaterialError
from tlsarotate.records import Params

TA_USAGES = (0, 2)  # the usages whose records pin a CA certificate above the leaf


@dataclass(frozen=True)
class CaCert:
    """One CA certificate of a service's ``ca_set``, and the file it came from."""

    source: str
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    @property
    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def pin(self, params: Params) -> TLSA:
        """This CA's record for a usage 0/2 parameter (selector 0: the certificate, 1: its
        SPKI)."""
        data = self.der if params.selector == 0 else material.spki_of_cert(self.cert)
        return records.make(params, data)


def parse(data: bytes, source: str) -> tuple[CaCert, ...]:
    """Every certificate in a PEM (one or several) or DER file; each must be a CA certificate
    (basicConstraints CA:TRUE). :class:`MaterialError` in one line naming ``source``."""
    try:
        if b"-----BEGIN " in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise MaterialError(f"{source}: not a PEM or DER certificate file") from None
    for c in certs:
        if not material.is_ca(c):
            raise MaterialError(
                f"{source}: {c.subject.rfc4514_string()} is not a CA certificate "
                "(no basicConstraints CA:TRUE); ca_set names the CA certificates to pin"
            )
    return tuple(CaCert(source, c) for c in certs)


def ta_params(params: Iterable[Params]) -> list[Params]:
    """The parameters whose records pin a CA (usage 0 or 2)."""
    return [p for p in params if p.usage in TA_USAGES]


def pins(cas: Sequence[CaCert], params: Iterable[Params]) -> set[TLSA]:
    """The records the set wants for the configured usage 0/2 parameters."""
    return {ca.pin(p) for ca in cas for p in ta_params(params)}


def pinned_by(cas: Sequence[CaCert], params: Iterable[Params], rds: Iterable[TLSA]) -> str:
    """The CAs of the set whose records are among ``rds``, in words ("" when none):
    "CN=R11" or "2 CA certificates (CN=R11, CN=R12)"."""
    got = set(rds)
    ta = ta_params(params)
    names = [ca.subject for ca in cas if any(ca.pin(p) in got for p in ta)]
    if len(names) <= 1:
        return "".join(names)
    return f"{len(names)} CA certificates ({', '.join(names)})"


def member(cas: Sequence[CaCert], chain_der: Sequence[bytes], params: Iterable[Params]) -> bool:
    """Is the CA above this chain's leaf in the set: does each configured usage 0/2
    parameter's record of some CA in the set match the chain?"""
    wanted = ta_params(params)
    return all(any(records.matches(ca.pin(p), chain_der) for ca in cas) for p in wanted)


def outside(m: material.Material) -> str:
    """Why a certificate whose issuer is not in the set is not installed, in words."""
    return (
        f"is issued by {issuer_name(m)}, which is not in ca_set: add that CA certificate to "
        "ca_set (its 2 x x records are then published, and the swap follows after the wait)"
    )


def issuer_name(m: material.Material) -> str:
    """The subject of the CA certificate after the leaf (the one a 2 x x record pins)."""
    if len(m.chain) > 1:
        return m.chain[1].subject.rfc4514_string()
    leaf = m.leaf
    return leaf.issuer.rfc4514_string() if leaf is not None else "no CA certificate"
