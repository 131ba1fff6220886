"""``tlsarotate check`` (``--output text``): a human-readable report per service, then every
problem, worst first, then the Nagios status line."""

from __future__ import annotations

from tlsarotate import keytypes, timefmt
from tlsarotate.check.report import CRITICAL, OK, STATUS, UNKNOWN, WARNING, CheckReport
from tlsarotate.served import format_endpoint

_RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}  # for people: CRITICAL first


def _rank(sev: int) -> int:
    return _RANK[sev]


def render(rep: CheckReport) -> str:
    out = []
    for r in rep.services:
        out.append(f"service {r.service.name} (zone {r.service.zone}):")
        for owner in r.service.owners:
            mine = [
                f
                for f in rep.findings
                if f.service == r.service.name and f.owner == owner.to_text()
            ]
            state = max((f.severity for f in mine), default=OK, key=_rank)
            out.append(f"  {STATUS[state]:<8} {owner}")
        for a in r.aliases:
            state = OK if a.ok else (UNKNOWN if a.ok is None else CRITICAL)
            out.append(f"  {STATUS[state]:<8} {a.name} CNAME -> {a.owner}")
        for er in r.endpoints:
            ep = er.endpoint
            est = "OK" if er.ok else ("UNKNOWN" if er.ok is None else "CRITICAL")
            kind = f" ({keytypes.label(ep.key_type)})" if ep.key_type else ""
            out.append(
                f"  {est:<8} {ep.owner} at {format_endpoint(ep.address, ep.port)}{kind}: "
                f"{er.summary}"
            )
        for c in r.certs:
            sr = c.swap_readiness
            if sr is not None:
                verdict = f"yes ({sr.detail})" if sr.ready else f"no, {sr.detail}"
                out.append(f"  next certificate {c.slot!r}: safe to swap now: {verdict}")
                for m in sr.missing:
                    out.append(f"    missing: {m}")
    if rep.next_gate is not None:
        out.append(
            f"next certificate {rep.next_gate.file}: "
            + (
                "all its records are published on every server"
                if rep.next_gate.ok
                else "NOT safe to deploy"
            )
        )
    t = rep.tlsrpt
    if t is not None:
        out.append(
            f"TLSRPT: {t.reports} report(s) in the last {timefmt.duration(t.window)}, "
            f"{t.total} failed session(s)"
        )
        for d, mx, rt, n in t.failed:
            out.append(f"  {n:>6} {rt} on {mx or 'an unnamed MX'} ({d})")
    problems = sorted(rep.findings, key=lambda f: -_rank(f.severity))
    if problems:
        out.append("")
    for f in problems:
        out.append(f"{STATUS[f.severity]}: {f.message}")
    out.append("")
    out.append(f"TLSAROTATE {rep.status} - {rep.summary()}")
    return "\n".join(out) + "\n"
