"""The first issuance: the step for a certificate that was never deployed. Pure, no I/O.

A *first* slot is one whose deployed paths hold nothing yet: the ACME client's first
``certonly`` ran the deploy hook, and its next certificate is the first one. It is installed at
the deployed paths by this rule (RFC 7671 §8.1; RFC 7672: a client that finds a server's TLSA
RRset securely denied does not use DANE for it):

- **no TLSA records are published** at any of the service's owners, every authoritative server
  agrees, and no RRset this tlsarotate published may still be cached: no DANE client relies on
  records for these hosts, so the certificate is installed at once and its records are
  published by the next step (the normal rollover takes over from there);
- **records are published** (an operator migrating, another writer, an earlier setup): a DANE
  client may hold records the first certificate does not match, and the server may be serving a
  certificate they do match. The first certificate's records are published first, beside every
  record there (at an owner with records, for the usage/selector/mtype combinations present:
  the certificate served now must still match each combination), nothing is removed, and it is
  installed only once every server serves them and every RRset a cache may still hold accepts
  it: the same wait as any rollover. The records it leaves behind are the normal rollover's to
  retire (or keep, when they are another writer's).

A first certificate that clients would not accept (:func:`material.unfit`) is not installed:
BLOCKED, as a next certificate would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import caset, phases, records, timefmt
from tlsarotate.errors import RecordError
from tlsarotate.material import Material, Unfit, unfit
from tlsarotate.state import State

if TYPE_CHECKING:
    from tlsarotate.planner import PlanInput


@dataclass(frozen=True)
class FirstSlot:
    """A certificate slot with nothing deployed yet, and the certificate to install first."""

    name: str
    next: Material


@dataclass(frozen=True)
class Step:
    """The planner's step for a service with first slots (it makes the Plan of it)."""

    phase: str
    summary: str
    target: Mapping[dns.name.Name, set[TLSA]] | None = None  # the RRsets to write, per owner
    install: tuple[str, ...] = ()
    ready_at: float | None = None
    waiting_for: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def nothing_published(current: Mapping[dns.name.Name, set[TLSA]], visible: bool, st: State) -> bool:
    """No DANE client can rely on records for these owners: none is published, every server
    agrees, and no RRset with records that this tlsarotate saw may still be cached."""
    if any(current.values()) or not visible:
        return False
    return not any(c.records and any(c.records.values()) for c in st.cached)


def _first_records(
    inp: PlanInput, owner: dns.name.Name, present: set[TLSA], notes: list[str]
) -> set[TLSA]:
    """The first certificates' records at ``owner``: for the configured parameters where
    nothing is published, else for the combinations present (the certificate served now must
    keep matching each one until the swap)."""
    usable = {records.params_of(rd) for rd in present if records.usable(rd)}
    params = sorted(usable) if usable else list(inp.params)
    out: set[TLSA] = set()
    for f in inp.first:
        for p in params:
            try:
                out.add(records.build(f.next, p))
            except RecordError as e:
                notes.append(
                    f"{owner}: first certificate {f.name!r} cannot have a {p} record ({e})"
                )
    return out


def step(
    inp: PlanInput,
    st: State,
    current: Mapping[dns.name.Name, set[TLSA]],
    want: Mapping[dns.name.Name, set[TLSA]],
    lagging: Sequence[str],
) -> Step:
    """The next step for a service with first slots (``inp.first``). ``current``: what is
    published per owner; ``want``: the records the deployed slots need (the planner's
    accounting); ``lagging``: the servers not serving ``current`` yet (empty: all do)."""
    names = ", ".join(f.name for f in inp.first)
    notes: list[str] = []
    problems: list[str] = []
    unfit_at: list[float] = []
    usages = {p.usage for p in inp.params}
    for f in inp.first:
        why = unfit(f.next, inp.now, inp.hosts, usages, inp.min_validity)
        where = f"first certificate {f.name!r} ({f.next.source})"
        notes += [f"{where} {u.reason}" for u in why if not u.blocking]
        blockers = [u for u in why if u.blocking]
        if inp.ca_set and not caset.member(inp.ca_set, f.next.chain_der, inp.params):
            blockers.append(Unfit(caset.outside(f.next)))
        if blockers:
            problems.append(f"{where} " + "; ".join(u.reason for u in blockers))
            if all(u.until is not None for u in blockers):
                unfit_at.append(max(u.until for u in blockers if u.until is not None))
    if problems:
        return Step(
            phases.BLOCKED,
            "cannot install the first certificate: " + "; ".join(problems),
            ready_at=min(unfit_at) if len(unfit_at) == len(problems) else None,
            warnings=tuple(notes),
        )
    visible = not lagging
    if nothing_published(current, visible, st):
        return Step(
            phases.SWAP,
            f"install the first certificate ({names}) now: no TLSA records are published, so "
            "no DANE client relies on any yet; its records are published next",
            install=tuple(f.name for f in inp.first),
            warnings=tuple(notes),
        )

    target = {
        o: current[o] | want.get(o, set()) | _first_records(inp, o, current[o], notes)
        for o in inp.owners
    }
    if any(target[o] != current[o] for o in inp.owners):
        return Step(
            phases.PUBLISH,
            f"add the records of the first certificate ({names}) beside those published; "
            "it is installed once every cache can see them",
            target=target,
            warnings=tuple(notes),
        )
    if not visible:
        return Step(
            phases.WAIT_PROPAGATION,
            "waiting until every authoritative server serves the first certificate's records",
            waiting_for=tuple(lagging),
            warnings=tuple(notes),
        )
    chains = [f.next.chain_der for f in inp.first] + [s.deployed.chain_der for s in inp.slots]
    bad = [
        f"{o}: {', '.join(str(p) for p in records.unmatched_combos(current[o], chain))}"
        for o in inp.owners
        for chain in chains
        if not records.accepts(current[o], chain)
    ]
    if bad:
        return Step(
            phases.BLOCKED,
            f"cannot install the first certificate safely: no matching record for {bad[0]}",
            warnings=tuple(notes),
        )
    blocking = [c for c in st.cached if phases.cache_rejects(c, inp.owners, chains)]
    if blocking:
        until = max(phases.cached_safe_at(c, inp.now, inp.safety_margin) for c in blocking)
        ttl = max(c.ttl for c in blocking)
        return Step(
            phases.WAIT_TTL,
            f"waiting {timefmt.duration(until - inp.now)} (TTL {ttl}s + margin "
            f"{inp.safety_margin}s) before it is safe to install the first certificate: "
            "caches may still hold an older RRset without its records",
            ready_at=until,
            warnings=tuple(notes),
        )
    return Step(
        phases.SWAP,
        f"install the first certificate ({names}): every cache sees its records",
        install=tuple(f.name for f in inp.first),
        warnings=tuple(notes),
    )
