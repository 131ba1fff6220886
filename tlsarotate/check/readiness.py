"""Is a certificate's set of TLSA records published, and is the next one safe to swap in?

Pure: judged from an observation of the authoritative servers, the rollover state and the
service's certificates as the planner sees them (all gathered beforehand).
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import caset, material, phases, planner, records, timefmt
from tlsarotate.check.report import SwapReadiness
from tlsarotate.config import Service
from tlsarotate.dane import short_record
from tlsarotate.errors import RecordError
from tlsarotate.observation import Observation
from tlsarotate.planinputs import plan_input
from tlsarotate.state import State


def needed_records(
    service: Service, cert: material.Material
) -> tuple[list[tuple[dns.name.Name, TLSA]], list[str]]:
    """(owner, record) for every owner and configured parameter; plus parameters that can not
    be built from this material (e.g. usage 2 without a CA certificate), in words."""
    out: list[tuple[dns.name.Name, TLSA]] = []
    problems: list[str] = []
    for p in service.params:
        try:
            rd = records.build(cert, p)
        except RecordError as e:
            problems.append(f"{p}: {e}")
            continue
        out += [(owner, rd) for owner in service.owners]
    return out, problems


def missing_on_servers(obs: Observation, needed: Sequence[tuple[dns.name.Name, TLSA]]) -> list[str]:
    """``"_25._tcp.mx. 3 1 1 ab12… on ns2 …"`` for each needed record a server does not serve."""
    out: list[str] = []
    if not obs.servers:
        return [f"no authoritative servers found for {obs.zone}"]
    for owner, rd in needed:
        lacking = []
        for s in obs.servers:
            if s.error:
                lacking.append(f"{s.label} ({s.error})")
                continue
            rr = s.rrsets.get(owner)
            if rr is None or rd not in rr.records:
                lacking.append(s.label)
        if lacking:
            everywhere = len(lacking) == len(obs.servers)
            where = "on any server" if everywhere else "on " + ", ".join(lacking)
            out.append(f"{owner} {short_record(rd)} is not published {where}")
    return out


def next_unfit(service: Service, cert: material.Material, now: float) -> list[material.Unfit]:
    """What would make the planner refuse to swap ``cert`` in for ``service`` (or note it)."""
    usages = {p.usage for p in service.params}
    return material.unfit(cert, now, service.hosts, usages, service.next_min_validity)


def swap_readiness(
    service: Service,
    next_cert: material.Material,
    obs: Observation,
    state: State | None,
    now: float,
    safety_margin: int,
    slots: tuple[planner.SlotInput, ...] | None,
    ca_set: tuple[caset.CaCert, ...] = (),
) -> SwapReadiness:
    """Is it safe to install the next certificate now? Its records must be published on every
    authoritative server, and (with the service's rollover ``state``) the planner must agree
    that caches can no longer hold an RRset without them -- else "no, in 1h12m". ``slots``
    are the service's certificates as the planner sees them (None: not all readable). The
    timing rule itself is the planner's (``plan.ready_at``); nothing here recomputes it."""
    needed, problems = needed_records(service, next_cert)
    missing = [*problems, *missing_on_servers(obs, needed)]
    published = not missing
    blockers = [u.reason for u in next_unfit(service, next_cert, now) if u.blocking]
    if blockers:
        # what the planner would block on, whatever DNS says
        return SwapReadiness(
            False, published, tuple(missing), "the next certificate: " + "; ".join(blockers)
        )
    if not published:
        detail = f"{len(missing)} record(s) of the next certificate missing"
        return SwapReadiness(False, False, tuple(missing), detail)
    if state is None or state.rebuilt or slots is None:
        why = (
            "no rollover state yet: `tlsarotate apply` records it"
            if slots is not None
            else ("not every certificate of the service is readable")
        )
        return SwapReadiness(
            False,
            True,
            (),
            f"published on every server, but how long caches may still hold older records is "
            f"not known ({why})",
        )
    first = next((s for s in obs.servers if not s.error), None)
    published_rr = {o: rr for o, rr in (first.rrsets.items() if first else ()) if rr is not None}
    plan = planner.plan(
        plan_input(service, slots, published_rr, obs, state, now, safety_margin, ca_set=ca_set)
    )
    if plan.phase == phases.SWAP:
        return SwapReadiness(True, True, (), "published and old enough")
    if plan.phase == phases.WAIT_TTL and plan.ready_at is not None:
        return SwapReadiness(
            False,
            True,
            (),
            f"in {timefmt.duration(plan.ready_at - now)} "
            f"(caches may hold the old RRset until {timefmt.iso(plan.ready_at)})",
        )
    return SwapReadiness(False, True, (), plan.summary)
