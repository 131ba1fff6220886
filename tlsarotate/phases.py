"""The rollover's phases and every change to a service's :class:`~tlsarotate.state.State`, in
one place. Pure: State in, State out; no I/O. The planner (:func:`tlsarotate.planner.plan`)
names the phase; the engine performs the step and records it with the functions below.

The phases of one service (RFC 7671 §8.1; the planner's docstring says each rule)::

    +------+ records missing  +---------+  write   +------------------+
    | idle | ---------------> | publish | -------> | wait-propagation |
    +------+   or TTL off     +---------+          +------------------+
       ^                                                    | every server serves it
       |          stale or replaced-certificate records     v (visible_since := now)
       +------------------- cleanup <------------------- visible
       |                                                    | old parameters, or a next cert
       |                                                    v
       |                                              +----------+
       |                                              | wait-ttl | now < safe_at
       |                                              +----------+
       |                                                    | now >= safe_at
       |                                   +----------------+----------------+
       |                                   v                                 v
       +---------------------------- retire-params                         swap
       |                                                                     | retiring :=
       +--------------------------------- cleanup <--------------------------+ old records

    blocked: the zone is unsigned, or a next certificate is unfit or no record matches it

The timing rule (:func:`safe_at`): an RRset replaced by one every server serves since
``visible_since`` is gone from every cache at ``visible_since + hold_ttl``; the step that relies
on that waits until ``safe_at = visible_since + hold_ttl + safety_margin``.

Which function writes which State field:

==========================  ==============================================================
:func:`after_observation`   digest, visible_since, hold_ttl, ttl_seen, records, cached, ours,
                            history ("published", "visible")
:func:`claim`               ours (a planned write's additions, before it is made)
:func:`retired`             retiring (emptied: the replaced certificate's records are gone)
:func:`after_evaluation`    deployed, updated, history ("started" at the first run, "deployed"
                            when the certificates changed other than by a swap)
:func:`after_write`         ours, last_step, updated
:func:`begin_swap`          swap (the journal, before any file moves)
:func:`abort_swap`          swap (cleared: rolled back, or nothing to finish)
:func:`after_swap`          swap, previous, retiring, last_step, updated, history ("swap")
:func:`after_first_install` last_step, updated (a first issuance: nothing replaced)
==========================  ==============================================================

The history (``State.history``, at most ``MAX_HISTORY`` entries) says which RRset was published
and which certificates were served when: ``tlsarotate reports`` correlates TLSRPT failures
with it (:mod:`tlsarotate.tlsrpt.correlate`).

A first issuance (nothing deployed yet) is planned by :mod:`tlsarotate.bootstrap`: its install
is a ``swap`` step with nothing to back up, retire or put back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.change import ZoneChange
from tlsarotate.state import (
    MAX_CACHED,
    MAX_HISTORY,
    CachedRRset,
    HistoryEntry,
    State,
    SwapJournal,
)

IDLE = "idle"
PUBLISH = "publish"
WAIT_PROPAGATION = "wait-propagation"
WAIT_TTL = "wait-ttl"
CLEANUP = "cleanup"
RETIRE_PARAMS = "retire-params"
SWAP = "swap"
BLOCKED = "blocked"


# -- the timing rule ----------------------------------------------------------------------------


def expires_at(visible_since: float, ttl: int) -> float:
    """When every cache has dropped an RRset whose successor is served everywhere since
    ``visible_since`` and that caches may hold for ``ttl`` seconds."""
    return visible_since + ttl


def safe_at(visible_since: float, hold_ttl: int, safety_margin: int) -> float:
    """``safe_at = visible_since + hold_ttl + safety_margin``: from then on no cache holds an
    RRset from before the one visible since ``visible_since``."""
    return expires_at(visible_since, hold_ttl) + safety_margin


def cached_safe_at(cached: CachedRRset, now: float, safety_margin: int) -> float:
    """:func:`safe_at` for an older RRset caches may hold (its ``until`` is its
    :func:`expires_at`; ``now`` stands in while its successor is not visible yet)."""
    return (cached.until if cached.until is not None else now) + safety_margin


def remember(st: State, event: str, now: float, deployed: Mapping[str, str] | None = None) -> State:
    """``st`` with one more history entry: ``event`` at ``now``, the RRset ``st.digest`` and the
    certificates ``deployed`` (default: ``st.deployed``); the oldest beyond MAX_HISTORY go."""
    served = dict(st.deployed if deployed is None else deployed)
    entry = HistoryEntry(now, event, st.digest, served)
    return st.with_(history=[*st.history, entry][-MAX_HISTORY:])


def cache_rejects(
    c: CachedRRset, owners: Sequence[dns.name.Name], chains: Sequence[Sequence[bytes]]
) -> bool:
    """True if a resolver holding this older RRset could reject one of these chains (an RRset
    whose records are unknown could)."""
    if c.records is None:
        return True
    for owner in owners:
        rds = [records.from_text(t) for t in c.records.get(owner.to_text(), [])]
        if any(not records.accepts(rds, chain) for chain in chains):
            return True
    return False


# -- what the planner writes --------------------------------------------------------------------


def after_observation(
    st: State,
    *,
    digest: str,
    published: Mapping[str, list[str]],
    observed_ttl: int,
    ttl: int,
    visible: bool,
    now: float,
    safety_margin: int,
    served: Sequence[tuple[Mapping[str, list[str]], int]] = (),
) -> State:
    """Fold one observation into the state: when did the current RRset (``digest``, whose
    records are ``published``: owner -> texts) become visible, which TTL may caches still hold
    from before it (``hold_ttl``), and which older RRsets they may still hold (``cached``).
    ``observed_ttl`` is the largest TTL seen (served or published), ``ttl`` the configured one,
    ``visible`` whether every authoritative server serves ``digest``. ``served``: what each
    answering server serves (owner -> texts, and its largest TTL): one that serves other
    records than ``published`` (a server that went back to an RRset already gone elsewhere)
    makes caches able to hold them again, until it is visible again plus their TTL."""
    if st.digest != digest:
        if st.digest is None:
            # no history (first run, or state lost): assume caches may hold an unknown RRset
            # with the configured TTL or the one we see now, whichever is longer
            hold = max(ttl, observed_ttl, st.ttl_seen)
            gone = CachedRRset(None, hold)
        else:
            hold = st.ttl_seen
            # state written before records were kept: what caches may hold is unknown
            gone = CachedRRset(st.records, st.ttl_seen)
            if st.visible_since is None or now < expires_at(st.visible_since, st.hold_ttl):
                hold = max(hold, st.hold_ttl)  # the previous wait had not run out yet
        st = st.with_(
            digest=digest,
            visible_since=None,
            hold_ttl=hold,
            ttl_seen=0,
            records=dict(published),
            cached=bounded([*st.cached, gone]),
        )
        st = remember(st, "published", now)
    st = st.with_(ttl_seen=max(st.ttl_seen, observed_ttl))
    # a server serving other records (one that went back to an RRset already gone from the
    # others): caches may hold them again, until every server serves ``published`` plus TTL
    again: list[CachedRRset] = []
    for recs, t in served:
        if _differs(recs, published) and not any(
            c.until is None and c.records is not None and not _differs(c.records, recs)
            for c in [*st.cached, *again]
        ):
            again.append(CachedRRset({o: sorted(v) for o, v in recs.items()}, t))
    if again:
        st = st.with_(cached=bounded([*st.cached, *again]))
    if visible and st.visible_since is not None and any(c.until is None for c in st.cached):
        st = st.with_(
            cached=[
                c if c.until is not None else replace(c, until=expires_at(now, c.ttl))
                for c in st.cached
            ]
        )
    if visible and st.visible_since is None:
        # from now on nobody serves the older RRsets: caches drop them within their TTL
        st = st.with_(
            visible_since=now,
            cached=[
                c if c.until is not None else replace(c, until=expires_at(now, c.ttl))
                for c in st.cached
            ],
        )
        st = remember(st, "visible", now)
    # forget the older RRsets no cache can hold any more
    kept = [c for c in st.cached if c.until is None or now < cached_safe_at(c, now, safety_margin)]
    if len(kept) != len(st.cached):
        st = st.with_(cached=kept)
    return st


def _differs(a: Mapping[str, list[str]], b: Mapping[str, list[str]]) -> bool:
    """Do two RRset maps (owner -> texts) hold other records at some owner?"""
    return any(set(a.get(o, ())) != set(b.get(o, ())) for o in {*a, *b})


def bounded(cached: list[CachedRRset]) -> list[CachedRRset]:
    """At most MAX_CACHED entries: the oldest are merged into one unknown RRset that lives as
    long as the longest of them."""
    if len(cached) <= MAX_CACHED:
        return cached
    cut = len(cached) - MAX_CACHED + 1
    old = cached[:cut]
    untils = [c.until for c in old]
    until = None if None in untils else max(u for u in untils if u is not None)
    return [CachedRRset(None, max(c.ttl for c in old), until), *cached[cut:]]


def with_ours(st: State, ours: Mapping[str, list[str]]) -> State:
    """``State.ours`` for this observation: what this instance published and is still there."""
    kept = dict(ours)
    return st if kept == st.ours else st.with_(ours=kept)


def _fold(st: State, change: ZoneChange | None, removed: bool) -> State:
    if not change:
        return st
    ours = {k: set(v) for k, v in (st.ours or {}).items()}
    for ch in change.changes:
        key = ch.owner.to_text()
        mine = ours.get(key, set()) | {records.to_text(rd) for rd in ch.added}
        if removed:
            mine -= {records.to_text(rd) for rd in ch.removed}
        ours[key] = mine
    return st.with_(ours={k: sorted(v) for k, v in sorted(ours.items()) if v})


def claim(st: State, change: ZoneChange | None) -> State:
    """The records a planned write adds are ours before it is made: a crash right after the
    write cannot leave them looking like another writer's."""
    return _fold(st, change, removed=False)


