"""DANE verdicts: does a served chain satisfy a TLSA RRset, and why (RFC 6698, 7671, 7672).

Pure functions, no I/O: :func:`diagnose` takes the chain as the server sent it (DER, leaf
first), the TLSA records, the port and the host name, and returns a :class:`Verdict` whose
reasons are sentences an operator can act on.

Rules followed
--------------
- DANE-EE(3) matches the leaf only; names and validity dates are ignored (RFC 7671 §5.1).
- DANE-TA(2) matches a CA certificate the server SENT (RFC 7671 §5.2.2: the trust anchor must be
  in the served chain); the chain must link the leaf to it by signature, the certificates below
  the trust anchor must be within their validity, and the leaf must name the host (subjectAltName
  dNSName, leftmost-label wildcards allowed; the subject CN only when there is no dNSName;
  RFC 7672 §3.2.3).
- PKIX-TA(0) / PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3; ports 25, 587, 465). On other
  ports they are matched like 2/3, with a note that PKIX validation is not checked here.
- Digest algorithm agility (RFC 7671 §9, as OpenSSL implements it): for each usage+selector,
  only records with the strongest digest present are considered, SHA2-512(2) > SHA2-256(1);
  Full(0) records are never discarded by agility. A record the client discards can not help,
  even if it would match; the verdict says so.
- A chain is accepted when at least one considered record authenticates it (what a DANE
  client does). Combinations with no matching record are listed as warnings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.material import is_ca, spki_of_cert

SMTP_PORTS = frozenset({25, 465, 587})
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


# ---------------------------------------------------------------------------------------------
# certificates


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


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """subjectAltName dNSNames, or the subject CN when there are none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if names:
        return names
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return tuple(str(a.value) for a in cns)


def describe(chain_der: Sequence[bytes]) -> list[CertInfo]:
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
                is_ca=is_ca(cert),
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


# ---------------------------------------------------------------------------------------------
# verdicts


