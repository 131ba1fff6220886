"""DANE verdicts: does a served chain satisfy a TLSA RRset, and why (RFC 6698, 7671, 7672).

:func:`diagnose` takes the chain as the server sent it (DER, leaf first), the TLSA records,
the host name and the PROTOCOL (``smtp=True`` for SMTP, whatever the port), and returns a
:class:`Verdict` with one of three outcomes, as RFC 7672 §2.2 defines them:

- ``authenticated``: a usable record authenticates the chain; a DANE client proceeds.
- ``fails``: usable records exist but none authenticates the chain; a DANE client refuses
  the server (an SMTP sender defers the mail).
- ``none``: no TLSA records, or none usable: "treated as if no TLSA records" (RFC 7672 §2.2,
  RFC 6698 §4.1): the client connects without DANE (an SMTP sender delivers with
  opportunistic TLS, unauthenticated).

Whether the records themselves are DNSSEC-secure is the caller's part (probe combines the two:
an insecure RRset is ``none``, a bogus one ``fails``). The reasons are sentences an operator can
act on. No I/O, except :func:`system_trust`, which reads the PKIX trust store once.

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
  to a trust anchor of ``trust`` (default :func:`system_trust`: ``$SSL_CERT_FILE`` or the
  system bundle) for the host name (cryptography's ``x509.verification``); PKIX-EE matches
  the leaf, PKIX-TA a CA certificate of the validated path. Without a trust store they can
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
import functools
import hashlib
import ipaddress
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.material import is_ca, issued_by, spki_of_cert

AUTHENTICATED = "authenticated"
FAILS = "fails"
NO_DANE = "none"
OUTCOMES = (AUTHENTICATED, FAILS, NO_DANE)
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
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
    dane: str  # authenticated | fails | none (see the module docstring)
    summary: str  # one line: why it passes, fails, or why DANE does not apply
    records: tuple[RecordCheck, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """DANE authenticates the chain."""
        return self.dane == AUTHENTICATED

    def to_json(self) -> dict[str, object]:
        return {
            "dane": self.dane,
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
            if j not in path and issued_by(certs[last], certs[j]):
                frontier.append([*path, j])
    return None


def _usability(rd: TLSA, smtp: bool) -> str | None:
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


def _pkix(
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


def diagnose(
    chain_der: Sequence[bytes],
    tlsa_records: Iterable[TLSA],
    host: str,
    *,
    smtp: bool,
    trust: Trust | None = None,
    now: dt.datetime | None = None,
) -> Verdict:
    """Would a DANE client accept ``chain_der`` for ``host``? ``smtp``: the protocol is SMTP
    (RFC 7672 rules: usages 0 and 1 unusable). ``trust``: PKIX anchors for usages 0/1 off
    SMTP (default :func:`system_trust`, read only when such a record is present)."""
    rds = sorted(set(tlsa_records), key=records.sort_key, reverse=True)
    now = now or dt.datetime.now(dt.timezone.utc)
    if not rds:
        return Verdict(NO_DANE, "no TLSA records: DANE does not protect this endpoint")
    if not chain_der:
        return Verdict(FAILS, "the server sent no certificate")
    certs = [x509.load_der_x509_certificate(d) for d in chain_der]
    leaf, leaf_der = certs[0], chain_der[0]

    unusable = {rd: why for rd in rds if (why := _usability(rd, smtp)) is not None}
    usable = [rd for rd in rds if rd not in unusable]
    best = _agility(usable)

    @functools.lru_cache(maxsize=1)
    def pkix() -> PkixResult:
        return _pkix(certs, host, now, trust or system_trust())

    checks: list[RecordCheck] = []
    for rd in rds:
        text = records.to_text(rd)
        if rd in unusable:
            checks.append(
                RecordCheck(
                    text,
                    records.params_of(rd),
                    False,
                    False,
                    False,
                    False,
                    f"{short_record(rd)}: {unusable[rd]}",
                )
            )
            continue
        strongest = best[(rd.usage, rd.selector)]
        considered = rd.mtype == 0 or strongest is None or rd.mtype == strongest
        checks.append(
            _check_record(rd, text, considered, strongest, certs, chain_der, host, now, pkix)
        )

    ok_checks = [c for c in checks if c.authenticates]
    warnings_: list[str] = []
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
                warnings_.append(
                    f"no usage {usage} selector {sel} record matches the served chain (clients "
                    f"still accept it via {ok_checks[0].params}); stale: {stale}{hint}"
                )
        if not_after(leaf) < now:
            warnings_.append(
                f"the leaf certificate expired on {not_after(leaf):%Y-%m-%d %H:%M} UTC "
                "(DANE-EE clients ignore expiry; PKIX clients will refuse it)"
            )
        return Verdict(AUTHENTICATED, summary, tuple(checks), tuple(warnings_))

    kept = [c for c in checks if c.considered]
    if not kept:
        # RFC 7672 §2.2 / RFC 6698 §4.1: an RRset without usable records counts as none
        reasons = "; ".join(f"{short_record(rd)}: {unusable[rd]}" for rd in rds)
        return Verdict(
            NO_DANE,
            f"no usable TLSA record ({reasons}); clients treat the RRset as if there were no "
            "TLSA records and connect without DANE (RFC 7672 §2.2)",
            tuple(checks),
        )
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
    return Verdict(FAILS, summary, tuple(checks), tuple(warnings_))


def _check_record(
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
                pkix_path, why = pkix()
                if pkix_path is None:
                    return result(True, False, f"{reason}, but {why}")
                reason += (
                    f", and the chain validates (PKIX) to {_cn(pkix_path[-1])!r} for "
                    f"{host.rstrip('.')}"
                )
            return result(True, considered, reason)
        own = _own_value(rd.selector, rd.mtype, leaf, leaf_der)
        reason = f"{sr} does not match: the leaf's {own}; this record is for another " + _what(
            rd.selector
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
    for i in path:
        bad = bad_extensions(certs[i])
        if bad is not None:
            reason = (
                f"{sr} matches {where}, but the extensions of {_cn(certs[i])!r} (depth {i}) "
                f"cannot be parsed ({bad}): clients reject the chain"
            )
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
        return records.digest(rd.mtype, _selected(cert, der, rd.selector)) == rd.cert

    path, why = pkix()
    if path is None:
        served = next((c for c in certs[1:] if matches(c)), None)
        if served is not None:
            return result(True, False, f"{sr} matches the served CA {_cn(served)!r}, but {why}")
        return result(False, False, f"{sr} can not authenticate: {why}")
    depth = next((i for i in range(1, len(path)) if matches(path[i])), None)
    if depth is None:
        names = ", ".join(repr(_cn(c)) for c in path[1:])
        return result(
            False, False, f"{sr} matches none of the CA certificates of the PKIX path ({names})"
        )
    return result(
        True,
        considered,
        f"{sr} matches {_cn(path[depth])!r} at depth {depth} of the chain, which validates "
        f"(PKIX) for {host.rstrip('.')}",
    )


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()