def retired(st: State) -> State:
    """The replaced certificates' records are gone: nothing is being retired any more."""
    return st.with_(retiring=[]) if st.retiring else st


# -- what the engine writes ---------------------------------------------------------------------


def after_evaluation(st: State, deployed: Mapping[str, str], now: float) -> State:
    """The planned state, with the certificates deployed now (slot -> fingerprint)."""
    if dict(deployed) != st.deployed and not _swapped_to(st, deployed):
        st = remember(st, "deployed" if st.deployed else "started", now, deployed)
    return st.with_(deployed=dict(deployed), updated=now)


def _swapped_to(st: State, deployed: Mapping[str, str]) -> bool:
    """Did the last certificate step in the history, a swap, install exactly ``deployed``?"""
    steps = [h for h in st.history if h.event in ("swap", "deployed", "started")]
    return bool(steps) and steps[-1].event == "swap" and steps[-1].deployed == dict(deployed)


def after_write(st: State, change: ZoneChange | None, phase: str, now: float) -> State:
    """A write succeeded: the records it added are ours, the ones it removed no longer are."""
    return _fold(st, change, removed=True).with_(last_step=phase, updated=now)


def begin_swap(
    st: State,
    slot: str,
    fingerprint: str,
    now: float,
    *,
    previous: str,
    backup: str,
    installed: str,
) -> State:
    """Before any file of a swap moves: the journal names both pairs and where each is (a crash
    after this is finished or undone from it, see :mod:`tlsarotate.recovery`)."""
    journal = SwapJournal(
        slot, fingerprint, now, previous=previous, backup=backup, installed=installed
    )
    return st.with_(swap=journal)


def abort_swap(st: State) -> State:
    """The swap was rolled back (or there is none to finish): the journal goes."""
    return st.with_(swap=None)


def after_swap(
    st: State, slot: str, old_fingerprint: str, old_records: Iterable[TLSA], now: float
) -> State:
    """The next certificate is installed in ``slot``: the journal goes, the replaced one is
    remembered, and its records (``old_records``) are retired by the next cleanup."""
    retiring = sorted(set(st.retiring) | {records.to_text(rd) for rd in old_records})
    if st.swap is not None and st.swap.slot == slot:
        st = remember(st, "swap", now, {**st.deployed, slot: st.swap.fingerprint})
    return st.with_(
        swap=None,
        previous={**st.previous, slot: old_fingerprint},
        retiring=retiring,
        last_step=SWAP,
        updated=now,
    )


def after_first_install(st: State, now: float) -> State:
    """A first issuance's certificate is installed: nothing was replaced, so nothing is
    remembered or retired (the next evaluation records what is deployed)."""
    return st.with_(swap=None, last_step=SWAP, updated=now)
