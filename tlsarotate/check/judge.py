"""The verdicts of ``tlsarotate check``: gathered facts in, a typed report out (no I/O).

For every service:

- every authoritative server (the observer; the service's ``nameservers`` when set) serves the
  TLSA RRset of every owner, validly signed (unless ``allow_unsigned``), with RRSIGs that do not
  expire within :data:`RRSIG_WARN_SECONDS`;
- the published RRset accepts each deployed certificate (every parameter combination present
  has a record matching it: :func:`tlsarotate.records.accepts`), and each configured parameter's
  record for it is published;
- every live endpoint serves a chain that a DANE client accepts
  (:func:`tlsarotate.verdict.diagnose`)
  AND that every present combination matches (``records.accepts``);
- the next certificate's records are published on every server
  (:func:`tlsarotate.check.readiness.swap_readiness`);
- a deployed certificate that expires within :data:`CERT_WARN_SECONDS` with no next one is a
  warning;
- the TLSRPT reports (``tlsrpt`` in the config) whose range ended within the window hold fewer
  failed sessions than ``warn`` (else WARNING) and ``crit`` (else CRITICAL); a report file
  that cannot be read, or a policy domain no service serves, is a warning;
- a service's TLSRPT record (``tlsrpt_record``), as its provider holds it, is the configured
  one (else WARNING).

``--next CERT`` (the gate) is CRITICAL when deploying CERT now would break DANE because one of
its records (for a configured parameter) is not published on every server.

The only file ``judge`` may read is the PKIX trust store, through ``verdict.diagnose``, and only
for a usage 0/1 record off SMTP.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from tlsarotate import keytypes, material, records, timefmt
from tlsarotate.certinfo import not_after
from tlsarotate.check.facts import CheckFacts, Endpoint, ServiceFacts, SlotFacts, TlsrptFacts
from tlsarotate.check.judge_alias import judge_aliases
from tlsarotate.check.judge_caset import judge_ca_set
from tlsarotate.check.judge_endpoint import judge_endpoint
from tlsarotate.check.readiness import (
    missing_on_servers,
    needed_records,
    next_unfit,
    swap_readiness,
)
from tlsarotate.check.report import (
    CRITICAL,
    UNKNOWN,
    WARNING,
    CertInfo,
    CertReport,
    CheckReport,
    EndpointReport,
    Finding,
    NextGate,
    OwnerReport,
    PerfData,
    ServiceReport,
    TlsrptSummary,
)
from tlsarotate.config import Service
from tlsarotate.dane import short
from tlsarotate.observation import Observation

CERT_WARN_SECONDS = 14 * 86400  # deployed certificate expires soon and no next one is set
RRSIG_WARN_SECONDS = 3 * 86400  # an RRSIG over a TLSA answer expires soon


def judge(facts: CheckFacts) -> CheckReport:
    now = facts.now
    findings: list[Finding] = [
        Finding(UNKNOWN, sf.service.name, f"{host}: {err}")
        for sf in facts.services
        for host, err in sf.address_errors
    ]
    services: list[ServiceReport] = []
    gate_missing: list[str] = []
    unpublished = 0
    rrsig_min: float | None = None
    cert_min: float | None = None
    cert_alone_min: float | None = None  # of the certificates with no next one (warned about)
    for sf in facts.services:
        s, obs = sf.service, sf.observation
        if obs is None:
            findings.append(
                Finding(UNKNOWN, s.name, f"zone {s.zone}: {sf.observe_error or 'no answer'}")
            )
        else:
            f_dns, rmin = _dns_findings(s, obs, now)
            findings += f_dns
            rrsig_min = _earliest(rrsig_min, rmin)
        if sf.state_error is not None:
            findings.append(Finding(UNKNOWN, s.name, f"rollover state: {sf.state_error}"))
        certs: list[CertReport] = []
        bad_owners: set[str] = set()
        deployed_leaves: set[bytes] = set()
        typed: dict[str | None, list[SlotFacts]] = {}  # the readable slots by key type
        for slot in sf.slots:
            cert, exp, alone, failed = _judge_slot(facts, sf, slot, findings)
            certs.append(cert)
            bad_owners |= failed
            unpublished += len(failed)  # per certificate: two failing at one owner count 2
            if slot.deployed is not None:
                deployed_leaves.add(slot.deployed.chain_der[0])
                typed.setdefault(keytypes.of_spki(slot.deployed.spki), []).append(slot)
            cert_min = _earliest(cert_min, exp)
            cert_alone_min = _earliest(cert_alone_min, exp if alone else None)
        gate_missing += _gate_missing(facts, sf, findings)
        findings += _tlsrpt_record_findings(sf)
        endpoints = tuple(
            _judge_typed(ep, obs, deployed_leaves, typed, findings, now) for ep in sf.endpoints
        )
        aliases = judge_aliases(s, obs, findings)
        report = _service_report(sf, certs, bad_owners, endpoints)
        services.append(replace(report, aliases=aliases, ca_set=judge_ca_set(sf, now, findings)))

    gate = None
    if facts.gate_cert is not None:
        assert facts.gate_file is not None
        gate = NextGate(facts.gate_file, not gate_missing, tuple(gate_missing))
        for m in gate_missing:
            findings.append(
                Finding(
                    CRITICAL,
                    ",".join(sf.service.name for sf in facts.services),
                    f"deploying {facts.gate_file} now would break DANE: {m}",
                )
            )
    tlsrpt = _judge_tlsrpt(facts.tlsrpt, findings) if facts.tlsrpt is not None else None
    eps = [ep for r in services for ep in r.endpoints]
    judged = all(_publication_judged(r.dns_answered, r.certs) for r in services)

    def seconds_left(t: float | None) -> int | None:
        # floor, not int(): -0.5 s left is expired (CRITICAL), and must not print as 0
        return math.floor(t - now) if t is not None else None

    perf = PerfData(
        endpoints=len(eps),
        failing=sum(1 for ep in eps if ep.ok is False),
        unknown=sum(1 for ep in eps if ep.ok is None),
        owners=sum(len(sf.service.owners) for sf in facts.services),
        unpublished=unpublished if judged else None,
        warnings=sum(1 for f in findings if f.severity == WARNING),
        criticals=sum(1 for f in findings if f.severity == CRITICAL),
        cert_expiry_min_seconds=seconds_left(cert_min),
        cert_expiry_no_next_min_seconds=seconds_left(cert_alone_min),
        rrsig_expiry_min_seconds=seconds_left(rrsig_min),
        tlsrpt_failed=tlsrpt.total if tlsrpt is not None else None,
        broken_aliases=_broken_aliases(services),
        key_types_missing=_key_types_missing(eps),
    )
    return CheckReport(now, tuple(services), tuple(findings), gate, perf, tlsrpt)


def _broken_aliases(services: Sequence[ServiceReport]) -> int | None:
    """How many host TLSA names do not lead to their shared owner (None: no service has one,
    or one was not known and none is broken)."""
    aliases = [a for r in services for a in r.aliases]
    if not aliases:
        return None
    broken = sum(1 for a in aliases if a.ok is False)
    return broken if broken or all(a.ok for a in aliases) else None


def _key_types_missing(eps: Sequence[EndpointReport]) -> int | None:
    """Handshakes offering one configured key type that the server refused (None: none was
    restricted to a key type)."""
    typed = [er.endpoint for er in eps if er.endpoint.key_type is not None]
    return sum(1 for ep in typed if ep.served.tls_refused) if typed else None


def _judge_typed(
    ep: Endpoint,
    obs: Observation | None,
    deployed_leaves: set[bytes],
    typed: dict[str | None, list[SlotFacts]],
    findings: list[Finding],
    now: float,
) -> EndpointReport:
    """An endpoint of one key type (RSA and ECDSA slots side by side) must serve that type's
    slot; any other endpoint one of the deployed certificates."""
    if ep.key_type is None:
        return judge_endpoint(ep, obs, deployed_leaves, findings, now)
    mine = typed.get(ep.key_type, [])
    leaves = {sl.deployed.chain_der[0] for sl in mine if sl.deployed is not None}
    names = ", ".join(f"slot {sl.slot.name!r}" for sl in mine)
    return judge_endpoint(ep, obs, leaves, findings, now, names)


TLSRPT_SHOWN = 3  # failure groups named in the finding (the rest are counted)


def _judge_tlsrpt(t: TlsrptFacts, findings: list[Finding]) -> TlsrptSummary:
    """TLSRPT failed sessions against the thresholds (findings are added before the perfdata
    counts warnings and criticals)."""
    cfg = t.config
    summary = TlsrptSummary(
        cfg.window, t.reports, tuple((*k, n) for k, n in t.failed.items()), cfg.warn, cfg.crit
    )
    findings += [Finding(WARNING, "tlsrpt", f"TLSRPT report skipped: {p}") for p in t.problems]
    total = summary.total
    if total >= cfg.warn:
        groups = sorted(summary.failed, key=lambda g: -g[3])
        shown = "; ".join(
            f"{n} {rt} on {mx or 'an unnamed MX'} ({d})" for d, mx, rt, n in groups[:TLSRPT_SHOWN]
        )
        more = f" (+{len(groups) - TLSRPT_SHOWN} more)" if len(groups) > TLSRPT_SHOWN else ""
        level = CRITICAL if total >= cfg.crit else WARNING
        bound = f"crit {cfg.crit}" if level == CRITICAL else f"warn {cfg.warn}"
        findings.append(
            Finding(
                level,
                "tlsrpt",
                f"TLSRPT: {total} failed session(s) in the last {timefmt.duration(cfg.window)} "
                f"({bound}): {shown}{more}; see tlsarotate reports",
            )
        )
    return summary


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else (a if b is None else min(a, b))


def _expiry(m: material.Material) -> float | None:
    return not_after(m.leaf).timestamp() if m.leaf is not None else None


def _judge_slot(
    facts: CheckFacts,
    sf: ServiceFacts,
    slot: SlotFacts,
    findings: list[Finding],
) -> tuple[CertReport, float | None, bool, set[str]]:
    """One certificate slot: its report, the deployed certificate's expiry, whether it has no
    next one (so that expiry is warned about), and the owners whose records reject it."""
    s, name, now = sf.service, slot.slot.name, facts.now
    dep = slot.deployed
    if dep is None:
        findings.append(Finding(UNKNOWN, s.name, slot.deployed_error or "unreadable"))
        return CertReport(name, None), None, False, set()
    exp = _expiry(dep)
    deployed = CertInfo(slot.slot.deployed.describe(), dep.spki_sha256, exp)
    if slot.next_error:
        findings.append(Finding(WARNING, s.name, slot.next_error))
    nxt = slot.next
    lacking = "and no next certificate is configured"
    if nxt is not None and nxt.same_as(dep):
        nxt = None  # already deployed (as after every rollover): nothing is next
        lacking = "and the next certificate is the deployed one; nothing to roll over"
    if exp is not None and nxt is None:
        left = exp - now
        if left < CERT_WARN_SECONDS:
            when = (
                f"expired {timefmt.duration(-left)} ago"
                if left < 0
                else f"expires in {timefmt.duration(left)}"
            )
            findings.append(
                Finding(
                    WARNING,
                    s.name,
                    f"certificate {name!r} ({slot.slot.deployed.describe()}) {when} {lacking}",
                )
            )
    next_info = None
    if nxt is not None and slot.slot.next is not None:
        next_file = slot.slot.next.describe()
        next_info = CertInfo(next_file, nxt.spki_sha256, _expiry(nxt))
        findings += [
            Finding(
                WARNING,
                s.name,
                f"next certificate {name!r} ({next_file}) {u.reason}"
                + ("; it will not be swapped in" if u.blocking else ""),
            )
            for u in next_unfit(s, nxt, now)
        ]
    readiness = None
    failed: set[str] = set()
    obs = sf.observation
    if obs is not None:
        failed = _deployed_findings(s, name, dep, obs, findings)
        if nxt is not None:
            readiness = swap_readiness(
                s, nxt, obs, sf.state, now, facts.safety_margin, sf.slot_inputs, sf.ca_set
            )
    return CertReport(name, deployed, next_info, readiness), exp, nxt is None, failed


def _gate_missing(facts: CheckFacts, sf: ServiceFacts, findings: list[Finding]) -> list[str]:
    """Why deploying the ``--next`` certificate would break this service (empty: it would not)."""
    gate, s, obs = facts.gate_cert, sf.service, sf.observation
    if gate is None:
        return []
    missing: list[str] = []
    if gate.leaf is not None:  # (a bare key: records only)
        for u in next_unfit(s, gate, facts.now):
            if u.blocking:
                missing.append(f"service {s.name}: the certificate {u.reason}")
            else:
                findings.append(Finding(WARNING, s.name, f"{facts.gate_file}: {u.reason}"))
    if obs is not None:
        needed, problems = needed_records(s, gate)
        missing += problems + missing_on_servers(obs, needed)
    else:
        missing.append(f"service {s.name}: {sf.observe_error or 'DNS not observed'}")
    return missing


def _dns_answered(obs: Observation | None) -> bool:
    """Did every authoritative server of the zone answer (so what they serve is known, not
    assumed)?"""
    return obs is not None and bool(obs.servers) and all(not s.error for s in obs.servers)


def _publication_judged(dns_answered: bool, certs: Sequence[CertReport]) -> bool:
    """Could the published records be judged against every deployed certificate: every
    server answered and every deployed certificate was read?"""
    return dns_answered and all(c.deployed is not None for c in certs)


def _service_report(
    sf: ServiceFacts,
    certs: list[CertReport],
    bad_owners: set[str],
    endpoints: tuple[EndpointReport, ...],
) -> ServiceReport:
    obs = sf.observation
    answered = _dns_answered(obs)
    judged = _publication_judged(answered, certs)
    owners = []
    for owner in sf.service.owners:
        bad = owner.to_text() in bad_owners
        vals = [s.signed.get(owner) for s in obs.servers if not s.error] if obs else []
        signed = (
            False
            if False in vals
            else (True if answered and all(v is True for v in vals) else None)
        )
        owners.append(OwnerReport(owner, False if bad else (True if judged else None), signed))
    return ServiceReport(
        service=sf.service,
        observation=obs,
        observe_error=sf.observe_error,
        dns_answered=answered,
        owners=tuple(owners),
        endpoints=endpoints,
        certs=tuple(certs),
        tlsrpt_record=sf.tlsrpt_record,
    )


def _tlsrpt_record_findings(sf: ServiceFacts) -> list[Finding]:
    """A TLSRPT record (``tlsrpt_record``) that is not the configured one is a warning: senders
    mail their reports elsewhere, or not at all; one that could not be read too."""
    name = sf.service.name
    if sf.tlsrpt_record_error is not None:
        return [Finding(WARNING, name, f"tlsrpt_record: {sf.tlsrpt_record_error}")]
    p = sf.tlsrpt_record
    if p is None or not p.pending:
        return []
    return [
        Finding(
            WARNING,
            name,
            f"tlsrpt_record: {p.summary()}; tlsarotate apply writes it",
            owner=p.name.to_text(),
        )
    ]


def _dns_findings(s: Service, obs: Observation, now: float) -> tuple[list[Finding], float | None]:
    out: list[Finding] = []
    rmin: float | None = None
    if not obs.servers:
        out.append(Finding(UNKNOWN, s.name, f"no authoritative servers found for {s.zone}"))
    for srv in obs.servers:
        if srv.error:
            out.append(Finding(UNKNOWN, s.name, f"{srv.label}: {srv.error}"))
        rmin = _earliest(rmin, srv.min_rrsig_expiry)
    if obs.zone_signed is False and not s.allow_unsigned:
        out.append(
            Finding(
                CRITICAL,
                s.name,
                f"zone {s.zone} is not DNSSEC-signed: DANE clients ignore its TLSA records",
            )
        )
    for owner in s.owners:
        o = owner.to_text()
        variants = obs.variants(owner)
        if len(variants) > 1:
            desc = "; ".join(f"{', '.join(lbl)}: {len(rr)} record(s)" for lbl, rr in variants)
            out.append(Finding(WARNING, s.name, f"{o}: servers disagree ({desc})", owner=o))
        if not s.allow_unsigned:
            for srv in obs.servers:
                if not srv.error and srv.signed.get(owner) is False:
                    why = f" ({srv.sig_problem})" if srv.sig_problem else ""
                    out.append(
                        Finding(
                            CRITICAL, s.name, f"{o}: no valid RRSIG on {srv.label}{why}", owner=o
                        )
                    )
    if rmin is not None:
        left = rmin - now
        if left < 0:
            out.append(
                Finding(
                    CRITICAL,
                    s.name,
                    f"zone {s.zone}: an RRSIG expired {timefmt.duration(left)} ago",
                )
            )
        elif left < RRSIG_WARN_SECONDS:
            out.append(
                Finding(
                    WARNING, s.name, f"zone {s.zone}: an RRSIG expires in {timefmt.duration(left)}"
                )
            )
    return out, rmin


def _deployed_findings(
    s: Service, slot: str, dep: material.Material, obs: Observation, findings: list[Finding]
) -> set[str]:
    """The published RRsets against a deployed certificate; returns the owners that fail."""
    bad_owners: set[str] = set()
    needed, problems = needed_records(s, dep)
    for p in problems:
        findings.append(Finding(WARNING, s.name, f"certificate {slot!r}: {p}"))
    for owner in s.owners:
        o = owner.to_text()
        failed = False
        for labels, rrset in obs.variants(owner):
            where = ", ".join(labels)
            if not rrset:
                findings.append(
                    Finding(CRITICAL, s.name, f"{o}: no TLSA records on {where}", owner=o)
                )
                failed = True
                continue
            bad = records.unmatched_combos(rrset, dep.chain_der)  # deployed: always a chain
            if bad:
                combos = ", ".join(str(p) for p in bad)
                findings.append(
                    Finding(
                        CRITICAL,
                        s.name,
                        f"{o}: the deployed certificate {slot!r} (SPKI {short(dep.spki_sha256)}) "
                        f"matches no {combos} record served by {where}",
                        owner=o,
                    )
                )
                failed = True
        missing = missing_on_servers(obs, [(ow, rd) for ow, rd in needed if ow == owner])
        for m in missing:
            findings.append(Finding(WARNING, s.name, f"certificate {slot!r}: {m}", owner=o))
        if failed:
            bad_owners.add(o)
    return bad_owners
