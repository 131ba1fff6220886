"""The verdict on one live endpoint: the chain it served against the published TLSA records.

Pure, as :mod:`tlsarotate.check.judge`: ``verdict.diagnose`` reads the PKIX trust store only for
a usage 0/1 record off SMTP.
"""

from __future__ import annotations

import datetime as dt

from tlsarotate import keytypes, records
from tlsarotate.check.facts import Endpoint
from tlsarotate.check.report import CRITICAL, UNKNOWN, WARNING, EndpointReport, Finding
from tlsarotate.observation import Observation
from tlsarotate.served import format_endpoint, speaks_smtp
from tlsarotate.verdict import diagnose


def judge_endpoint(
    ep: Endpoint,
    obs: Observation | None,
    deployed_leaves: set[bytes],
    findings: list[Finding],
    now: float,
    slots: str = "",
) -> EndpointReport:
    """Does the chain the endpoint served pass DANE against every RRset the servers serve at
    its owner (and match every parameter combination present)? Appends the findings.

    An endpoint of one key type (``ep.key_type``) must serve the deployed certificate of that
    type's slot(s) (``deployed_leaves``, named by ``slots``); a handshake that the server
    refuses for that type means a configured certificate is not served: CRITICAL."""
    s = ep.served
    o = ep.owner.to_text()
    kind = keytypes.label(ep.key_type) if ep.key_type else ""
    label = f"{o} at {format_endpoint(ep.address, ep.port)}" + (f" ({kind})" if kind else "")
    if not s.ok:
        err = s.error or "no certificate"
        if ep.key_type and s.tls_refused:
            err = f"serves no {kind} certificate{slots and f' ({slots})'}: {err}"
        # not reached: "could not check" (UNKNOWN) rather than "DANE is broken" (CRITICAL)
        sev = UNKNOWN if s.unreachable else CRITICAL
        findings.append(Finding(sev, ep.service, f"{label}: {err}", owner=o, address=ep.address))
        return EndpointReport(ep, None if sev == UNKNOWN else False, err)
    if obs is None or all(srv.error for srv in obs.servers):
        return EndpointReport(ep, None, "TLSA records unknown (DNS not observed)")
    problems: list[str] = []
    summaries: list[str] = []
    when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    for labels, rrset in obs.variants(ep.owner):
        v = diagnose(s.der, rrset, ep.host, smtp=speaks_smtp(ep.starttls, ep.port), now=when)
        summaries.append(v.summary)
        suffix = "" if len(labels) == len(obs.servers) else f" (RRset of {', '.join(labels)})"
        if not v.ok:
            problems.append(v.summary + suffix)
        elif bad := records.unmatched_combos(rrset, s.der):
            combos = ", ".join(str(p) for p in bad)
            problems.append(
                f"no {combos} record matches the served chain{suffix}; "
                f"clients still accept it via another record, but every published parameter "
                "combination must match"
            )
    for p in problems:
        findings.append(Finding(CRITICAL, ep.service, f"{label}: {p}", owner=o, address=ep.address))
    if deployed_leaves and s.der[0] not in deployed_leaves:
        findings.append(
            Finding(
                WARNING,
                ep.service,
                f"{label} serves a certificate that is not the deployed file"
                f"{slots and f' of {slots}'} (reload pending?)",
                owner=o,
                address=ep.address,
            )
        )
    summary = problems[0] if problems else (summaries[0] if summaries else None)
    return EndpointReport(ep, not problems, summary)
