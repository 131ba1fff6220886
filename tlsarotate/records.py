"""TLSA records (RFC 6698 §2.1): build them from :class:`Material`, match them against a chain.

The one record type used throughout tlsarotate is dnspython's TLSA rdata. Text form is
``"3 1 1 <lowercase hex>"``, never chunked.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate.errors import RecordError
from tlsarotate.material import Material, spki_of_cert

USAGES = {0: "PKIX-TA", 1: "PKIX-EE", 2: "DANE-TA", 3: "DANE-EE"}
SELECTORS = {0: "Cert", 1: "SPKI"}
MTYPES = {0: "Full", 1: "SHA2-256", 2: "SHA2-512"}
DEFAULT_PARAMS = ("3 1 1", "3 0 1")


class Params(NamedTuple):
    usage: int
    selector: int
    mtype: int

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype}"


def parse_params(text: str) -> Params:
    """``"3 1 1"`` -> Params(3, 1, 1); mnemonics like ``"DANE-EE SPKI SHA2-256"`` also work."""
    parts = str(text).replace(",", " ").split()
    if len(parts) != 3:
        raise RecordError(f"invalid TLSA parameters {text!r}: expected 'usage selector mtype'")
    tables = (USAGES, SELECTORS, MTYPES)
    names = ("usage", "selector", "matching type")
    values: list[int] = []
    for part, table, name in zip(parts, tables, names, strict=True):
        if part.isdigit():
            v = int(part)
        else:
            rev = {n.upper(): k for k, n in table.items()}
            if part.upper() not in rev:
                raise RecordError(f"invalid TLSA parameters {text!r}: unknown {name} {part!r}")
            v = rev[part.upper()]
        if v not in table:
            allowed = ", ".join(str(k) for k in table)
            raise RecordError(f"invalid TLSA parameters {text!r}: {name} must be one of {allowed}")
        values.append(v)
    return Params(*values)


def params_of(rd: TLSA) -> Params:
    return Params(rd.usage, rd.selector, rd.mtype)


DIGEST_LEN = {1: 32, 2: 64}  # bytes of a SHA-256 / SHA-512 matching-type record


def association_data(mtype: int, data: bytes) -> bytes:
    """The TLSA association data of ``data`` for matching type 0 (exact), 1 or 2."""
    if mtype == 0:
        return data
    if mtype == 1:
        return hashlib.sha256(data).digest()
    return hashlib.sha512(data).digest()


def make(params: Params, data: bytes) -> TLSA:
    """A TLSA rdata over ``data`` (the selected DER) with the given parameters."""
    return TLSA(  # type: ignore[no-untyped-call]
        dns.rdataclass.IN,
        dns.rdatatype.TLSA,
        params.usage,
        params.selector,
        params.mtype,
        association_data(params.mtype, data),
    )


def _selected(material: Material, params: Params, ta_depth: int) -> bytes:
    if params.usage not in USAGES or params.selector not in SELECTORS or params.mtype not in MTYPES:
        raise RecordError(f"invalid TLSA parameters {params}")
    if params.usage in (1, 3):
        if params.selector == 1:
            return material.spki
        if not material.chain_der:
            raise RecordError(
                f"{material.source}: selector 0 (whole certificate) needs a certificate, "
                f"not a {material.kind}"
            )
        return material.chain_der[0]
    # usage 0/2: a CA certificate above the leaf
    if ta_depth < 1:
        raise RecordError(
            f"trust-anchor depth {ta_depth} is not above the leaf; use 1 (the leaf's issuer) "
            "or more"
        )
    if len(material.chain_der) <= ta_depth:
        raise RecordError(
            f"{material.source}: usage {params.usage} needs the CA certificate above the leaf "
            f"(chain position {ta_depth}); the {material.kind} holds {len(material.chain_der)} "
            "certificate(s)"
        )
    if params.selector == 0:
        return material.chain_der[ta_depth]
    return spki_of_cert(material.chain[ta_depth])


def build(material: Material, params: Params, ta_depth: int = 1) -> TLSA:
    """One record. Usage 2 (and 0) use the CA certificate at ``ta_depth`` (1 = leaf's issuer)."""
    return make(params, _selected(material, params, ta_depth))


def build_all(material: Material, params: Iterable[Params], ta_depth: int = 1) -> list[TLSA]:
    return [build(material, p, ta_depth) for p in params]


def to_text(rd: TLSA) -> str:
    return f"{rd.usage} {rd.selector} {rd.mtype} {rd.cert.hex()}"


@functools.lru_cache(maxsize=16384)
def from_text(text: str) -> TLSA:
    """Parse ``"3 1 1 <hex>"`` (hex in any case, optionally chunked).

    Cached (rdata are immutable): the state, the plan and the zone name the same few records
    again and again (issue #16: a state load re-parsed every stored record text, 180,000
    times in one ``apply`` of 10,000 owners). A text that fails is parsed anew each time."""
    try:
        rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, text)
    except (dns.exception.DNSException, ValueError) as e:
        raise RecordError(f"invalid TLSA record {text!r}: {e}") from None
    assert isinstance(rd, TLSA)
    expected = DIGEST_LEN.get(rd.mtype)
    if expected is not None and len(rd.cert) != expected:
        raise RecordError(
            f"invalid TLSA record {text!r}: matching type {rd.mtype} needs {expected} bytes, "
            f"got {len(rd.cert)}"
        )
    return rd


