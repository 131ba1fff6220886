"""Each TLSRPT failure against the rollover history kept in the state (``State.history``):
which RRset was published and which certificates were served during the report's date range,
and which rollover step, if any, the failure matches, said in words. Pure.

A failure matches a rollover step (a new RRset published, a certificate swapped or changed)
that happened within the report's range or up to ``hold`` seconds before it (the TTL caches
may have held the RRset from before the step for).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tlsarotate import timefmt
from tlsarotate.state import HistoryEntry, State
from tlsarotate.tlsrpt.model import ROLLOVER_RESULTS, Failure, PolicyResult, Report

SHORT = 12  # hex digits of a digest or fingerprint shown
STEPS = {"swap": "certificate swap", "deployed": "certificate change", "published": "new RRset"}


@dataclass(frozen=True)
class Correlation:
    service: str
    policy_domain: str
    mx: str  # the receiving MX host ("" when the report does not name it)
    result_type: str
    sessions: int
    sender: str  # the reporting organization and the sending MTA's address
    start: float
    end: float
    digests: tuple[str, ...]  # the RRsets published during the range (oldest first)
    certificates: tuple[str, ...]  # the certificates served then ("slot fingerprint")
    rollover: HistoryEntry | None  # the rollover step the failure matches
    text: str  # all of the above in one sentence


def sender(report: Report, f: Failure) -> str:
    who = report.organization or report.contact_info or "an unnamed sender"
    return f"{who} ({f.sending_mta_ip})" if f.sending_mta_ip else who


def during(history: Sequence[HistoryEntry], start: float, end: float) -> list[HistoryEntry]:
    """The entries that describe ``[start, end]``: the one current at ``start`` (if any) and
    every one after it up to ``end``."""
    ordered = sorted(history, key=lambda h: h.t)
    before = [h for h in ordered if h.t <= start]
    return before[-1:] + [h for h in ordered if start < h.t <= end]


def matching_step(
    history: Sequence[HistoryEntry], start: float, end: float, hold: float
) -> HistoryEntry | None:
    """The rollover step a failure in ``[start, end]`` matches: the latest certificate swap or
    change in ``[start - hold, end]``, else the latest new RRset there."""
    steps = [h for h in history if h.event in STEPS and start - hold <= h.t <= end]
    certs = [h for h in steps if h.event != "published"]
    pick = certs or steps
    return max(pick, key=lambda h: h.t) if pick else None


def _uniq(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _certs(entries: Sequence[HistoryEntry]) -> tuple[str, ...]:
    out: list[str] = []
    for h in entries:
        for slot, fp in sorted(h.deployed.items()):
            out.append(f"{slot} {fp[:SHORT]}")
    return _uniq(out)


def _phrase(digests: Sequence[str], certs: Sequence[str]) -> str:
    rr = (
        f"RRset {digests[0][:SHORT]} was published"
        if len(digests) == 1
        else f"RRsets {', '.join(d[:SHORT] for d in digests)} were published in turn"
    )
    if not certs:
        return f"{rr} (no certificate recorded)"
    if len({c.split(" ", 1)[0] for c in certs}) == 1:  # one slot: its fingerprints
        certs = [c.split(" ", 1)[1] for c in certs]
    if len(certs) == 1:
        return f"{rr} and certificate {certs[0]} served"
    return f"{rr} and certificates {', '.join(certs)} served in turn"


def correlate_one(
    service: str,
    state: State | None,
    report: Report,
    policy: PolicyResult,
    f: Failure,
    hold: float = 0.0,
) -> Correlation:
    t1, t2 = report.start, report.end
    mx = f.receiving_mx_hostname or ""
    n = f.sessions
    head = (
        f"{n} session{'s' if n != 1 else ''} from {sender(report, f)} failed {f.result_type} "
        f"on {mx or 'an unnamed MX'} between {timefmt.iso(t1)} and {timefmt.iso(t2)}"
    )
    history = state.history if state is not None else []
    entries = during(history, t1, t2)
    digests = _uniq([h.digest for h in entries if h.digest])
    certs = _certs(entries)
    step = None
    if not history:
        text = f"{head}: service {service} has no rollover history to compare with"
    elif not entries:
        first = min(h.t for h in history)
        text = (
            f"{head}: the rollover history of service {service} starts later, "
            f"at {timefmt.iso(first)}"
        )
    else:
        while_ = _phrase(digests, certs) if digests else "no RRset was recorded"
        step = matching_step(history, t1, t2, hold)
        if f.result_type not in ROLLOVER_RESULTS:
            verdict = f"{f.result_type} is not a failure a TLSA rollover causes"
            step = None
        elif step is not None:
            verdict = f"this matches the rollover at {timefmt.iso(step.t)} ({STEPS[step.event]})"
        else:
            verdict = "no rollover step of service " + service + " falls in this range"
        text = f"{head}, while {while_}: {verdict}"
    return Correlation(
        service=service,
        policy_domain=policy.policy_domain,
        mx=mx,
        result_type=f.result_type,
        sessions=n,
        sender=sender(report, f),
        start=t1,
        end=t2,
        digests=digests,
        certificates=certs,
        rollover=step,
        text=text,
    )


def service_of(policy: PolicyResult, f: Failure, served: Mapping[str, str]) -> str | None:
    """The service a failure belongs to: the one serving its MX host, else its policy domain."""
    if f.receiving_mx_hostname and f.receiving_mx_hostname in served:
        return served[f.receiving_mx_hostname]
    return served.get(policy.policy_domain)


def correlate(
    report: Report,
    served: Mapping[str, str],
    states: Mapping[str, State],
) -> list[Correlation]:
    """Every failure of ``report`` in a policy domain a service serves (``served``: domain ->
    service name), against that service's state (``states``: name -> state)."""
    out = []
    for policy in report.policies:
        for f in policy.failures:
            svc = service_of(policy, f, served)
            if svc is None:
                continue
            st = states.get(svc)
            hold = float(max(st.hold_ttl, st.ttl_seen)) if st is not None else 0.0
            out.append(correlate_one(svc, st, report, policy, f, hold))
    return out
