"""The judge step of ``probe``: from what was gathered (the TLSA answer, the served chains) to
one verdict per address and one for the endpoint, with the exit code. Pure: no I/O.

An address's verdict (RFC 7672 §2.2) combines DNS and chain: a bogus TLSA answer fails whatever
the chain; an insecure one (unsigned zone, no AD bit) means no DANE; else the worst verdict of
:func:`tlsarotate.verdict.diagnose` over the RRset variants the servers serve. The endpoint:
``fails`` if any address fails, else ``none`` if any has no DANE, else ``authenticated`` if
every address is. Exit codes: 2 fails; 1 something could not be checked; 3 no DANE; 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.name

from tlsarotate import keytypes, records
from tlsarotate.pkix import Trust
from tlsarotate.served import ServedChain
from tlsarotate.tlsaanswer import TlsaAnswer
from tlsarotate.verdict import AUTHENTICATED, FAILS, NO_DANE, Verdict, diagnose

RANK = {AUTHENTICATED: 0, NO_DANE: 1, FAILS: 2}  # the worse verdict wins
ALL = "all"  # --key-type all: every key type the server serves (tlsarotate.keytypes)

# the chain of one address against each RRset variant (labels: the servers serving it)
Variants = list[tuple[tuple[str, ...], Verdict]]


@dataclass(frozen=True)
class Gathered:
    """What ``probe`` gathered: the judge's whole input."""

    host: str  # without the trailing dot
    port: int
    owner: dns.name.Name
    starttls: str  # the protocol used: smtp | imap | pop3 | none
    smtp: bool  # RFC 7672 rules apply (the protocol is SMTP)
    tlsa: TlsaAnswer
    served: Sequence[ServedChain]
    saved: Sequence[str | None] = ()  # where each served chain was saved (by index)
    errors: Sequence[str] = ()  # could not check (e.g. the address lookup)


@dataclass(frozen=True)
class NotServed:
    """A key type an address does not serve: offered alone, the handshake failed (after one
    taking what the server prefers worked)."""

    address: str
    port: int
    key_type: str  # rsa | ecdsa
    reason: str  # what the handshake offering only that type got


@dataclass
class AddressResult:
    served: ServedChain
    verdicts: Variants
    saved: str | None = None
    dane: str | None = None  # authenticated | fails | none; None: could not be judged
    summary: str | None = None  # why, in one line (DNS and chain together)

    @property
    def ok(self) -> bool:
        return self.dane == AUTHENTICATED

    @property
    def key_type(self) -> str | None:
        """The served leaf's key type (rsa, ecdsa; None: another, or nothing served), else
        the one the handshake offered alone."""
        if self.served.der:
            return keytypes.of_spki(records.spki_of_der(self.served.der[0]) or b"")
        return self.served.key_type


@dataclass
class ProbeReport:
    host: str
    port: int
    owner: dns.name.Name
    starttls: str
    tlsa: TlsaAnswer
    addresses: list[AddressResult]
    errors: list[str] = field(default_factory=list)
    smtp: bool = False  # RFC 7672 rules applied (the protocol is SMTP)
    key_types: str = ALL  # --key-type: all, rsa or ecdsa
    not_served: list[NotServed] = field(default_factory=list)  # (all) types an address lacks

    @property
    def dane(self) -> str | None:
        """The endpoint's verdict: ``fails`` if any address fails, else ``none`` if any
        address has no DANE, else ``authenticated`` if every address is; None: nothing
        could be judged."""
        known = [a.dane for a in self.addresses if a.dane is not None]
        if self.tlsa.problems or FAILS in known:
            return FAILS
        if NO_DANE in known or (self.tlsa.insecure and not known):
            return NO_DANE
        if known and len(known) == len(self.addresses):
            return AUTHENTICATED
        return None

    @property
    def incomplete(self) -> bool:
        return bool(
            self.errors
            or self.tlsa.errors
            or not self.addresses
            or any(a.dane is None for a in self.addresses)
        )

    @property
    def exit_code(self) -> int:
        """2 DANE fails (anywhere); 1 something could not be checked; 3 no DANE (a sender
        delivers without DANE authentication); 0 authenticated on every address."""
        if self.dane == FAILS:
            return 2
        if self.incomplete:
            return 1
        if self.dane == NO_DANE:
            return 3
        return 0


def address_verdict(tlsa: TlsaAnswer, verdicts: Variants) -> tuple[str | None, str | None]:
    """One verdict per address, from what DNS says and what the chain does (RFC 7672 §2.2):
    a bogus TLSA answer fails whatever the chain; an insecure one (unsigned zone, no AD bit)
    means no DANE; else the worst verdict over the RRset variants the servers serve."""
    worst = max((v for _, v in verdicts), key=lambda v: RANK[v.dane], default=None)
    if tlsa.problems:
        return FAILS, tlsa.problems[0]
    if tlsa.insecure:
        alone = f" (the records alone: {worst.summary})" if worst is not None else ""
        return NO_DANE, f"{tlsa.insecure[0]}{alone}"
    if worst is None:
        return None, None
    return worst.dane, worst.summary


def judge(g: Gathered, trust: Trust | None = None) -> ProbeReport:
    """Judge every served chain against every RRset variant (``trust``: PKIX anchors for
    usages 0/1 off SMTP, default :func:`tlsarotate.pkix.system_trust`)."""
    results: list[AddressResult] = []
    for i, s in enumerate(g.served):
        saved = g.saved[i] if i < len(g.saved) else None
        if not s.ok:
            results.append(AddressResult(s, [], saved))
            continue
        verdicts = [
            (labels, diagnose(s.der, rrset, g.host, smtp=g.smtp, trust=trust))
            for labels, rrset in g.tlsa.variants
        ]
        dane, summary = address_verdict(g.tlsa, verdicts)
        results.append(AddressResult(s, verdicts, saved, dane, summary))
    return ProbeReport(g.host, g.port, g.owner, g.starttls, g.tlsa, results, list(g.errors), g.smtp)