def owner_name(host: str, port: int, proto: str = "tcp") -> dns.name.Name:
    """``_25._tcp.mx.example.com.``"""
    return OwnerName(dns.name.from_text(f"_{port}._{proto}.{host.rstrip('.')}.").labels)


class OwnerName(dns.name.Name):
    """A TLSA owner name that hashes once and is written as text once: dnspython's
    :class:`~dns.name.Name` computes its hash byte by byte on every dict or set lookup, and
    the planner keys a dozen per-owner dicts by owner (issue #16: half a million hashes in one
    plan of 10,000 owners), and names every owner in plan and state. The same name in every
    other respect (equal to, and hashing like, the plain Name of the same
    labels); names derived from it (``parent()``, ``relativize()``) are plain Names."""

    __slots__ = ("_hash", "_text")
    _hash: int
    _text: str | None

    def __init__(self, labels: Iterable[bytes | str]) -> None:
        super().__init__(labels)
        object.__setattr__(self, "_hash", hash(super().__hash__()))
        object.__setattr__(self, "_text", None)

    def __hash__(self) -> int:
        return self._hash

    def to_text(self, omit_final_dot: bool = False, *args: Any, **kwargs: Any) -> str:
        if omit_final_dot or args or kwargs:  # (dnspython 2.7 added a style)
            return super().to_text(omit_final_dot, *args, **kwargs)
        if self._text is None:  # and the text too: plan and state name every owner
            object.__setattr__(self, "_text", super().to_text())
        return self._text  # type: ignore[return-value]

    def __reduce__(self) -> tuple[type[OwnerName], tuple[tuple[bytes, ...]]]:
        return (OwnerName, (self.labels,))  # a copy or an unpickled one hashes again


def zone_line(owner: dns.name.Name, ttl: int, rd: TLSA) -> str:
    return f"{owner.to_text()} {ttl} IN TLSA {to_text(rd)}"


@functools.lru_cache(maxsize=1024)
def spki_of_der(der: bytes) -> bytes | None:
    """The SPKI of a DER certificate, or None if it cannot be decoded. Cached: matching a
    record set against a chain asks for the same certificate again and again."""
    try:
        return spki_of_cert(x509.load_der_x509_certificate(der))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def usable(rd: TLSA) -> bool:
    """Known usage (0-3), selector (0-1) and matching type (0-2); others never match."""
    return rd.usage in USAGES and rd.selector in SELECTORS and rd.mtype in MTYPES


def matches(rd: TLSA, chain_der: Sequence[bytes]) -> bool:
    """Does this record match the served chain (leaf first)?

    Usage 3/1 match the leaf only; usage 2/0 match any certificate above the leaf (a trust
    anchor the server sends). Names and expiry are not checked here (RFC 7672 §3.1.1). A record
    with unknown parameters, or a certificate that cannot be decoded, never matches.
    """
    if not chain_der or not usable(rd):
        return False
    candidates = chain_der[:1] if rd.usage in (1, 3) else chain_der[1:]
    for der in candidates:
        data = der if rd.selector == 0 else spki_of_der(der)
        if data is not None and association_data(rd.mtype, data) == rd.cert:
            return True
    return False


def matches_material(rd: TLSA, material: Material) -> bool:
    """Like :func:`matches`, but also for bare keys (usage 3, selector 1 only)."""
    if material.chain_der:
        return matches(rd, material.chain_der)
    return (
        usable(rd)
        and rd.usage in (1, 3)
        and rd.selector == 1
        and association_data(rd.mtype, material.spki) == rd.cert
    )


def unmatched_combos(rrset: Iterable[TLSA], chain_der: Sequence[bytes]) -> list[Params]:
    combos: dict[Params, bool] = {}
    for rd in rrset:
        p = params_of(rd)
        combos[p] = combos.get(p, False) or matches(rd, chain_der)
    return sorted(p for p, ok in combos.items() if not ok)


def accepts(rrset: Iterable[TLSA], chain_der: Sequence[bytes]) -> bool:
    """RFC 7671 §9 digest agility, made strict: every usage/selector/mtype combination present
    in the RRset must have at least one record that matches the chain on its own."""
    return not unmatched_combos(rrset, chain_der)


def sort_key(rd: TLSA) -> tuple[int, int, int, bytes]:
    return (rd.usage, rd.selector, rd.mtype, rd.cert)
