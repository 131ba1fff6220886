"""safety: which planned writes need ``apply --force`` (stale removals over the thresholds, a
whole RRset deleted), table by table; and the planner attaching that judgement to its Plan."""

from __future__ import annotations

from dataclasses import dataclass

import dns.name
import pytest

from tests.support.helpers import rd
from tlsarotate import ownership, safety
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange

ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
OTHER = dns.name.from_text("_465._tcp.mx.example.test.")


DEFAULTS = safety.Limits()


@dataclass(frozen=True)
class Case:
    name: str
    size: int  # records at OWNER before the write
    removed: tuple[str | None, ...]  # the why of each removed record (None: not named)
    whole: bool = False  # the write deletes OWNER's RRset
    limits: safety.Limits = DEFAULTS
    unsafe: bool = False
    says: str = ""


S, OC, OP, FC = (
    ownership.STALE,
    ownership.OLD_CERTIFICATE,
    ownership.OLD_PARAMETERS,
    ownership.FORCED,
)
TIGHT = safety.Limits(max_stale_removals=1, max_stale_share=0.3)

CASES = [
    Case("nothing removed", 4, ()),
    Case("one stale of 6: within the defaults", 6, (S,)),
    Case("two stale of 6 (a renewal mid-rollover): 33%, within the defaults", 6, (S, S)),
    Case(
        "two stale of 4 (the deployed certificate replaced behind our back): 50% > 40%",
        4,
        (S, S),
        unsafe=True,
        says="removes 2 of 4 records that no certificate accounts for (stale; 50% of the "
        "RRset, more than max_stale_share 40%)",
    ),
    Case(
        "three stale of 10: over the count",
        10,
        (S, S, S),
        unsafe=True,
        says="more than max_stale_removals 2)",
    ),
    Case(
        "count and share both over",
        4,
        (S, S, S),
        unsafe=True,
        says="(stale; more than max_stale_removals 2 and 75% of the RRset, more than",
    ),
    Case("one stale of 2 with max_stale_share 1", 2, (S,), limits=safety.Limits(2, 1.0)),
    Case("tight: one stale of 4 is 25%", 4, (S,), limits=TIGHT),
    Case("tight: one stale of 3 is 33% > 30%", 3, (S,), limits=TIGHT, unsafe=True),
    Case("tight: two stale of 10 > 1", 10, (S, S), limits=TIGHT, unsafe=True),
    Case(
        "max_stale_removals 0: any stale removal",
        10,
        (S,),
        limits=safety.Limits(0, 1.0),
        unsafe=True,
    ),
    Case("a removed record nobody named counts as stale", 4, (None, None), unsafe=True),
    Case("the replaced certificate's records are accounted for", 4, (OC, OC)),
    Case("retired parameters are accounted for", 4, (OP, OP)),
    Case("--force-cleanup's records were asked for", 3, (FC, FC)),
    Case("accounted-for removals do not add to the stale count", 6, (OC, OC, S, S)),
    Case(
        "the whole RRset, of the replaced certificate",
        2,
        (OC, OC),
        whole=True,
        unsafe=True,
        says="deletes the whole TLSA RRset (2 records)",
    ),
    Case(
        "the whole RRset, one stale record, loose limits",
        1,
        (S,),
        whole=True,
        limits=safety.Limits(100, 1.0),
        unsafe=True,
        says="deletes the whole TLSA RRset (1 record); an owner's RRset is never deleted",
    ),
]


def _change(case: Case) -> tuple[ZoneChange, list[ownership.ClassifiedRecord]]:
    before = [rd(i) for i in range(case.size)]
    gone = before[: len(case.removed)]
    after = None if case.whole else TlsaRRset.of(300, [*before[len(case.removed) :], rd(99)])
    why = [
        ownership.ClassifiedRecord(OWNER, r, w)
        for r, w in zip(gone, case.removed, strict=True)
        if w is not None
    ]
    # another owner gains a record: never a concern
    other = OwnerChange(OTHER, None, TlsaRRset.of(300, [rd(50)]))
    return ZoneChange(ZONE, (OwnerChange(OWNER, TlsaRRset.of(300, before), after), other)), why


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge(case: Case) -> None:
    change, why = _change(case)
    got = safety.judge(change, why, case.limits)
    assert bool(got) == case.unsafe, [u.reason for u in got]
    if case.unsafe:
        (u,) = got
        assert (u.owner, u.size, u.whole) == (OWNER, case.size, case.whole)
        assert u.reason.startswith(f"{OWNER}: ")
        assert case.says in u.reason, u.reason
        assert u.to_json()["owner"] == OWNER.to_text()


def test_no_change_is_safe() -> None:
    assert safety.judge(None, (), safety.Limits()) == ()
    assert safety.judge(ZoneChange(ZONE, ()), (), safety.Limits()) == ()


def test_defaults_are_documented_ones() -> None:
    assert safety.Limits() == safety.Limits(2, 0.4)


def test_refusal_names_the_service_owner_and_counts() -> None:
    change, why = _change(CASES[3])
    line = safety.refusal("mail", safety.judge(change, why, safety.Limits()))
    assert "\n" not in line
    assert line.startswith("service 'mail': refusing to write without --force: ")
    assert f"{OWNER}: removes 2 of 4 records" in line and "apply --force" in line