@dataclass(frozen=True)
class RecordCheck:
    record: str  # "3 1 1 <hex>"
    params: records.Params
    usable: bool  # usage/selector/mtype supported and well-formed for this port
    considered: bool  # usable and kept by digest agility
    matched: bool  # its data matches the served chain (leaf, or a sent CA for 2/0)
    authenticates: bool  # considered, matched and every further check passed
    reason: str

    def to_json(self) -> dict[str, object]:
        return {
            "record": self.record,
            "usable": self.usable,
            "considered": self.considered,
            "matched": self.matched,
            "authenticates": self.authenticates,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str  # one line: why it passes, or why it fails
    records: tuple[RecordCheck, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "summary": self.summary,
            "records": [r.to_json() for r in self.records],
            "warnings": list(self.warnings),
        }


def _selected(cert: x509.Certificate, der: bytes, selector: int) -> bytes:
    return der if selector == 0 else spki_of_cert(cert)


def _what(selector: int) -> str:
    return "public key" if selector == 1 else "certificate"


def _own_value(selector: int, mtype: int, cert: x509.Certificate, der: bytes) -> str:
    """ "the leaf's SPKI sha256 is cd34…" style description of what a record should hold."""
    data = _selected(cert, der, selector)
    part = "SPKI" if selector == 1 else "certificate"
    if mtype == 0:
        return f"{part} is {short(data.hex())} ({len(data)} bytes)"
    return f"{part} {MTYPE_WORDS[mtype]} is {short(records.digest(mtype, data).hex())}"


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm
        return False
    return True


def _path(certs: Sequence[x509.Certificate], ta: int) -> list[int] | None:
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
            if j not in path and _issued_by(certs[last], certs[j]):
                frontier.append([*path, j])
    return None


def _usability(rd: TLSA, port: int) -> str | None:
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
    if rd.usage in (0, 1) and port in SMTP_PORTS:
        name = records.USAGES[rd.usage]
        return (
            f"usage {rd.usage} ({name}) is not used for SMTP (RFC 7672 §3.1.3): "
            "DANE SMTP clients ignore it"
        )
    return None


def _agility(usable: Sequence[TLSA]) -> dict[tuple[int, int], int | None]:
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


def diagnose(
    chain_der: Sequence[bytes],
    tlsa_records: Iterable[TLSA],
    port: int,
    host: str,
    now: dt.datetime | None = None,
) -> Verdict:
    """Would a DANE client (RFC 7671/7672) accept ``chain_der`` for ``host`` on ``port``?"""
    rds = sorted(set(tlsa_records), key=records.sort_key, reverse=True)
    now = now or dt.datetime.now(dt.timezone.utc)
    if not chain_der:
        return Verdict(False, "the server sent no certificate")
    if not rds:
        return Verdict(False, "no TLSA records: DANE does not protect this endpoint")
    certs = [x509.load_der_x509_certificate(d) for d in chain_der]
    leaf, leaf_der = certs[0], chain_der[0]

    unusable = {rd: why for rd in rds if (why := _usability(rd, port)) is not None}
    usable = [rd for rd in rds if rd not in unusable]
    best = _agility(usable)

    checks: list[RecordCheck] = []
    for rd in rds:
        text = records.to_text(rd)
        if rd in unusable:
            checks.append(
                RecordCheck(text, records.params_of(rd), False, False, False, False, unusable[rd])
            )
            continue
        strongest = best[(rd.usage, rd.selector)]
        considered = rd.mtype == 0 or strongest is None or rd.mtype == strongest
        checks.append(_check_record(rd, text, considered, strongest, certs, chain_der, host, now))

    ok_checks = [c for c in checks if c.authenticates]
    warnings: list[str] = []
    if ok_checks:
        summary = f"DANE ok: {ok_checks[0].reason}"
        # combinations present in the RRset that match nothing (stale records)
        for usage, sel in sorted(best, reverse=True):
            group = [
                c
                for rd, c in zip(rds, checks, strict=True)
                if (rd.usage, rd.selector) == (usage, sel) and c.considered
            ]
            if group and not any(c.authenticates for c in group):
                stale = ", ".join(short_record_text(c.record) for c in group)
                hint = ""
                if sel == 0 and any(
                    c.authenticates and c.params[:2] == (usage, 1) for c in ok_checks
                ):
                    hint = (
                        " (the key is unchanged: the certificate was renewed with the same key; "
                        f"{usage} 0 x records change on every renewal, {usage} 1 x do not)"
                    )
                warnings.append(
                    f"no usage {usage} selector {sel} record matches the served chain (clients "
                    f"still accept it via {ok_checks[0].params}); stale: {stale}{hint}"
                )
        if not_after(leaf) < now:
            warnings.append(
                f"the leaf certificate expired on {not_after(leaf):%Y-%m-%d %H:%M} UTC "
                "(DANE-EE clients ignore expiry; PKIX clients will refuse it)"
            )
        return Verdict(True, summary, tuple(checks), tuple(warnings))

    # failure: explain
    kept = [c for c in checks if c.considered]
    if not kept:
        reasons = "; ".join(f"{short_record(rd)}: {unusable[rd]}" for rd in rds)
        return Verdict(False, f"no usable TLSA record ({reasons})", tuple(checks))
    first = kept[0]
    matched_not_auth = [c for c in kept if c.matched]
    if matched_not_auth:
        summary = f"DANE fails: {matched_not_auth[0].reason}"
    elif all(c.params.usage in (1, 3) for c in kept):
        pub = ", ".join(short_record_text(c.record) for c in kept[:3])
        more = f" (and {len(kept) - 3} more)" if len(kept) > 3 else ""
        which = "belongs" if len(kept) == 1 else "belong"
        # what the leaf would have to be published as, in the first record's own terms
        own = "the leaf's " + _own_value(first.params.selector, first.params.mtype, leaf, leaf_der)
        summary = (
            f"no record matches: {own}; the published {pub}{more} {which} to another "
            f"{_what(first.params.selector)}"
        )
    else:
        summary = f"no record matches: {first.reason}"
    ignored_match = [c for c in checks if c.usable and not c.considered and c.matched]
    if ignored_match:
        c = ignored_match[0]
        u, sel = c.params.usage, c.params.selector
        summary += (
            f"; {short_record_text(c.record)} would match, but clients ignore it because "
            f"{u} {sel} {best[(u, sel)]} records are published (RFC 7671 §9 digest agility)"
        )
    return Verdict(False, summary, tuple(checks), tuple(warnings))


def _check_record(
    rd: TLSA,
    text: str,
    considered: bool,
    strongest: int | None,
    certs: Sequence[x509.Certificate],
    chain_der: Sequence[bytes],
    host: str,
    now: dt.datetime,
) -> RecordCheck:
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
        matched = records.digest(rd.mtype, _selected(leaf, leaf_der, rd.selector)) == rd.cert
        if matched:
            reason = f"{sr} matches the leaf's {_what(rd.selector)}"
            if rd.usage == 1:
                reason += " (PKIX validation against public CAs is not checked by tlsarotate)"
            return result(True, considered, reason)
        own = _own_value(rd.selector, rd.mtype, leaf, leaf_der)
        reason = f"{sr} does not match: the leaf's {own}; this record is for another " + _what(
            rd.selector
        )
        return result(False, False, reason)

    # usage 2 (and 0 off SMTP): a CA certificate the server sent
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
            if records.digest(rd.mtype, _selected(certs[i], chain_der[i], rd.selector)) == rd.cert
        ),
        None,
    )
    if depth is None:
        reason = (
            f"{sr} matches none of the {len(certs) - 1} CA certificate(s) the server sent "
            f"({', '.join(repr(_cn(c)) for c in certs[1:])})"
        )
        return result(False, False, reason)
    ta = certs[depth]
    where = f"the served CA certificate {_cn(ta)!r} at depth {depth}"
    path = _path(certs, depth)
    if path is None:
        reason = f"{sr} matches {where}, but the leaf does not chain to it by signature"
        return result(True, False, reason)
    for i in path[:-1]:
        c = certs[i]
        if not not_before(c) <= now <= not_after(c):
            state = "expired" if now > not_after(c) else "is not yet valid"
            reason = (
                f"{sr} matches {where}, but {_cn(c)!r} (depth {i}) {state} "
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
    if rd.usage == 0:
        reason += " (PKIX validation against public CAs is not checked by tlsarotate)"
    return result(True, considered, reason)


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()
