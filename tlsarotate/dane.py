"""The DANE matching rules: how one TLSA record matches a served chain, which records a client
uses at all, and the short forms reasons quote (RFC 6698, 7671, 7672). The verdict over a
whole RRset is :func:`tlsarotate.verdict.diagnose`. No I/O (PKIX validation is passed in).

Rules followed
--------------
- DANE-EE(3) matches the leaf only; names and validity dates are ignored (RFC 7671 §5.1).
- DANE-TA(2) matches a CA certificate the server SENT (RFC 7671 §5.2.2: the trust anchor must be
  in the served chain); the chain must link the leaf to it by signature, the certificates below
  the trust anchor must be within their validity, and the leaf must name the host (subjectAltName
  dNSName, leftmost-label wildcards allowed; the subject CN only when there is no dNSName;
  RFC 7672 §3.2.3).
- PKIX-TA(0) / PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3): the protocol decides, never
  the port (SMTP on a lab port 2525 is SMTP; HTTPS on 25 would not be). Off SMTP they need
  real PKIX validation as well as the match (RFC 6698 §2.1.1): the served chain must verify
  to a trust anchor of ``trust`` (default :func:`tlsarotate.pkix.system_trust`:
  ``$SSL_CERT_FILE`` or the system bundle) for the host name (cryptography's
  ``x509.verification``); PKIX-EE matches the leaf, PKIX-TA a CA certificate of the validated
  path. Without a trust store they can
  not authenticate (and the reason says they were not checked), never "ok".
- Digest algorithm agility (RFC 7671 §9, as OpenSSL implements it): for each usage+selector,
  only records with the strongest digest present are considered, SHA2-512(2) > SHA2-256(1);
  Full(0) records are never discarded by agility. A record the client discards can not help,
  even if it would match; the verdict says so.
- A chain is accepted when at least one considered record authenticates it (what a DANE
  client does). Combinations with no matching record are listed as warnings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.certinfo import (
    bad_extensions,
    common_name,
    dns_names,
    name_matches,
    not_after,
    not_before,
)
from tlsarotate.material import issued_by, spki_of_cert
from tlsarotate.pkix import PkixResult

# digest agility preference, strongest first (Full(0) is outside the ordering)
DIGEST_PREFERENCE = (2, 1)
HEX_SHOWN = 12  # hex digits shown in reasons before "…"
MTYPE_WORDS = {0: "", 1: "sha256", 2: "sha512"}


def short(hexdigest: str) -> str:
    return hexdigest if len(hexdigest) <= HEX_SHOWN else hexdigest[:HEX_SHOWN] + "…"


def short_record(rd: TLSA) -> str:
    return f"{rd.usage} {rd.selector} {rd.mtype} {short(rd.cert.hex())}"


def short_record_text(text: str) -> str:
    """``"3 1 1 <64 hex>"`` -> ``"3 1 1 ab12cd34ef56…"``"""
    head, _, data = text.rpartition(" ")
    return f"{head} {short(data)}"


@dataclass(frozen=True)
class RecordCheck:
    """One TLSA record against the served chain, and why."""

    record: str  # "3 1 1 <hex>"
    params: records.Params
    usable: bool  # usage/selector/mtype supported and well-formed for this port
    considered: bool  # usable and kept by digest agility
    matched: bool  # its data matches the served chain (leaf, or a sent CA for 2/0)
    authenticates: bool  # considered, matched and every further check passed
    reason: str


def _selected(cert: x509.Certificate, der: bytes, selector: int) -> bytes:
    return der if selector == 0 else spki_of_cert(cert)


def selector_word(selector: int) -> str:
    """What a selector selects, in words."""
    return "public key" if selector == 1 else "certificate"


def own_value(selector: int, mtype: int, cert: x509.Certificate, der: bytes) -> str:
    """ "the leaf's SPKI sha256 is cd34…" style description of what a record should hold."""
    data = _selected(cert, der, selector)
    part = "SPKI" if selector == 1 else "certificate"
    if mtype == 0:
        return f"{part} is {short(data.hex())} ({len(data)} bytes)"
    return f"{part} {MTYPE_WORDS[mtype]} is {short(records.association_data(mtype, data).hex())}"


def _path_to(certs: Sequence[x509.Certificate], ta: int) -> list[int] | None:
    """Indices from the leaf (0) up to ``ta`` through the sent certificates, by signature."""
    frontier: list[list[int]] = [[0]]
    while frontier:
        path = frontier.pop(0)
        last = path[-1]
        if last == ta:
            return path
        if len(path) > len(certs):
            continue
        for j in range(1, len(certs)):
            if j not in path and issued_by(certs[last], certs[j]):
                frontier.append([*path, j])
    return None


def usability(rd: TLSA, smtp: bool) -> str | None:
    """Why a record is unusable here, or None."""
    if rd.usage not in records.USAGES:
        return f"unknown usage {rd.usage}: ignored by clients"
    if rd.selector not in records.SELECTORS:
        return f"unknown selector {rd.selector}: ignored by clients"
    if rd.mtype not in records.MTYPES:
        return f"unknown matching type {rd.mtype}: ignored by clients"
    want = records.DIGEST_LEN.get(rd.mtype)
    if want is not None and len(rd.cert) != want:
        return (
            f"malformed: matching type {rd.mtype} needs {want} bytes of data, "
            f"the record has {len(rd.cert)}; ignored by clients"
        )
    if rd.usage in (0, 1) and smtp:
        name = records.USAGES[rd.usage]
        return (
            f"usage {rd.usage} ({name}) is not used for SMTP (RFC 7672 §3.1.3): "
            "DANE SMTP clients ignore it"
        )
    return None


def agility(usable: Sequence[TLSA]) -> dict[tuple[int, int], int | None]:
    """(usage, selector) -> the digest matching type clients use (None: only Full records)."""
    best: dict[tuple[int, int], int | None] = {}
    for rd in usable:
        key = (rd.usage, rd.selector)
        cur = best.get(key)
        if rd.mtype in DIGEST_PREFERENCE and (
            cur is None or DIGEST_PREFERENCE.index(rd.mtype) < DIGEST_PREFERENCE.index(cur)
        ):
            best[key] = rd.mtype
        else:
            best.setdefault(key, None)
    return best


def check_record(
    rd: TLSA,
    text: str,
    considered: bool,
    strongest: int | None,
    certs: Sequence[x509.Certificate],
    chain_der: Sequence[bytes],
    host: str,
    now: dt.datetime,
    pkix: Callable[[], PkixResult],
) -> RecordCheck:
    """One usable record against the served chain (leaf first): does it match, and does it
    authenticate (usage 2: chained, valid, named; usages 0/1: ``pkix`` validates)."""
    sr = short_record(rd)

    def result(matched: bool, authenticates: bool, reason: str) -> RecordCheck:
        return RecordCheck(
            text, records.params_of(rd), True, considered, matched, authenticates, reason + ignored
        )

    ignored = (
        f"; ignored: a stronger {records.MTYPES[strongest]} record is published for "
        f"{rd.usage} {rd.selector} (RFC 7671 §9 digest agility)"
        if not considered and strongest is not None
        else ""
    )
    leaf, leaf_der = certs[0], chain_der[0]
    if rd.usage in (1, 3):
        matched = (
            records.association_data(rd.mtype, _selected(leaf, leaf_der, rd.selector)) == rd.cert
        )
        if matched:
            reason = f"{sr} matches the leaf's {selector_word(rd.selector)}"
            if rd.usage == 1:
                pkix_path, why = pkix()
                if pkix_path is None:
                    return result(True, False, f"{reason}, but {why}")
                reason += (
                    f", and the chain validates (PKIX) to {common_name(pkix_path[-1])!r} for "
                    f"{host.rstrip('.')}"
                )
            return result(True, considered, reason)
        own = own_value(rd.selector, rd.mtype, leaf, leaf_der)
        reason = (
            f"{sr} does not match: the leaf's {own}; this record is for another "
            + selector_word(rd.selector)
        )
        return result(False, False, reason)

    if rd.usage == 0:
        return _check_pkix_ta(rd, sr, considered, certs, host, pkix, result)

    # usage 2: a CA certificate the server sent
    if len(certs) < 2:
        reason = (
            f"{sr} can not match: the server sent only its leaf certificate, but "
            f"{records.USAGES[rd.usage]}({rd.usage}) needs the trust anchor in the served chain "
            "(RFC 7671 §5.2.2)"
        )
        return result(False, False, reason)
    depth = next(
        (
            i
            for i in range(1, len(certs))
            if records.association_data(rd.mtype, _selected(certs[i], chain_der[i], rd.selector))
            == rd.cert
        ),
        None,
    )
    if depth is None:
        reason = (
            f"{sr} matches none of the {len(certs) - 1} CA certificate(s) the server sent "
            f"({', '.join(repr(common_name(c)) for c in certs[1:])})"
        )
        return result(False, False, reason)
    ta = certs[depth]
    where = f"the served CA certificate {common_name(ta)!r} at depth {depth}"
    path = _path_to(certs, depth)
    if path is None:
        reason = f"{sr} matches {where}, but the leaf does not chain to it by signature"
        return result(True, False, reason)
    for i in path:
        bad = bad_extensions(certs[i])
        if bad is not None:
            reason = (
                f"{sr} matches {where}, but the extensions of {common_name(certs[i])!r} "
                f"(depth {i}) cannot be parsed ({bad}): clients reject the chain"
            )
            return result(True, False, reason)
    for i in path[:-1]:
        c = certs[i]
        if not not_before(c) <= now <= not_after(c):
            state = "expired" if now > not_after(c) else "is not yet valid"
            reason = (
                f"{sr} matches {where}, but {common_name(c)!r} (depth {i}) {state} "
                f"({not_before(c):%Y-%m-%d} to {not_after(c):%Y-%m-%d})"
            )
            return result(True, False, reason)
    names = dns_names(leaf)
    if not any(name_matches(n, host) for n in names):
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "") or "none"
        reason = (
            f"{sr} matches {where}, but the leaf's names ({shown}) do not include "
            f"{host.rstrip('.')}"
        )
        return result(True, False, reason)
    reason = (
        f"{sr} matches {where} (trust anchor); the chain verifies up to it and the leaf "
        f"names {host.rstrip('.')}"
    )
    return result(True, considered, reason)


def _check_pkix_ta(
    rd: TLSA,
    sr: str,
    considered: bool,
    certs: Sequence[x509.Certificate],
    host: str,
    pkix: Callable[[], PkixResult],
    result: Callable[[bool, bool, str], RecordCheck],
) -> RecordCheck:
    """PKIX-TA(0): the record names a CA certificate of the PKIX-validated path (RFC 6698
    §2.1.1), which may be a trust anchor of the store the server did not send."""
    from cryptography.hazmat.primitives.serialization import Encoding

    def matches(cert: x509.Certificate) -> bool:
        der = cert.public_bytes(Encoding.DER)
        return records.association_data(rd.mtype, _selected(cert, der, rd.selector)) == rd.cert

    path, why = pkix()
    if path is None:
        served = next((c for c in certs[1:] if matches(c)), None)
        if served is not None:
            return result(
                True, False, f"{sr} matches the served CA {common_name(served)!r}, but {why}"
            )
        return result(False, False, f"{sr} can not authenticate: {why}")
    depth = next((i for i in range(1, len(path)) if matches(path[i])), None)
    if depth is None:
        names = ", ".join(repr(common_name(c)) for c in path[1:])
        return result(
            False, False, f"{sr} matches none of the CA certificates of the PKIX path ({names})"
        )
    return result(
        True,
        considered,
        f"{sr} matches {common_name(path[depth])!r} at depth {depth} of the chain, which validates "
        f"(PKIX) for {host.rstrip('.')}",
    )
