"""What a set of ingested TLSRPT documents says: the valid reports, every failure correlated
with the rollover history, the failed sessions per policy domain, MX and result type, and one
line per input or policy that was skipped. Pure: the documents and states are read by the
caller (:mod:`.ingest`, the state store)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tlsarotate.state import State
from tlsarotate.tlsrpt.correlate import Correlation, correlate, service_of
from tlsarotate.tlsrpt.model import Report
from tlsarotate.tlsrpt.validate import ReportInvalid, foreign_policies, parse_report, served_domains

if TYPE_CHECKING:  # (the config package reads files; this module only reads its dataclasses)
    from tlsarotate.config import Service

#: (policy domain, receiving MX, result type)
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Analysis:
    reports: tuple[Report, ...]
    correlations: tuple[Correlation, ...]
    failed: Mapping[Key, int]  # failed sessions of the served policies
    problems: tuple[str, ...]  # one line each: an input or policy skipped


def domains_of(services: Iterable[Service]) -> dict[str, str]:
    """Policy domain or MX host -> the service serving it."""
    return served_domains((s.name, s.zone.to_text(), s.hosts) for s in services)


def reports_of(
    documents: Sequence[tuple[str, Any]], served: Mapping[str, str], since: float | None = None
) -> tuple[list[Report], list[str]]:
    """The valid reports among ``documents`` (source, decoded JSON) whose range ends at or after
    ``since``, with the policies a service serves; one line per document that is not a report
    and per policy no service serves (a report with none of ours is left out)."""
    reports: list[Report] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for source, doc in documents:
        try:
            rep = parse_report(doc, source)
        except ReportInvalid as e:
            problems.append(f"{source}: not an RFC 8460 report: {e}")
            continue
        if since is not None and rep.end < since:
            continue
        key = (rep.organization, rep.report_id)
        if rep.report_id and key in seen:
            problems.append(f"{source}: report {rep.report_id!r} was already read; skipped")
            continue
        seen.add(key)
        problems += [f"{source}: {p}" for p in foreign_policies(rep, served)]
        ours = tuple(p for p in rep.policies if p.policy_domain in served)
        if ours or not rep.policies:
            reports.append(replace(rep, policies=ours))
    return reports, problems


def failed_sessions(reports: Iterable[Report], served: Mapping[str, str]) -> dict[Key, int]:
    """Failed sessions per (policy domain, MX, result type), in the policies a service serves."""
    out: dict[Key, int] = {}
    for rep in reports:
        for p in rep.policies:
            for f in p.failures:
                if service_of(p, f, served) is None:
                    continue
                key = (p.policy_domain, f.receiving_mx_hostname or "", f.result_type)
                out[key] = out.get(key, 0) + f.sessions
    return dict(sorted(out.items()))


def analyse(
    documents: Sequence[tuple[str, Any]],
    problems: Sequence[str],
    services: Sequence[Service],
    states: Mapping[str, State],
) -> Analysis:
    served = domains_of(services)
    reports, bad = reports_of(documents, served)
    reports.sort(key=lambda r: (r.start, r.organization, r.source))
    return Analysis(
        reports=tuple(reports),
        correlations=tuple(c for r in reports for c in correlate(r, served, states)),
        failed=failed_sessions(reports, served),
        problems=(*problems, *bad),
    )
