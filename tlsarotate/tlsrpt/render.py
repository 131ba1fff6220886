"""``tlsarotate reports`` output: text for people, one JSON document for programs."""

from __future__ import annotations

import json

from tlsarotate import timefmt
from tlsarotate.tlsrpt.summary import Analysis


def text(a: Analysis) -> str:
    out: list[str] = []
    for r in a.reports:
        out.append(
            f"report {r.report_id or '(no id)'} from {r.organization or '(unnamed)'}, "
            f"{timefmt.iso(r.start)} to {timefmt.iso(r.end)} ({r.source}):"
        )
        for p in r.policies:
            out.append(
                f"  {p.policy_type} policy for {p.policy_domain}: "
                f"{p.successful} successful, {p.failed} failed session(s)"
            )
    if a.correlations:
        out.append("")
        out.append("failures:")
        out += [f"  {c.text}" for c in a.correlations]
    total = sum(a.failed.values())
    out.append("")
    out.append(
        f"{len(a.reports)} report(s), {total} failed session(s)"
        + (f", {len(a.problems)} input(s) or policies skipped" if a.problems else "")
    )
    return "\n".join(out) + "\n"


def as_json(a: Analysis) -> str:
    doc = {
        "reports": [
            {
                "source": r.source,
                "report_id": r.report_id,
                "organization": r.organization,
                "contact_info": r.contact_info,
                "start": timefmt.iso(r.start),
                "end": timefmt.iso(r.end),
                "policies": [
                    {
                        "policy_type": p.policy_type,
                        "policy_domain": p.policy_domain,
                        "mx_hosts": list(p.mx_hosts),
                        "successful": p.successful,
                        "failed": p.failed,
                    }
                    for p in r.policies
                ],
            }
            for r in a.reports
        ],
        "failures": [
            {
                "service": c.service,
                "policy_domain": c.policy_domain,
                "mx": c.mx,
                "result_type": c.result_type,
                "sessions": c.sessions,
                "sender": c.sender,
                "start": timefmt.iso(c.start),
                "end": timefmt.iso(c.end),
                "rrsets": list(c.digests),
                "certificates": list(c.certificates),
                "rollover": (
                    None
                    if c.rollover is None
                    else {"at": timefmt.iso(c.rollover.t), "event": c.rollover.event}
                ),
                "text": c.text,
            }
            for c in a.correlations
        ],
        "failed_sessions": [
            {"policy_domain": d, "mx": mx, "result_type": rt, "sessions": n}
            for (d, mx, rt), n in a.failed.items()
        ],
        "problems": list(a.problems),
    }
    return json.dumps(doc, indent=2) + "\n"
