"""The rollover planner: a pure function from (certificates, published DNS, what the
authoritative servers serve, stored state, time) to the one next step. No I/O here. The phases'
diagram, the timing rule and every change to the state are in :mod:`tlsarotate.phases`; whose
each published record is, in :mod:`tlsarotate.ownership`.

The rollover of RFC 7671 §8.1, per service (its hosts x ports are its TLSA owners):

0. **first issuance** -- a certificate with nothing deployed yet (``PlanInput.first``) is
   installed by :mod:`tlsarotate.bootstrap`'s rule: at once when no TLSA records exist, else
   after its records are published and every cache sees them.
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
  3), signed by the CA certificate its 2 x x records pin; else BLOCKED, naming it and why;
- a write that removes more records nobody accounts for than the service's thresholds allow,
  or deletes an owner's whole RRset, is marked (:attr:`Plan.unsafe`, :mod:`tlsarotate.safety`):
  the engine makes it only with ``apply --force``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import bootstrap, caset, cname, phases, records, safety, timefmt
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange, published_digest
from tlsarotate.material import DEFAULT_MIN_VALIDITY, Material, Unfit, unfit
from tlsarotate.observation import Observation
from tlsarotate.ownership import (
    FORCED,
    FOREIGN,
    OLD_CA,
    OLD_CERTIFICATE,
    OLD_PARAMETERS,
    STALE,
    ClassifiedRecord,
    Ownership,
    ours_still_published,
    parse_retiring,
    sorted_records,
    whose,
)
from tlsarotate.phases import (
    BLOCKED,
    CLEANUP,
    IDLE,
    PUBLISH,
    RETIRE_PARAMS,
    SWAP,
    WAIT_PROPAGATION,
    WAIT_TTL,
)
from tlsarotate.records import Params
from tlsarotate.state import State


@dataclass(frozen=True)
class SlotInput:
    """One certificate of a service (a service may serve RSA and ECDSA side by side)."""

    name: str
    deployed: Material
    next: Material | None = None
    next_key: Material | None = None  # keep-ahead key: its selector-1 records go out early

    @property
    def replacement(self) -> Material | None:
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
    # who else may write the owners: "shared" (default: records this instance did not publish
    # are another writer's, kept), "exclusive" (config ``owners: exclusive``: everything not
    # accounted for is stale) or "force" (``apply --force-cleanup``: remove them this once)
    owners_mode: str = "shared"
    # what a next certificate must be fit for before it is swapped in (material.unfit): the
    # service's host names, and how long it must stay valid after the swap
    hosts: tuple[str, ...] = ()
    min_validity: float = DEFAULT_MIN_VALIDITY
    # how many records nobody accounts for one write may remove without ``apply --force``
    limits: safety.Limits = field(default_factory=safety.Limits)
    # certificates with nothing deployed yet (a first issuance): planned by tlsarotate.bootstrap
    first: tuple[bootstrap.FirstSlot, ...] = ()
    # shared_owner: the names that must be CNAMEs to owners[0] on every server (cname.py)
    aliases: tuple[dns.name.Name, ...] = ()
    # config ``ca_set``: the CA certificates the usage 0/2 records pin (empty: the issuer of
    # each chain itself), see tlsarotate.caset
    ca_set: tuple[caset.CaCert, ...] = ()


@dataclass(frozen=True)
class Pin:
    """A usage 0/2 record a next certificate needs before it is swapped in: its issuer's
    record for one parameter, whether every owner publishes it, and whether every RRset a cache
    may still hold has it too (``safe``)."""

    slot: str
    params: Params
    ca: str  # the issuer's subject
    in_set: bool  # the issuer is in the configured ca_set (always True without one)
    published: bool
    safe: bool


@dataclass(frozen=True)
class Plan:
    service: str
    phase: str
    summary: str
    state: State  # the state after this observation (persist it whatever the action)
    change: ZoneChange | None = None  # a write to make now
    install: tuple[str, ...] = ()  # certificate slots to swap in now
    ready_at: float | None = None  # when the next step becomes possible (if known)
    waiting_for: tuple[str, ...] = ()  # e.g. lagging servers, in words
    removals: tuple[ClassifiedRecord, ...] = ()  # what ``change`` removes, and why
    stale: tuple[ClassifiedRecord, ...] = ()  # nobody accounts for them (removed once safe)
    warnings: tuple[str, ...] = ()
    foreign: tuple[ClassifiedRecord, ...] = ()  # other writers' records: kept, never removed
    unsafe: tuple[safety.Unsafe, ...] = ()  # why ``change`` needs ``apply --force`` (safety.py)
    pins: tuple[Pin, ...] = ()  # the 2 x x records the next certificates need (with ca_set)

    @property
    def pending(self) -> bool:
        """True when something is left to do (a step now, or a wait)."""
        return self.phase != IDLE

    @property
    def actionable(self) -> bool:
        return bool(self.change) or bool(self.install)


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


def _pins(
    inp: PlanInput, current: Mapping[dns.name.Name, set[TLSA]], st: State, visible: bool
) -> tuple[Pin, ...]:
    """With a CA set: the usage 0/2 records each next certificate needs before its swap, and
    whether they are published (every owner) and safe (visible on every server, and in every
    RRset a cache may still hold)."""
    if not inp.ca_set:
        return ()
    out = []
    for slot in inp.slots:
        nxt = slot.replacement
        if nxt is None or len(nxt.chain_der) < 2:
            continue
        in_set = caset.member(inp.ca_set, nxt.chain_der, inp.params)
        for p in caset.ta_params(inp.params):
            rd = records.build(nxt, p)
            published = all(rd in current[o] for o in inp.owners)
            safe = (
                published
                and visible
                and not any(
                    c.records is None
                    or any(
                        records.to_text(rd) not in c.records.get(o.to_text(), [])
                        for o in inp.owners
                    )
                    for c in st.cached
                )
            )
            out.append(Pin(slot.name, p, caset.issuer_name(nxt), in_set, published, safe))
    return tuple(out)


def plan(inp: PlanInput) -> Plan:
    """The one next step for a service. Pure: same input, same Plan."""
    current = {
        o: set(inp.published[o].records) if o in inp.published else set() for o in inp.owners
    }
    obs = inp.observation
    expected: dict[dns.name.Name, TlsaRRset | None] = {o: inp.published.get(o) for o in inp.owners}
    require_signed = not inp.allow_unsigned and (obs is None or obs.source == "dns")
    lagging = (
        obs.lagging(expected, require_signed)
        if obs is not None
        else ["the authoritative servers could not be observed"]
    )
    # shared_owner: an alias not leading to it leaves its senders another RRset (or none);
    # an owner that is a CNAME itself cannot hold TLSA
    aliases = cname.observe_aliases(
        obs.servers if obs else (), inp.aliases, inp.owners, inp.zone, require_signed
    )
    lagging = [*lagging, *aliases.lagging]
    visible = not lagging
    # ``State.retiring`` is record text on disk: parsed here, once
    retiring = parse_retiring(inp.state.retiring)
    observed_ttl = obs.max_ttl(inp.owners) if obs is not None else 0
    observed_ttl = max(observed_ttl, aliases.cname_ttl)  # a cache holds CNAMEs for theirs
    st = phases.after_observation(
        inp.state,
        digest=published_digest(inp.published, inp.owners),
        published={
            o.to_text(): list(inp.published[o].texts()) for o in inp.owners if o in inp.published
        },
        # the zone's own TTL counts too, in case no server could be observed
        observed_ttl=max([observed_ttl, *(rr.ttl for rr in inp.published.values())]),
        ttl=inp.ttl,
        visible=visible,
        now=inp.now,
        safety_margin=inp.safety_margin,
        served=obs.served(inp.owners) if obs is not None else (),
    )
    if aliases.lagging:
        st = cname.while_broken(st, max(inp.ttl, st.ttl_seen, aliases.own_ttl))
    pinned = frozenset(caset.pins(inp.ca_set, inp.params))  # the CA set's records: ours too
    ours = ours_still_published(inp.slots, inp.owners, inp.state.ours, retiring | pinned, current)
    st = phases.with_ours(st, ours)
    books = Ownership(
        inp.slots, inp.owners, inp.params, inp.owners_mode, retiring, current, ours, inp.ca_set
    )
    warnings: list[str] = []
    if inp.state.rebuilt:
        warnings.append(f"{inp.state.rebuilt}; treating the published records as visible from now")
    warnings += books.notes

    # what each published record is, worked out once (matching parses certificates), in the
    # order every list of records is given in: by owner, then by record
    kinds_seen = [
        (o, rd, books.classify(o, rd)) for o in inp.owners for rd in sorted_records(current[o])
    ]

    def marked(*kinds: str) -> list[ClassifiedRecord]:
        return [ClassifiedRecord(o, rd, k) for o, rd, k in kinds_seen if k in kinds]

    stale = tuple(marked(STALE, OLD_CERTIFICATE, FORCED, OLD_CA))
    if inp.first:  # a first certificate's records are nobody's stale ones
        stale = tuple(
            m
            for m in stale
            if not any(records.matches_material(m.record, f.next) for f in inp.first)
        )
    foreign = tuple(marked(FOREIGN))

    def done(phase: str, summary: str, **kw: object) -> Plan:
        change = kw.get("change")
        assert change is None or isinstance(change, ZoneChange)
        gone = kw.get("removals", ())
        assert isinstance(gone, tuple)
        return Plan(
            inp.service,
            phase,
            summary,
            # what this write adds is ours from now on, even if we crash right after it
            phases.claim(st, change),
            stale=stale,
            warnings=tuple(warnings),
            foreign=foreign,
            unsafe=safety.judge(change, gone, inp.limits),
            pins=_pins(inp, current, st, visible),
            **kw,  # type: ignore[arg-type]
        )

    if obs is not None and obs.zone_signed is False and not inp.allow_unsigned:
        return done(
            BLOCKED,
            f"zone {inp.zone} is not signed (no DNSKEY): DANE without DNSSEC protects nothing; "
            "sign the zone, or set allow_unsigned: true for this service",
        )

    if aliases.owner:
        return done(BLOCKED, aliases.owner[0], waiting_for=aliases.owner)

    if inp.first:
        # 0. a first issuance: install at once where no records exist, else publish and wait
        first = bootstrap.step(inp, st, current, books.want, lagging)
        warnings += first.warnings
        return done(
            first.phase,
            first.summary,
            change=_target(inp, first.target) if first.target is not None else None,
            install=first.install,
            ready_at=first.ready_at,
            waiting_for=first.waiting_for,
        )

    # 1. publish whatever the deployed and next certificates need, beside what is there
    missing = {o: books.want[o] - current[o] for o in inp.owners}
    ttl_off = [o for o in inp.owners if o in inp.published and inp.published[o].ttl != inp.ttl]
    # the TTL belongs to the whole RRset: where another writer shares it, a different TTL alone
    # is no reason to write (two configs would set theirs in turn, for ever)
    for o in [o for o in ttl_off if books.foreign[o]]:
        ttl_off.remove(o)
        warnings.append(
            f"{o}: the RRset's TTL is {inp.published[o].ttl}, not the configured {inp.ttl}; "
            "another writer shares it: give every host the same `ttl:`"
        )
    if any(missing.values()) or ttl_off:
        change = _target(inp, {o: current[o] | books.want[o] for o in inp.owners})
        if change is not None:
            added = [rd for rds in missing.values() for rd in rds]
            certs = [rd for rd in added if rd not in pinned]
            what = [f"add the records of {whose(certs, inp.slots)}"] if certs else []
            cas = caset.pinned_by(inp.ca_set, inp.params, added)
            what += [f"pin {cas} of ca_set"] if cas else []
            what += [f"set the TTL to {inp.ttl}"] if ttl_off else []
            return done(PUBLISH, " and ".join(what), change=change)

    if aliases.broken:
        return done(
            BLOCKED,
            f"no retire or swap while a host's TLSA name does not lead to the shared owner "
            f"{inp.owners[0]}: {aliases.broken[0]}",
            waiting_for=aliases.broken,
        )

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
            if any(m.why == FORCED for m in removals):
                summary = "remove the records of other writers (--force-cleanup)"
            elif any(m.why == OLD_CERTIFICATE for m in removals):
                summary = "retire the records of the replaced certificate"
            elif any(m.why == OLD_CA for m in removals):
                summary = "retire the records of CAs no longer in ca_set"
            else:
                summary = "remove stale records that match no certificate in use"
            return done(CLEANUP, summary, change=change, removals=tuple(removals))

    safe_at = phases.safe_at(st.visible_since or inp.now, st.hold_ttl, inp.safety_margin)
    old_params = marked(OLD_PARAMETERS)
    swappable = [s for s in inp.slots if s.replacement is not None]
    if not old_params and not swappable:
        if all(k != OLD_CERTIFICATE for _, _, k in kinds_seen):
            st = phases.retired(st)
        summary = "idle: the published records match the deployed certificates"
        if foreign:
            summary += f" ({len(foreign)} record(s) of other writers kept)"
        return done(IDLE, summary)

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
        nxt = slot.replacement
        assert nxt is not None
        why = unfit(nxt, inp.now, inp.hosts, usages, inp.min_validity)
        warnings.extend(
            f"next certificate {slot.name!r} ({nxt.source}) {u.reason}"
            for u in why
            if not u.blocking
        )
        blockers = [u for u in why if u.blocking]
        if inp.ca_set and not caset.member(inp.ca_set, nxt.chain_der, inp.params):
            blockers.append(Unfit(caset.outside(nxt)))
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
        blocking = [c for c in st.cached if phases.cache_rejects(c, inp.owners, served_after)]
        if blocking:
            # visible, so every older RRset has its expiry (see phases.after_observation)
            until = max(phases.cached_safe_at(c, inp.now, inp.safety_margin) for c in blocking)
            waits.append((until, max(c.ttl for c in blocking)))
        else:
            ready.append(slot.name)
    if ready or waits:
        # another slot that cannot swap is said, not hidden behind this one's step
        warnings.extend(f"cannot swap: {p}" for p in problems)
    if ready:
        return done(
            SWAP, f"install the next certificate ({', '.join(ready)})", install=tuple(ready)
        )
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
