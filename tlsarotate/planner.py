"""The rollover planner: a pure function from (certificates, published DNS, what the
authoritative servers serve, stored state, time) to the one next step. No I/O here.

The rollover of RFC 7671 §8.1, per service (its hosts x ports are its TLSA owners):

1. **publish** -- records the deployed or next certificate needs (for the configured parameters)
   are missing: add them beside everything already there. One write per zone.
2. **wait** -- until every authoritative server serves the RRset (signed), then for the longest
   TTL that caches may still hold from before (``hold_ttl``) plus the safety margin.
3. **cleanup** -- records that match no certificate we know (stale ones, and after a swap the old
   certificate's) are removed once the deployed certificate's records are visible.
4. **retire parameters** -- records of the deployed certificate with parameters no longer
   configured are removed after the wait (RFC 7671 §8.3: add new, wait, remove old).
5. **swap** -- once every RRset a cache may hold accepts the next certificate's chain (every
   usage/selector/mtype combination present has a record matching it), install it.

The safety rules the planner enforces:

- every usage/selector/mtype combination present in the RRset matches the served chain;
- a swap happens only when every authoritative server serves the current RRset and it accepts
  the chain about to be served, and so does every older RRset a cache may still hold (each is
  remembered in the state until its TTL + safety margin after its successor became visible;
  when the history is unknown, the swap waits out the longest TTL that may be cached);
- records matching the deployed certificate with configured parameters are never removed;
- a next certificate is swapped in only if clients will accept it (:func:`material.unfit`): valid
  now and for ``min_validity`` on, naming the service's hosts (a note only when every usage is
  3), signed by the CA certificate its 2 x x records pin; else BLOCKED, naming it and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records, timefmt
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange, digest
from tlsarotate.material import DEFAULT_MIN_VALIDITY, Material, unfit
from tlsarotate.observation import Observation
from tlsarotate.records import Params
from tlsarotate.state import MAX_CACHED, CachedRRset, State

IDLE = "idle"
PUBLISH = "publish"
WAIT_PROPAGATION = "wait-propagation"
WAIT_TTL = "wait-ttl"
CLEANUP = "cleanup"
RETIRE_PARAMS = "retire-params"
SWAP = "swap"
BLOCKED = "blocked"


@dataclass(frozen=True)
class SlotInput:
    """One certificate of a service (a service may serve RSA and ECDSA side by side)."""

    name: str
    deployed: Material
    next: Material | None = None
    next_key: Material | None = None  # keep-ahead key: its selector-1 records go out early

    @property
    def pending(self) -> Material | None:
        """The next certificate, if it differs from the deployed one."""
        if self.next is None or self.next.same_as(self.deployed):
            return None
        return self.next


@dataclass(frozen=True)
class PlanInput:
    service: str
    zone: dns.name.Name
    owners: tuple[dns.name.Name, ...]
    ttl: int
    params: tuple[Params, ...]
    slots: tuple[SlotInput, ...]
    published: Mapping[dns.name.Name, TlsaRRset]
    observation: Observation | None
    state: State
    now: float
    safety_margin: int = 60
    allow_unsigned: bool = False
    # what a next certificate must be fit for before it is swapped in (material.unfit): the
    # service's host names, and how long it must stay valid after the swap
    hosts: tuple[str, ...] = ()
    min_validity: float = DEFAULT_MIN_VALIDITY


@dataclass(frozen=True)
class Marked:
    """A published record the plan will remove, and why."""

    owner: dns.name.Name
    record: TLSA
    why: str  # "stale" | "old certificate" | "old parameters"


@dataclass(frozen=True)
class Plan:
    service: str
    phase: str
    summary: str
    state: State  # the state after this observation (persist it whatever the action)
    change: ZoneChange | None = None  # a write to make now
    swap: tuple[str, ...] = ()  # certificate slots to install now
    ready_at: float | None = None  # when the next step becomes possible (if known)
    waiting_for: tuple[str, ...] = ()  # e.g. lagging servers, in words
    removals: tuple[Marked, ...] = ()  # what ``change`` removes, and why
    stale: tuple[Marked, ...] = ()  # records nobody accounts for (removed once it is safe)
    warnings: tuple[str, ...] = ()

    @property
    def pending(self) -> bool:
        """True when something is left to do (a step now, or a wait)."""
        return self.phase != IDLE

    @property
    def actionable(self) -> bool:
        return bool(self.change) or bool(self.swap)


class _Books:
    """Which certificate each published record belongs to."""

    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.cfg = set(inp.params)
        self.want: set[TLSA] = set()
        for slot in inp.slots:
            self.want.update(records.build_all(slot.deployed, inp.params))
            nxt = slot.pending
            if nxt is not None:
                self.want.update(records.build_all(nxt, inp.params))
            key = slot.next_key
            if key is not None and key.spki != slot.deployed.spki:
                self.want.update(
                    records.build(key, p)
                    for p in inp.params
                    if p.selector == 1 and p.usage in (1, 3)
                )
        self.retiring = set(inp.state.retiring)

    def classify(self, rd: TLSA) -> str:
        """'want' | 'old parameters' | 'old certificate' | 'stale'."""
        if rd in self.want:
            return "want"
        for slot in self.inp.slots:
            if records.matches_material(rd, slot.deployed):
                # the deployed certificate, but with parameters no longer configured
                return "old parameters" if records.params_of(rd) not in self.cfg else "want"
        if records.to_text(rd) in self.retiring:
            return "old certificate"
        return "stale"


def _advance_state(inp: PlanInput, visible: bool) -> State:
    """Fold this observation into the state: when did the current RRset become visible, which
    TTL may caches still hold from before it, and which older RRsets they may still hold."""
    st = inp.state
    cur = digest(inp.published, inp.owners)
    observed_ttl = inp.observation.max_ttl(list(inp.owners)) if inp.observation else 0
    # the zone's own TTL counts too, in case no server could be observed
    observed_ttl = max([observed_ttl, *(rr.ttl for rr in inp.published.values())])
    if st.digest != cur:
        if st.digest is None:
            # no history (first run, or state lost): assume caches may hold an unknown RRset
            # with the configured TTL or the one we see now, whichever is longer
            hold = max(inp.ttl, observed_ttl, st.ttl_seen)
            gone = CachedRRset(None, hold)
        else:
            hold = st.ttl_seen
            # state written before records were kept: what caches may hold is unknown
            gone = CachedRRset(st.records, st.ttl_seen)
            if st.visible_since is None or inp.now < st.visible_since + st.hold_ttl:
                hold = max(hold, st.hold_ttl)  # the previous wait had not run out yet
        st = st.with_(
            digest=cur,
            visible_since=None,
            hold_ttl=hold,
            ttl_seen=0,
            records={
                o.to_text(): list(inp.published[o].texts())
                for o in inp.owners
                if o in inp.published
            },
            cached=_bounded([*st.cached, gone]),
        )
    st = st.with_(ttl_seen=max(st.ttl_seen, observed_ttl))
    if visible and st.visible_since is None:
        # from now on nobody serves the older RRsets: caches drop them within their TTL
        st = st.with_(
            visible_since=inp.now,
            cached=[
                c if c.until is not None else replace(c, until=inp.now + c.ttl) for c in st.cached
            ],
        )
    # forget the older RRsets no cache can hold any more
    kept = [c for c in st.cached if c.until is None or inp.now < c.until + inp.safety_margin]
    if len(kept) != len(st.cached):
        st = st.with_(cached=kept)
    return st


def _bounded(cached: list[CachedRRset]) -> list[CachedRRset]:
    """At most MAX_CACHED entries: the oldest are merged into one unknown RRset that lives as
    long as the longest of them."""
    if len(cached) <= MAX_CACHED:
        return cached
    cut = len(cached) - MAX_CACHED + 1
    old = cached[:cut]
    untils = [c.until for c in old]
    until = None if None in untils else max(u for u in untils if u is not None)
    return [CachedRRset(None, max(c.ttl for c in old), until), *cached[cut:]]


def _cache_blocks(
    c: CachedRRset, owners: Sequence[dns.name.Name], chains: Sequence[Sequence[bytes]]
) -> bool:
    """True if a resolver holding this older RRset could reject one of these chains."""
    if c.records is None:
        return True
    for owner in owners:
        rds = [records.from_text(t) for t in c.records.get(owner.to_text(), [])]
        if any(not records.accepts(rds, chain) for chain in chains):
            return True
    return False


def _target(inp: PlanInput, per_owner: Mapping[dns.name.Name, set[TLSA]]) -> ZoneChange | None:
    changes = []
    for owner in inp.owners:
        old = inp.published.get(owner)
        new_recs = per_owner[owner]
        new = TlsaRRset.of(inp.ttl, new_recs) if new_recs else None
        if old is None and new is None:
            continue
        if old is not None and new is not None and old == new:
            continue
        changes.append(OwnerChange(owner, old, new))
    return ZoneChange(inp.zone, tuple(changes)) if changes else None


def plan(inp: PlanInput) -> Plan:
    """The one next step for a service. Pure: same input, same Plan."""
    books = _Books(inp)
    obs = inp.observation
    expected: dict[dns.name.Name, TlsaRRset | None] = {o: inp.published.get(o) for o in inp.owners}
    require_signed = not inp.allow_unsigned and (obs is None or obs.source == "dns")
    lagging = (
        obs.lagging(expected, require_signed)
        if obs is not None
        else ["the authoritative servers could not be observed"]
    )
    visible = not lagging
    st = _advance_state(inp, visible)
    warnings: list[str] = []
    if inp.state.rebuilt:
        warnings.append(f"{inp.state.rebuilt}; treating the published records as visible from now")

    current = {
        o: set(inp.published[o].records) if o in inp.published else set() for o in inp.owners
    }
    # what each published record is, worked out once (matching parses certificates)
    kind = {rd: books.classify(rd) for rds in current.values() for rd in rds}

    def marked(*kinds: str) -> list[Marked]:
        return [
            Marked(o, rd, kind[rd])
            for o in inp.owners
            for rd in records_sorted(current[o])
            if kind[rd] in kinds
        ]

    stale = tuple(marked("stale", "old certificate"))

    def done(phase: str, summary: str, **kw: object) -> Plan:
        return Plan(
            inp.service,
            phase,
            summary,
            st,
            stale=stale,
            warnings=tuple(warnings),
            **kw,  # type: ignore[arg-type]
        )

    if obs is not None and obs.zone_signed is False and not inp.allow_unsigned:
        return done(
            BLOCKED,
            f"zone {inp.zone} is not signed (no DNSKEY): DANE without DNSSEC protects nothing; "
            "sign the zone, or set allow_unsigned: true for this service",
        )

    # 1. publish whatever the deployed and next certificates need, beside what is there
    missing = {o: books.want - current[o] for o in inp.owners}
    ttl_off = [o for o in inp.owners if o in inp.published and inp.published[o].ttl != inp.ttl]
    if any(missing.values()) or ttl_off:
        change = _target(inp, {o: current[o] | books.want for o in inp.owners})
        if change is not None:
            what = "add the records of the deployed and next certificates"
            if not any(missing.values()):
                what = f"set the TTL to {inp.ttl}"
            return done(PUBLISH, what, change=change)

    # 2. nothing else may happen until every authoritative server serves the current RRset
    if not visible:
        return done(
            WAIT_PROPAGATION,
            "waiting until every authoritative server serves the current records",
            waiting_for=tuple(lagging),
        )

    # 3. stale records (and those of a swapped-out certificate) go once the deployed
    #    certificate's records are visible; removing them never breaks the served chain
    removals = list(stale)
    if removals:
        drop = {(m.owner, m.record) for m in removals}
        change = _target(
            inp, {o: {rd for rd in current[o] if (o, rd) not in drop} for o in inp.owners}
        )
        if change is not None:
            retiring = any(m.why == "old certificate" for m in removals)
            summary = (
                "retire the records of the replaced certificate"
                if retiring
                else "remove stale records that match no certificate in use"
            )
            return done(CLEANUP, summary, change=change, removals=tuple(removals))

    safe_at = (st.visible_since or inp.now) + st.hold_ttl + inp.safety_margin
    old_params = marked("old parameters")
    swappable = [s for s in inp.slots if s.pending is not None]
    if not old_params and not swappable:
        if st.retiring and "old certificate" not in kind.values():
            st = st.with_(retiring=[])
        return done(IDLE, "idle: the published records match the deployed certificates")

    # 4. parameters no longer configured: removed once caches can no longer hold an RRset
    #    without the configured ones (RFC 7671 §8.3: add new, wait, remove old)
    if old_params:
        if inp.now < safe_at:
            return done(
                WAIT_TTL,
                f"waiting {timefmt.duration(safe_at - inp.now)} (TTL {st.hold_ttl}s + margin "
                f"{inp.safety_margin}s) before it is safe to retire the old parameters: "
                "caches may still hold an older RRset",
                ready_at=safe_at,
            )
        drop = {(m.owner, m.record) for m in old_params}
        change = _target(
            inp, {o: {rd for rd in current[o] if (o, rd) not in drop} for o in inp.owners}
        )
        return done(
            RETIRE_PARAMS,
            "remove records with parameters no longer configured",
            change=change,
            removals=tuple(old_params),
        )

    # 5. swap: every chain served afterwards must be accepted by every owner's RRset, the
    #    current one and every older one a cache may still hold
    #    -- and the next certificate must be one clients accept: valid now and for
    #    min_validity on, naming the hosts, signed by the CA its 2 x x records pin
    ready: list[str] = []
    problems: list[str] = []
    unfit_at: list[float] = []  # when a not-yet-valid next certificate becomes valid
    waits: list[tuple[float, int]] = []  # (when, ttl) per slot that must wait for caches
    usages = {p.usage for p in inp.params}
    for slot in swappable:
        nxt = slot.pending
        assert nxt is not None
        why = unfit(nxt, inp.now, inp.hosts, usages, inp.min_validity)
        warnings.extend(
            f"next certificate {slot.name!r} ({nxt.source}) {u.reason}"
            for u in why
            if not u.blocking
        )
        blockers = [u for u in why if u.blocking]
        if blockers:
            problems.append(
                f"next certificate {slot.name!r} ({nxt.source}) "
                + "; ".join(u.reason for u in blockers)
            )
            if all(u.until is not None for u in blockers):
                unfit_at.append(max(u.until for u in blockers if u.until is not None))
            continue
        served_after = [nxt.chain_der] + [
            s.deployed.chain_der for s in inp.slots if s.name != slot.name
        ]
        bad = [
            f"{o}: {', '.join(str(p) for p in records.unmatched_combos(current[o], chain))}"
            for o in inp.owners
            for chain in served_after
            if not records.accepts(current[o], chain)
        ]
        if bad:
            problems.append(f"certificate {slot.name!r}: no matching record for {bad[0]}")
            continue
        blocking = [c for c in st.cached if _cache_blocks(c, inp.owners, served_after)]
        if blocking:
            # visible, so every older RRset has its expiry (see _advance_state)
            until = max((c.until or inp.now) for c in blocking) + inp.safety_margin
            waits.append((until, max(c.ttl for c in blocking)))
        else:
            ready.append(slot.name)
    if ready or waits:
        # another slot that cannot swap is said, not hidden behind this one's step
        warnings.extend(f"cannot swap: {p}" for p in problems)
    if ready:
        return done(SWAP, f"install the next certificate ({', '.join(ready)})", swap=tuple(ready))
    if waits:
        until, ttl = min(waits)
        return done(
            WAIT_TTL,
            f"waiting {timefmt.duration(until - inp.now)} (TTL {ttl}s + margin "
            f"{inp.safety_margin}s) before it is safe to swap to the next certificate: "
            "caches may still hold an older RRset without its records",
            ready_at=until,
        )
    return done(
        BLOCKED,
        "cannot swap safely: " + "; ".join(problems),
        ready_at=min(unfit_at) if len(unfit_at) == len(problems) else None,
    )


def records_sorted(rds: set[TLSA] | frozenset[TLSA]) -> list[TLSA]:
    return sorted(rds, key=records.sort_key)


def exit_code(plans: Sequence[Plan]) -> int:
    """0 when every service is idle, 1 if any is blocked, else 2 (changes pending or waiting)."""
    if any(p.phase == BLOCKED for p in plans):
        return 1
    return 0 if all(p.phase == IDLE for p in plans) else 2
