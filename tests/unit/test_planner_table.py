"""The pure planner, table-driven: one PlanInput per row -> the phase and the write it plans
(records added and removed). No files, no servers: certificates made in memory, Observations
and States built directly, a fixed ``now`` (the way pip-tools tests its pure ``diff``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.name
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import material, ownership, phases, pki, planner, records
from tlsarotate.change import TlsaRRset, published_digest
from tlsarotate.material import Material
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.records import Params
from tlsarotate.state import CachedRRset, State

ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
HOST = "mx.example.test"
TTL = 300
MARGIN = 60
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # every certificate below valid from
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
P311, P301, P312, P111, P201 = (
    records.parse_params(t) for t in ("3 1 1", "3 0 1", "3 1 2", "1 1 1", "2 0 1")
)

CA = pki.make_ca(not_before=START, days=3650)


def cert(
    host: str = HOST, *, not_before: dt.datetime = START, days: int = 365, chain: bool = True
) -> Material:
    leaf = pki.make_leaf(CA, [host], not_before=not_before, days=days)
    return material.parse(pki.fullchain_pem(leaf, *([CA] if chain else [])), host)


A, A_NEXT = cert(), cert()  # the deployed certificate and its successor
B = cert("mx-b.example.test")  # another host's (another writer's records)
EXPIRED = cert(not_before=START - dt.timedelta(days=400), days=30)
FUTURE = cert(not_before=dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc))
ELSEWHERE = cert("other.example.test")  # names another host
KEY = material.parse(pki.key_pem(pki.new_key()), "next.key")  # a keep-ahead key
LONE, LONE_NEXT = cert(chain=False), cert(chain=False)  # no CA certificate in their chains


def recs(m: Material, *params: Params) -> frozenset[TLSA]:
    return frozenset(records.build_all(m, params or (P311,)))


def texts(rds: Iterable[TLSA]) -> list[str]:
    return sorted(records.to_text(r) for r in rds)


def pub(rds: frozenset[TLSA], ttl: int = TTL) -> dict[dns.name.Name, TlsaRRset]:
    return {OWNER: TlsaRRset.of(ttl, rds)} if rds else {}


def serving(*rrsets: frozenset[TLSA] | None, signed: bool = True) -> Observation:
    """One authoritative server per RRset given (None: the server times out)."""
    return Observation(
        ZONE,
        tuple(
            ServerAnswer(
                f"ns{i} 192.0.2.{i}",
                f"192.0.2.{i}",
                error="timeout after 3s" if rr is None else None,
                rrsets={OWNER: TlsaRRset.of(TTL, rr) if rr else None},
                serial=7,
                signed={OWNER: signed},
            )
            for i, rr in enumerate(rrsets, 1)
        ),
        zone_signed=True,
    )


def seen(
    rds: frozenset[TLSA],
    *,
    visible_since: float | None = NOW - 3600,
    cached: Iterable[CachedRRset] = (),
    **kw: object,
) -> State:
    """A state that observed exactly ``rds`` (visible everywhere since ``visible_since``)."""
    return State(
        "mail",
        digest=published_digest(pub(rds), [OWNER]),
        visible_since=visible_since,
        hold_ttl=TTL,
        ttl_seen=TTL,
        records={OWNER.to_text(): texts(rds)} if rds else {},
        cached=list(cached),
        **kw,  # type: ignore[arg-type]
    )


# an older RRset with only A's record, replaced by one visible since V: caches drop it at V+TTL
V = NOW - 1000
SAFE = V + TTL + MARGIN  # the timing rule, spelt out: safe_at = visible_since + TTL + margin
OLD_ONLY_A = CachedRRset({OWNER.to_text(): texts(recs(A))}, TTL, V + TTL)
BOTH = recs(A) | recs(A_NEXT)


@dataclass(frozen=True)
class Row:
    name: str
    published: frozenset[TLSA]
    phase: str
    added: frozenset[TLSA] = frozenset()
    removed: frozenset[TLSA] = frozenset()
    why: tuple[str, ...] = ()  # the reasons of the removals, in order
    deployed: Material = A
    nxt: Material | None = None
    next_key: Material | None = None
    params: tuple[Params, ...] = (P311,)
    mode: str = "shared"
    state: State | None = None  # None: seen(published)
    now: float = NOW
    observation: Observation | None = None  # None: every server serves ``published``
    unobserved: bool = False  # no observation at all
    published_ttl: int = TTL
    ready_at: float | None = None
    install: tuple[str, ...] = ()  # the slots swapped in
    says: str = ""  # in the summary
    warns: str = ""  # in a warning
    foreign: frozenset[TLSA] = field(default_factory=frozenset)


ROWS = [
    Row("first run, no records", frozenset(), phases.PUBLISH, added=recs(A), state=State("mail")),
    Row("deployed published and visible", recs(A), phases.IDLE, says="idle"),
    Row("next certificate not published yet", recs(A), phases.PUBLISH, recs(A_NEXT), nxt=A_NEXT),
    Row(
        "next published, one server still serves the old RRset",
        BOTH,
        phases.WAIT_PROPAGATION,
        nxt=A_NEXT,
        observation=serving(BOTH, recs(A)),
        state=seen(recs(A)),
    ),
    Row(
        "next published, one server times out",
        BOTH,
        phases.WAIT_PROPAGATION,
        nxt=A_NEXT,
        observation=serving(BOTH, None),
        state=seen(recs(A)),
    ),
    Row(
        "served everywhere but unsigned",
        BOTH,
        phases.WAIT_PROPAGATION,
        nxt=A_NEXT,
        observation=serving(BOTH, BOTH, signed=False),
    ),
    Row(
        "servers not observed",
        BOTH,
        phases.WAIT_PROPAGATION,
        nxt=A_NEXT,
        unobserved=True,
    ),
    Row(
        "visible, an older RRset may be cached: safe_at - 1 waits",
        BOTH,
        phases.WAIT_TTL,
        nxt=A_NEXT,
        state=seen(BOTH, visible_since=V, cached=[OLD_ONLY_A]),
        now=SAFE - 1,
        ready_at=SAFE,
    ),
    Row(
        "visible, the older RRset expired: safe_at swaps",
        BOTH,
        phases.SWAP,
        nxt=A_NEXT,
        state=seen(BOTH, visible_since=V, cached=[OLD_ONLY_A]),
        now=SAFE,
        install=("default",),
    ),
    Row(
        "first visible now, older RRset known: waits its TTL + margin from now",
        BOTH,
        phases.WAIT_TTL,
        nxt=A_NEXT,
        state=seen(recs(A), visible_since=V),
        ready_at=NOW + TTL + MARGIN,
    ),
    Row(
        "an older RRset that also accepts the next certificate does not hold the swap",
        BOTH,
        phases.SWAP,
        nxt=A_NEXT,
        state=seen(BOTH, visible_since=V, cached=[CachedRRset(seen(BOTH).records, TTL, NOW)]),
        install=("default",),
    ),
    Row(
        "swap done: the replaced certificate's records are retired",
        BOTH,
        phases.CLEANUP,
        removed=recs(A),
        why=(ownership.OLD_CERTIFICATE,),
        deployed=A_NEXT,
        state=seen(BOTH, retiring=texts(recs(A))),
        says="retire the records of the replaced certificate",
    ),
    Row(
        "a record this instance published that no certificate accounts for is stale",
        recs(A) | recs(B),
        phases.CLEANUP,
        removed=recs(B),
        why=(ownership.STALE,),
        state=seen(recs(A) | recs(B), ours={OWNER.to_text(): texts(recs(B))}),
    ),
    Row(
        "another writer's record is kept (shared owners)",
        recs(A) | recs(B),
        phases.IDLE,
        state=seen(recs(A) | recs(B), ours={}),
        foreign=recs(B),
        says="1 record(s) of other writers kept",
    ),
    Row(
        "another writer's record goes with owners: exclusive",
        recs(A) | recs(B),
        phases.CLEANUP,
        removed=recs(B),
        why=(ownership.STALE,),
        mode="exclusive",
        state=seen(recs(A) | recs(B), ours={}),
    ),
    Row(
        "another writer's record goes with --force-cleanup",
        recs(A) | recs(B),
        phases.CLEANUP,
        removed=recs(B),
        why=(ownership.FORCED,),
        mode="force",
        state=seen(recs(A) | recs(B), ours={}),
        says="--force-cleanup",
    ),
    Row(
        "parameters no longer configured: safe_at - 1 waits",
        recs(A, P311, P301),
        phases.WAIT_TTL,
        state=seen(recs(A, P311, P301), visible_since=V),
        now=SAFE - 1,
        ready_at=SAFE,
    ),
    Row(
        "parameters no longer configured: safe_at retires them",
        recs(A, P311, P301),
        phases.RETIRE_PARAMS,
        removed=recs(A, P301),
        why=(ownership.OLD_PARAMETERS,),
        state=seen(recs(A, P311, P301), visible_since=V),
        now=SAFE,
    ),
    Row(
        "a configured combination missing for the next certificate",
        recs(A, P311, P301) | recs(A_NEXT, P311),
        phases.PUBLISH,
        added=recs(A_NEXT, P301),
        nxt=A_NEXT,
        params=(P311, P301),
    ),
    Row(
        "TTL differs from the configured one",
        recs(A),
        phases.PUBLISH,
        published_ttl=600,
        says="set the TTL to 300",
    ),
    Row(
        "another writer's combination: ours is published for it too",
        recs(A) | recs(B, P301),
        phases.PUBLISH,
        added=recs(A, P301),
        state=seen(recs(A) | recs(B, P301), ours={}),
        foreign=recs(B, P301),
        warns="also publishing 3 0 1",
    ),
    Row(
        "a combination the other writer lacks is not introduced",
        recs(A) | recs(B),
        phases.IDLE,
        params=(P311, P312),
        state=seen(recs(A) | recs(B), ours={}),
        foreign=recs(B),
        warns="not adding 3 1 2",
    ),
    Row(
        "another writer's 2 x x records our chain cannot match: the swap is blocked",
        recs(LONE) | recs(LONE_NEXT) | recs(B, P201),
        phases.BLOCKED,
        deployed=LONE,
        nxt=LONE_NEXT,
        state=seen(recs(LONE) | recs(LONE_NEXT) | recs(B, P201), ours={}),
        foreign=recs(B, P201),
        says="no matching record",
    ),
    Row(
        "keep-ahead key: its selector-1 record goes out early",
        recs(A),
        phases.PUBLISH,
        added=frozenset({records.build(KEY, P311)}),
        next_key=KEY,
    ),
    Row(
        "expired next certificate",
        recs(A) | recs(EXPIRED),
        phases.BLOCKED,
        nxt=EXPIRED,
        says="expired",
    ),
    Row(
        "next certificate not valid yet: blocked until it is",
        recs(A) | recs(FUTURE),
        phases.BLOCKED,
        nxt=FUTURE,
        ready_at=dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc).timestamp(),
        says="not valid before",
    ),
    Row(
        "next certificate names another host, usage 1 checks names: blocked",
        recs(A, P111) | recs(ELSEWHERE, P111),
        phases.BLOCKED,
        nxt=ELSEWHERE,
        params=(P111,),
        says="does not name mx.example.test",
    ),
    Row(
        "next certificate names another host, usage 3 only: a warning, the swap goes on",
        recs(A) | recs(ELSEWHERE),
        phases.SWAP,
        nxt=ELSEWHERE,
        install=("default",),
        warns="DANE-EE (usage 3) clients ignore names",
    ),
]


def run(row: Row) -> planner.Plan:
    published = pub(row.published, row.published_ttl)
    obs = row.observation or serving(row.published, row.published)
    return planner.plan(
        planner.PlanInput(
            service="mail",
            zone=ZONE,
            owners=(OWNER,),
            ttl=TTL,
            params=row.params,
            slots=(planner.SlotInput("default", row.deployed, row.nxt, row.next_key),),
            published=published,
            observation=None if row.unobserved else obs,
            state=row.state if row.state is not None else seen(row.published),
            now=row.now,
            safety_margin=MARGIN,
            owners_mode=row.mode,
            hosts=(HOST,),
        )
    )


def delta(p: planner.Plan) -> tuple[frozenset[TLSA], frozenset[TLSA]]:
    if not p.change:
        return frozenset(), frozenset()
    added = frozenset(rd for ch in p.change.changes for rd in ch.added)
    removed = frozenset(rd for ch in p.change.changes for rd in ch.removed)
    return added, removed


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_plan(row: Row) -> None:
    p = run(row)
    assert p.phase == row.phase, p.summary
    assert delta(p) == (row.added, row.removed), p.summary
    assert tuple(m.why for m in p.removals) == row.why
    assert frozenset(m.record for m in p.removals) == (row.removed if row.why else frozenset())
    assert p.install == row.install
    assert frozenset(m.record for m in p.foreign) == row.foreign
    if row.ready_at is not None:
        assert p.ready_at == row.ready_at
    assert row.says in p.summary
    if row.warns:
        assert any(row.warns in w for w in p.warnings), p.warnings
    if p.phase == phases.WAIT_PROPAGATION:
        assert p.waiting_for


def test_ttl_change_keeps_the_records() -> None:
    p = run(Row("ttl", recs(A), phases.PUBLISH, published_ttl=600))
    assert p.change is not None
    (ch,) = p.change.changes
    assert ch.ttl_changed and ch.new is not None and ch.new.ttl == TTL
    assert ch.new.records == recs(A)


def test_unsigned_zone_blocks() -> None:
    obs = serving(recs(A))
    obs = Observation(obs.zone, obs.servers, zone_signed=False)
    row = Row("unsigned", recs(A), phases.BLOCKED, observation=obs)
    p = run(row)
    assert p.phase == phases.BLOCKED and "not signed" in p.summary


def test_a_planned_write_claims_its_additions() -> None:
    p = run(ROWS[0])
    assert p.state.ours == {OWNER.to_text(): texts(recs(A))}


def test_the_retiring_list_empties_once_the_old_records_are_gone() -> None:
    st = seen(recs(A_NEXT), retiring=texts(recs(A)))
    p = run(Row("idle", recs(A_NEXT), phases.IDLE, deployed=A_NEXT, state=st))
    assert p.phase == phases.IDLE and p.state.retiring == []
