"""The DANE verdict: does a served chain satisfy a TLSA RRset, and why (RFC 6698, 7671, 7672).

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
act on. No I/O, except :func:`tlsarotate.pkix.system_trust` (default ``trust``), which reads
the PKIX trust store once.

The per-record rules are :mod:`tlsarotate.dane`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.certinfo import not_after
from tlsarotate.dane import (
    RecordCheck,
    agility,
    check_record,
    own_value,
    selector_word,
    short_record,
    short_record_text,
    usability,
)
from tlsarotate.pkix import PkixResult, Trust, system_trust, validate

AUTHENTICATED = "authenticated"
FAILS = "fails"
NO_DANE = "none"


@dataclass(frozen=True)
class Verdict:
    """The DANE outcome for one chain against one RRset, each record's check, and warnings."""

    dane: str  # authenticated | fails | none (see the module docstring)
    summary: str  # one line: why it passes, fails, or why DANE does not apply
    records: tuple[RecordCheck, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """DANE authenticates the chain."""
        return self.dane == AUTHENTICATED


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

    unusable = {rd: why for rd in rds if (why := usability(rd, smtp)) is not None}
    usable = [rd for rd in rds if rd not in unusable]
    best = agility(usable)

    @functools.lru_cache(maxsize=1)
    def pkix() -> PkixResult:
        return validate(certs, host, now, trust or system_trust())

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
            check_record(rd, text, considered, strongest, certs, chain_der, host, now, pkix)
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
        own = "the leaf's " + own_value(first.params.selector, first.params.mtype, leaf, leaf_der)
        summary = (
            f"no record matches: {own}; the published {pub}{more} {which} to another "
            f"{selector_word(first.params.selector)}"
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
