"""The typed result of ``tlsarotate check``: findings, per-service verdicts, perfdata.

Built by :func:`tlsarotate.check.judge.judge`, read by the renderers (one module per output
format). Severities are Nagios' exit codes; the report's status is the worst finding's, with
CRITICAL winning over UNKNOWN and UNKNOWN over WARNING.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.name

from tlsarotate.check.facts import Endpoint
from tlsarotate.config import Service
from tlsarotate.observation import Observation
from tlsarotate.tlsrpt.record import TxtPlan

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Finding:
    severity: int
    service: str
    message: str
    owner: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class SwapReadiness:
    """Is it safe to install the next certificate now? ``published``: every record it needs
    (one per configured parameter, at every owner) is served by every authoritative server;
    ``ready``: that, and the planner agrees caches can no longer hold an RRset without them."""

    ready: bool
    published: bool
    missing: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class CertInfo:
    file: str
    spki_sha256: str
    not_after: float | None  # Unix time (None: a bare key)


@dataclass(frozen=True)
class CertReport:
    slot: str
    deployed: CertInfo | None  # None: the deployed file could not be read
    next: CertInfo | None = None  # None: none configured, unreadable or already deployed
    swap_readiness: SwapReadiness | None = None  # None: no next one, or DNS not observed


@dataclass(frozen=True)
class EndpointReport:
    endpoint: Endpoint
    ok: bool | None  # None: could not be judged (unreachable, TLSA records unknown)
    summary: str | None


@dataclass(frozen=True)
class OwnerReport:
    """One TLSA owner's yes/no verdicts; None where it is not known (never guessed)."""

    name: dns.name.Name
    # every server serves records accepting every deployed certificate (a signing problem is
    # ``signed``'s); None: a server did not answer or a deployed certificate was not read
    published: bool | None
    signed: bool | None  # every answer validates; None: not known or not checked


@dataclass(frozen=True)
class AliasReport:
    """A host's TLSA name under ``shared_owner``: does it lead there (a CNAME chain, signed) on
    every server? ``ok`` None: a server did not answer (and none showed a problem)."""

    name: dns.name.Name
    owner: dns.name.Name
    ok: bool | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceReport:
    service: Service
    observation: Observation | None
    observe_error: str | None
    dns_answered: bool  # every authoritative server of the zone answered
    owners: tuple[OwnerReport, ...]
    endpoints: tuple[EndpointReport, ...]
    certs: tuple[CertReport, ...]
    tlsrpt_record: TxtPlan | None = None  # the TLSRPT record, read and compared (tlsrpt_record)
    aliases: tuple[AliasReport, ...] = ()  # shared_owner: each host's CNAME to it
    ca_set: CaSetReport | None = None  # None: no ca_set configured


@dataclass(frozen=True)
class CaPinReport:
    """One CA of a service's ``ca_set``."""

    subject: str
    file: str
    not_after: float  # Unix time
    # every server serves its record for each usage 0/2 parameter at every owner (None: a
    # server did not answer)
    published: bool | None


@dataclass(frozen=True)
class CaSetReport:
    """A service's ``ca_set`` judged (tlsarotate.check.judge_caset)."""

    cas: tuple[CaPinReport, ...]
    # slot -> whether its deployed certificate's issuer is in the set (a slot not read: absent)
    issuer_in_set: tuple[tuple[str, bool], ...]
    # (owner, record) published for a CA no longer in the set, awaiting retirement
    retired: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NextGate:
    """``--next CERT``: would deploying CERT now keep DANE working?"""

    file: str
    ok: bool
    missing: tuple[str, ...]


@dataclass(frozen=True)
class PerfData:
    """The counts and the earliest expiries. An int field is None when it is not known."""

    endpoints: int
    failing: int
    unknown: int
    owners: int
    unpublished: int | None  # None: a server did not answer (a 0 would claim "published")
    warnings: int
    criticals: int
    cert_expiry_min_seconds: int | None  # earliest deployed certificate
    cert_expiry_no_next_min_seconds: int | None  # ... of those with no next one
    rrsig_expiry_min_seconds: int | None
    tlsrpt_failed: int | None = None  # TLSRPT failed sessions in the window (None: not read)
    # shared_owner: host TLSA names not leading to it (None: no shared owner, or not known)
    broken_aliases: int | None = None
    # handshakes of a configured key type (RSA and ECDSA slots side by side) that the server
    # refused: that certificate is not served (None: no service has slots of both types)
    key_types_missing: int | None = None


@dataclass(frozen=True)
class TlsrptSummary:
    """The TLSRPT failed sessions within the window (``tlsrpt`` in the config)."""

    window: float  # seconds
    reports: int
    failed: tuple[tuple[str, str, str, int], ...]  # (policy domain, MX, result type, sessions)
    warn: int
    crit: int

    @property
    def total(self) -> int:
        return sum(n for *_, n in self.failed)


@dataclass(frozen=True)
class CheckReport:
    checked_at: float
    services: tuple[ServiceReport, ...]
    findings: tuple[Finding, ...]
    next_gate: NextGate | None
    perf: PerfData
    tlsrpt: TlsrptSummary | None = None  # None: no reports directory configured

    @property
    def exit_code(self) -> int:
        sev = {f.severity for f in self.findings}
        for s in (CRITICAL, UNKNOWN, WARNING):
            if s in sev:
                return s
        return OK

    @property
    def status(self) -> str:
        return STATUS[self.exit_code]

    def summary(self) -> str:
        """The Nagios status text (one line, no "|")."""
        n = self.perf.endpoints
        failing = self.perf.failing
        code = self.exit_code
        parts: list[str] = []
        if failing:
            parts.append(f"{failing} of {n} endpoints fail DANE")
        worst = [f for f in self.findings if f.severity == code]
        other = [f for f in worst if f.address is None or not failing]
        if code == OK:
            what = f"{n} endpoints pass DANE" if n else "DNS matches the certificates"
            parts.append(f"{what}, {self.perf.owners} owner(s) published and signed")
        elif other:
            parts.append(
                other[0].message + (f" (+{len(other) - 1} more)" if len(other) > 1 else "")
            )
        text = "; ".join(parts)
        return text.replace("|", "/").replace("\n", " ")
