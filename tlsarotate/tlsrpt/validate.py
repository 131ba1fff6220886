"""A decoded TLSRPT JSON document (RFC 8460 §4.4) in, a :class:`~tlsarotate.tlsrpt.model.Report`
out, or :class:`ReportInvalid` saying in one line the first thing that is wrong. Pure.

Also which policy domains a configuration serves (:func:`served_domains`) and the policies of a
report that are not ours (:func:`foreign_policies`): those are reported and skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from tlsarotate.tlsrpt.model import POLICY_TYPES, RESULT_TYPES, Failure, PolicyResult, Report

MAX_TEXT = 4096  # longer strings are cut (additional-information is free text)
MAX_POLICIES = 1000
MAX_FAILURES = 10000
MAX_COUNT = 10**12  # session counts above this are not plausible


class ReportInvalid(ValueError):
    """The document is not an RFC 8460 report; the message is one line."""


def _short(v: Any) -> str:
    try:
        text = json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 40 else text[:39] + "…"


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ReportInvalid(f"{where}{key!r} is missing")
    return d[key]


def _str(d: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    if key not in d and not required:
        return None
    v = _get(d, key, where)
    if not isinstance(v, str) or (required and not v.strip()):
        raise ReportInvalid(f"{where}{key!r} is not a string: {_short(v)}")
    return " ".join(v.split())[:MAX_TEXT]


def _count(d: Mapping[str, Any], key: str, where: str) -> int:
    v = _get(d, key, where)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
        raise ReportInvalid(f"{where}{key!r} is not a session count: {_short(v)}")
    return v


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise ReportInvalid(f"{where.rstrip('.') or 'the report'} is not a JSON object")
    return v


def _list(v: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(v, list):
        raise ReportInvalid(f"{what} is not a list: {_short(v)}")
    if len(v) > limit:
        raise ReportInvalid(f"{what} has {len(v)} entries (at most {limit})")
    return v


def _time(d: Mapping[str, Any], key: str, where: str) -> float:
    text = _str(d, key, where)
    assert text is not None
    try:
        t = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ReportInvalid(
            f"{where}{key!r} is not an RFC 3339 date-time: {_short(text)}"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    ts = t.timestamp()
    if not math.isfinite(ts):
        raise ReportInvalid(f"{where}{key!r} is out of range")
    return ts


def domain(name: str) -> str:
    """A host or domain name as compared here: lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()


def _strings(v: Any, what: str) -> tuple[str, ...]:
    """``policy-string`` / ``mx-host``: a list of strings (an older draft sent one string)."""
    items = [v] if isinstance(v, str) else _list(v, what, MAX_POLICIES)
    if not all(isinstance(x, str) for x in items):
        raise ReportInvalid(f"{what} holds a value that is not a string")
    return tuple(x[:MAX_TEXT] for x in items)


def _failure(v: Any, where: str) -> Failure:
    d = _obj(v, where)
    rt = _str(d, "result-type", where)
    if rt not in RESULT_TYPES:
        raise ReportInvalid(f"{where}'result-type' is not an RFC 8460 result type: {_short(rt)}")
    mx = _str(d, "receiving-mx-hostname", where, required=False)
    return Failure(
        result_type=rt,
        sessions=_count(d, "failed-session-count", where),
        sending_mta_ip=_str(d, "sending-mta-ip", where, required=False),
        receiving_mx_hostname=domain(mx) if mx else None,
        receiving_mx_helo=_str(d, "receiving-mx-helo", where, required=False),
        receiving_ip=_str(d, "receiving-ip", where, required=False),
        additional_information=_str(d, "additional-information", where, required=False),
        failure_reason_code=_str(d, "failure-reason-code", where, required=False),
    )


def _policy(v: Any, i: int) -> PolicyResult:
    where = f"policies[{i}]."
    entry = _obj(v, where)
    pw = f"policies[{i}].policy."
    pol = _obj(_get(entry, "policy", where), pw)
    ptype = _str(pol, "policy-type", pw)
    if ptype not in POLICY_TYPES:
        raise ReportInvalid(
            f"{pw}'policy-type' is not tlsa, sts or no-policy-found: {_short(ptype)}"
        )
    pdomain = _str(pol, "policy-domain", pw)
    assert pdomain is not None
    sw = f"policies[{i}].summary."
    summary = _obj(_get(entry, "summary", where), sw)
    raw = _list(entry.get("failure-details", []), f"{where}'failure-details'", MAX_FAILURES)
    return PolicyResult(
        policy_type=ptype,
        policy_domain=domain(pdomain),
        policy_strings=_strings(pol.get("policy-string", []), f"{pw}'policy-string'"),
        mx_hosts=tuple(domain(h) for h in _strings(pol.get("mx-host", []), f"{pw}'mx-host'")),
        successful=_count(summary, "total-successful-session-count", sw),
        failed=_count(summary, "total-failure-session-count", sw),
        failures=tuple(
            _failure(f, f"policies[{i}].failure-details[{j}].") for j, f in enumerate(raw)
        ),
    )


def parse_report(doc: Any, source: str) -> Report:
    """The report in the decoded JSON document ``doc`` read from ``source``."""
    d = _obj(doc, "")
    dr = _obj(_get(d, "date-range", ""), "'date-range'.")
    start = _time(dr, "start-datetime", "date-range.")
    end = _time(dr, "end-datetime", "date-range.")
    if end < start:
        raise ReportInvalid("date-range ends before it starts")
    policies = _list(_get(d, "policies", ""), "'policies'", MAX_POLICIES)
    return Report(
        source=source,
        report_id=_str(d, "report-id", "") or "",
        organization=_str(d, "organization-name", "") or "",
        contact_info=_str(d, "contact-info", "") or "",
        start=start,
        end=end,
        policies=tuple(_policy(p, i) for i, p in enumerate(policies)),
    )


def served_domains(services: Iterable[tuple[str, str, Iterable[str]]]) -> dict[str, str]:
    """Policy domain -> service name, for services given as (name, zone, hosts): a report may
    name the zone (the recipient domain) or one of its MX hosts."""
    out: dict[str, str] = {}
    for name, zone, hosts in services:
        for d in (zone, *hosts):
            out.setdefault(domain(d), name)
    return out


def foreign_policies(report: Report, served: Mapping[str, str]) -> list[str]:
    """One line per policy of ``report`` whose domain no configured service serves."""
    known = ", ".join(sorted(served)) or "none"
    return [
        f"policy domain {p.policy_domain!r} is not served by any configured service ({known}); "
        "skipped"
        for p in report.policies
        if p.policy_domain not in served
    ]
