"""The first issuance (tlsarotate/bootstrap.py): the pure planner's rule for a certificate with
nothing deployed yet, then the engine on the simulated world (tests/support/world.py) with the
deployed files removed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import dns.name
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tests.support.world import SimWorld
from tlsarotate import material, phases, pki, planinputs, planner, records
from tlsarotate.bootstrap import FirstSlot
from tlsarotate.change import TlsaRRset, published_digest
from tlsarotate.errors import ConfigError
from tlsarotate.material import Material
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.records import Params
from tlsarotate.state import CachedRRset, State

ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
HOST = "mx.example.test"
TTL = 300
MARGIN = 60
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
P311, P301 = records.parse_params("3 1 1"), records.parse_params("3 0 1")
CA = pki.make_ca(not_before=START, days=3650)


def cert(host: str = HOST, *, not_before: dt.datetime = START, days: int = 365) -> Material:
    leaf = pki.make_leaf(CA, [host], not_before=not_before, days=days)
    return material.parse(pki.fullchain_pem(leaf, CA), host)


FIRST = cert()  # the first certificate: nothing is deployed yet
OTHER = cert()  # what the server serves now, whose records someone else published
EXPIRED = cert(not_before=START - dt.timedelta(days=400), days=30)


def recs(m: Material, *params: Params) -> frozenset[TLSA]:
    return frozenset(records.build_all(m, params or (P311,)))


def texts(rds: Iterable[TLSA]) -> list[str]:
    return sorted(records.to_text(r) for r in rds)


def pub(rds: frozenset[TLSA]) -> dict[dns.name.Name, TlsaRRset]:
    return {OWNER: TlsaRRset.of(TTL, rds)} if rds else {}


def serving(rds: frozenset[TLSA]) -> Observation:
    answer = ServerAnswer(
        "ns1 192.0.2.1",
        "192.0.2.1",
        rrsets={OWNER: TlsaRRset.of(TTL, rds) if rds else None},
        serial=7,
        signed={OWNER: True},
    )
    return Observation(ZONE, (answer,), zone_signed=True)


def plan(
    published: frozenset[TLSA],
    *,
    served: frozenset[TLSA] | None = None,
    state: State | None = None,
    first: Material = FIRST,
    params: tuple[Params, ...] = (P311, P301),
    owners_mode: str = "shared",
) -> planner.Plan:
    return planner.plan(
        planner.PlanInput(
            service="mail",
            zone=ZONE,
            owners=(OWNER,),
            ttl=TTL,
            params=params,
            slots=(),
            published=pub(published),
            observation=serving(published if served is None else served),
            state=state or State("mail", rebuilt="no state file yet"),
            now=NOW,
            safety_margin=MARGIN,
            owners_mode=owners_mode,
            hosts=(HOST,),
            first=(FirstSlot("default", first),),
        )
    )


def seen(rds: frozenset[TLSA], *, since: float, cached: Iterable[CachedRRset] = ()) -> State:
    """A state that has seen ``rds`` served everywhere since ``since``."""
    return State(
        "mail",
        digest=published_digest(pub(rds), [OWNER]),
        visible_since=since,
        hold_ttl=TTL,
        ttl_seen=TTL,
        records={OWNER.to_text(): texts(rds)} if rds else {},
        cached=list(cached),
    )


def added(p: planner.Plan) -> frozenset[TLSA]:
    assert p.change is not None
    return frozenset(rd for ch in p.change.changes for rd in ch.added)


def removed(p: planner.Plan) -> frozenset[TLSA]:
    assert p.change is not None
    return frozenset(rd for ch in p.change.changes for rd in ch.removed)


# -- no TLSA records at all: no DANE client relies on any, install at once -------------------


def test_nothing_published_installs_the_first_certificate_at_once() -> None:
    p = plan(frozenset())
    assert p.phase == phases.SWAP and p.install == ("default",)
    assert p.change is None  # its records follow in the next step
    assert "no TLSA records are published" in p.summary


def test_a_server_still_serving_records_means_publish_first() -> None:
    # the provider holds nothing, but a server still serves an older RRset: clients may use it
    p = plan(frozenset(), served=recs(OTHER))
    assert p.phase == phases.PUBLISH and not p.install
    assert added(p) == recs(FIRST, P311, P301)


def test_records_we_saw_may_still_be_cached_means_publish_first() -> None:
    # nothing published now, but an RRset with records was replaced 10 s ago: caches hold it
    gone = CachedRRset({OWNER.to_text(): texts(recs(OTHER))}, TTL, NOW - 10 + TTL)
    p = plan(frozenset(), state=seen(frozenset(), since=NOW - 10, cached=[gone]))
    assert p.phase == phases.PUBLISH and not p.install


def test_unfit_first_certificate_is_never_installed() -> None:
    p = plan(frozenset(), first=EXPIRED)
    assert p.phase == phases.BLOCKED and not p.install and p.change is None
    assert "cannot install the first certificate" in p.summary and "expired" in p.summary


# -- records published (an operator migrating): publish, wait, then install -----------------


def test_published_records_get_the_first_certificates_beside_them_for_their_combinations() -> None:
    # the existing RRset has only 3 1 1: a 3 0 1 record now would not match what is served
    p = plan(recs(OTHER, P311))
    assert p.phase == phases.PUBLISH and not p.install
    assert added(p) == recs(FIRST, P311)
    assert removed(p) == frozenset()


def test_exclusive_owners_still_remove_nothing_before_the_install() -> None:
    p = plan(recs(OTHER, P311), owners_mode="exclusive")
    assert p.phase == phases.PUBLISH and removed(p) == frozenset()


def test_not_visible_everywhere_waits_for_propagation() -> None:
    both = recs(OTHER) | recs(FIRST)
    p = plan(both, served=recs(OTHER), state=seen(recs(OTHER), since=NOW - 3600))
    assert p.phase == phases.WAIT_PROPAGATION and not p.install and p.change is None


def test_visible_but_caches_may_hold_the_older_rrset_waits_the_ttl() -> None:
    both = recs(OTHER) | recs(FIRST)
    before = CachedRRset({OWNER.to_text(): texts(recs(OTHER))}, TTL, NOW - 100 + TTL)
    p = plan(both, state=seen(both, since=NOW - 100, cached=[before]))
    assert p.phase == phases.WAIT_TTL and not p.install
    assert p.ready_at == NOW - 100 + TTL + MARGIN  # safe_at = visible_since + TTL + margin


def test_no_history_waits_out_the_ttl_before_installing() -> None:
    # first run with records already there: an unknown older RRset may be cached
    both = recs(OTHER) | recs(FIRST)
    p = plan(both)
    assert p.phase == phases.WAIT_TTL and p.ready_at == NOW + TTL + MARGIN


def test_after_the_wait_the_first_certificate_is_installed() -> None:
    both = recs(OTHER) | recs(FIRST)
    before = CachedRRset({OWNER.to_text(): texts(recs(OTHER))}, TTL, NOW - 1000 + TTL)
    p = plan(both, state=seen(both, since=NOW - 1000, cached=[before]))
    assert p.phase == phases.SWAP and p.install == ("default",) and p.change is None
    # the first certificate's records are not listed as stale
    assert not any(records.matches_material(m.record, FIRST) for m in p.stale)


# -- the engine: a first issuance on the simulated world ---------------------------------------


def _first_issuance(w: SimWorld) -> None:
    """The deployed files are gone (never there); the next certificate is the first one."""
    w.new_next()
    for name in ("fullchain.pem", "privkey.pem"):
        (w.tmp / "deployed" / name).unlink()


def test_engine_first_issuance_without_records_installs_then_publishes(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, ttl=300, margin=60)
    w.provider.data[dns.name.from_text("example.test.")] = {}
    _first_issuance(w)
    nxt = w.next()
    plans = w.apply(wait=True)
    assert [p.phase for p in plans] == [phases.IDLE]
    assert w.deployed().same_as(nxt) and w.served.same_as(nxt) and w.reloads == 1
    want = {records.to_text(r) for r in records.build_all(nxt, w.service.params)}
    assert w.published_texts() == want
    assert w.violations == []


def test_engine_first_issuance_with_records_published_waits_before_installing(
    tmp_path: Path,
) -> None:
    w = SimWorld(tmp_path, ttl=300, margin=60)
    old = w.served  # still served, and its records published: a migration
    _first_issuance(w)
    nxt = w.next()
    start = w.clock.now()
    plans = w.apply()
    assert [p.phase for p in plans] == [phases.WAIT_TTL] and w.reloads == 0
    assert not (tmp_path / "deployed/fullchain.pem").exists()
    plans = w.apply(wait=True)
    assert w.clock.now() - start >= 300 + 60  # the old TTL and the margin ran out first
    assert [p.phase for p in plans] == [phases.IDLE]
    assert w.served.same_as(nxt) and w.reloads == 1
    # the replaced certificate's records were the planner's to retire after the swap: they
    # were not ours, so (shared owners) they are another writer's and kept
    old_texts = {records.to_text(r) for r in records.build_all(old, w.service.params)}
    assert old_texts <= w.published_texts()
    assert w.violations == []


def test_nothing_deployed_and_no_next_certificate_says_so_in_one_line(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    _first_issuance(w)
    slot = dataclasses.replace(w.service.certificates[0], next=None)
    svc = dataclasses.replace(w.service, certificates=(slot,))
    first: list[FirstSlot] = []
    with pytest.raises(ConfigError) as ei:
        planinputs.load_slots(svc, first)
    msg = str(ei.value)
    assert "nothing is deployed" in msg and "`next:`" in msg and "\n" not in msg
    assert first == []


def test_half_a_deployed_pair_is_an_error_not_a_first_issuance(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    w.new_next()
    (tmp_path / "deployed/fullchain.pem").unlink()  # the key is still there
    first: list[FirstSlot] = []
    with pytest.raises(ConfigError, match=r"deployed certificate.*not found"):
        planinputs.load_slots(w.service, first)
    assert first == []
