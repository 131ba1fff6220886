"""Every state transition of tlsarotate.phases, one function at a time: State in, State out."""

from __future__ import annotations

import hashlib
import json

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import phases, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.state import MAX_HISTORY, CachedRRset, State, SwapJournal

ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
KEY = OWNER.to_text()
NOW = 1_800_000_000.0


def rd(i: int) -> TLSA:
    return records.from_text(f"3 1 1 {hashlib.sha256(str(i).encode()).hexdigest()}")


def text(i: int) -> str:
    return records.to_text(rd(i))


def observe(st: State, digest: str = "d2", **kw: object) -> State:
    args: dict[str, object] = {
        "digest": digest,
        "published": {KEY: [text(2)]},
        "observed_ttl": 300,
        "ttl": 300,
        "visible": False,
        "now": NOW,
        "safety_margin": 60,
    }
    args.update(kw)
    return phases.after_observation(st, **args)  # type: ignore[arg-type]


def test_the_timing_rule() -> None:
    assert phases.expires_at(1000.0, 300) == 1300.0
    assert phases.safe_at(1000.0, 300, 60) == 1360.0
    assert phases.cached_safe_at(CachedRRset(None, 300, 1300.0), NOW, 60) == 1360.0
    # an older RRset whose successor is not visible yet: counted from now
    assert phases.cached_safe_at(CachedRRset(None, 300, None), NOW, 60) == NOW + 60


def test_first_observation_assumes_an_unknown_rrset_may_be_cached() -> None:
    st = observe(State("mail"), observed_ttl=120, ttl=600)
    assert (st.digest, st.visible_since, st.hold_ttl, st.ttl_seen) == ("d2", None, 600, 120)
    assert st.records == {KEY: [text(2)]}
    assert st.cached == [CachedRRset(None, 600, None)]


def test_becoming_visible_starts_every_cached_rrsets_clock() -> None:
    st = observe(State("mail"), visible=True)
    assert st.visible_since == NOW
    assert st.cached == [CachedRRset(None, 300, NOW + 300)]
    # seen again later: nothing moves
    assert observe(st, visible=True, now=NOW + 10) == st


def test_a_new_rrset_remembers_the_one_it_replaced() -> None:
    old = State(
        "mail",
        digest="d1",
        visible_since=NOW - 100,
        hold_ttl=900,
        ttl_seen=300,
        records={KEY: [text(1)]},
    )
    st = observe(old)
    assert st.cached == [CachedRRset({KEY: [text(1)]}, 300, None)]
    assert st.hold_ttl == 900  # the previous wait (900 s from NOW - 100) had not run out
    assert st.visible_since is None and st.ttl_seen == 300
    ran_out = observe(old.with_(visible_since=NOW - 900))
    assert ran_out.hold_ttl == 300


def test_an_expired_cached_rrset_is_forgotten_at_its_safe_at() -> None:
    c = CachedRRset({KEY: [text(1)]}, 300, NOW)
    st = State("mail", digest="d2", visible_since=NOW - 300, cached=[c])
    assert observe(st, now=NOW + 59).cached == [c]
    assert observe(st, now=NOW + 60).cached == []


def test_ttl_seen_only_grows() -> None:
    st = State("mail", digest="d2", ttl_seen=300)
    assert observe(st, observed_ttl=600).ttl_seen == 600
    assert observe(st, observed_ttl=60).ttl_seen == 300


def test_with_ours() -> None:
    st = State("mail", ours={KEY: [text(1)]})
    assert phases.with_ours(st, {KEY: [text(1)]}) is st
    assert phases.with_ours(st, {}).ours == {}


OLD, NEW = TlsaRRset.of(300, [rd(1), rd(2)]), TlsaRRset.of(300, [rd(2), rd(3)])
CHANGE = ZoneChange(ZONE, (OwnerChange(OWNER, OLD, NEW),))


def test_claim_and_after_write() -> None:
    st = State("mail", ours={KEY: [text(1), text(2)]})
    assert phases.claim(st, CHANGE).ours == {KEY: sorted([text(1), text(2), text(3)])}
    assert phases.claim(st, None) is st
    done = phases.after_write(st, CHANGE, phases.PUBLISH, NOW)
    assert done.ours == {KEY: sorted([text(2), text(3)])}
    assert (done.last_step, done.updated) == (phases.PUBLISH, NOW)


def test_retired() -> None:
    st = State("mail", retiring=[text(1)])
    assert phases.retired(st).retiring == []
    empty = State("mail")
    assert phases.retired(empty) is empty


def test_after_evaluation() -> None:
    st = phases.after_evaluation(State("mail"), {"default": "ab"}, NOW)
    assert (st.deployed, st.updated) == ({"default": "ab"}, NOW)


def test_begin_and_abort_swap() -> None:
    st = phases.begin_swap(
        State("mail", last_step="cleanup"),
        "rsa",
        "ff",
        NOW,
        previous="ee",
        backup="/d/1",
        installed="/d/2",
    )
    assert st.swap == SwapJournal("rsa", "ff", NOW, "ee", "/d/1", "/d/2")
    assert st.last_step == "cleanup"  # nothing else moves before the files do
    assert phases.abort_swap(st) == State("mail", last_step="cleanup")


def test_after_swap_retires_the_replaced_records() -> None:
    st = State(
        "mail",
        swap=SwapJournal("rsa", "ff", NOW),
        previous={"ecdsa": "11"},
        retiring=[text(1)],
    )
    done = phases.after_swap(st, "rsa", "ee", [rd(1), rd(2)], NOW + 5)
    assert done.swap is None
    assert done.previous == {"ecdsa": "11", "rsa": "ee"}
    assert done.retiring == sorted([text(1), text(2)])
    assert (done.last_step, done.updated) == (phases.SWAP, NOW + 5)
    # the state file keeps its format: record texts, as before
    doc = json.loads(json.dumps(done.to_json()))
    assert doc["retiring"] == sorted([text(1), text(2)])
    assert State.from_json(doc) == done


def test_the_history_records_each_rollover_step() -> None:
    st = State("mx", deployed={"default": "aa"})
    st = observe(st, "d1", now=NOW)  # a new RRset: published
    st = observe(st, "d1", now=NOW + 10, visible=True)  # served everywhere: visible
    st = observe(st, "d1", now=NOW + 20, visible=True)  # nothing new: no entry
    st = phases.after_evaluation(st, {"default": "aa"}, NOW + 20)  # unchanged: no entry
    st = phases.begin_swap(st, "default", "bb", NOW + 30, previous="aa", backup="b", installed="i")
    st = phases.after_swap(st, "default", "aa", [rd(1)], NOW + 31)
    st = phases.after_evaluation(st, {"default": "bb"}, NOW + 40)  # the swap's: no entry
    st = phases.after_evaluation(st, {"default": "cc"}, NOW + 50)  # changed by hand
    got = [(h.t - NOW, h.event, h.digest, h.deployed) for h in st.history]
    assert got == [
        (0, "published", "d1", {"default": "aa"}),
        (10, "visible", "d1", {"default": "aa"}),
        (31, "swap", "d1", {"default": "bb"}),
        (50, "deployed", "d1", {"default": "cc"}),
    ]
    first = phases.after_evaluation(State("mx"), {"default": "aa"}, NOW)
    assert [(h.event, h.deployed) for h in first.history] == [("started", {"default": "aa"})]


def test_the_history_is_bounded() -> None:
    st = State("mx")
    for i in range(MAX_HISTORY + 5):
        st = phases.remember(st, "visible", float(i))
    assert len(st.history) == MAX_HISTORY and st.history[0].t == 5.0
