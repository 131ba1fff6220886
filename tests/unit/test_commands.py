"""commands: rendering a plan's write as rows (plan/apply --output json)."""

from __future__ import annotations

import dns.name

from tests.support.helpers import rd
from tlsarotate import ownership, phases, planner, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.commands import change_rows
from tlsarotate.state import State

OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
OTHER = dns.name.from_text("_465._tcp.mx.example.test.")


def test_rows_removals_first_with_why_then_additions() -> None:
    old, keep, new, stale = rd(1), rd(2), rd(3), rd(4)
    change = ZoneChange(
        dns.name.from_text("example.test."),
        (
            OwnerChange(OWNER, TlsaRRset.of(300, [old, keep]), TlsaRRset.of(600, [keep, new])),
            OwnerChange(OTHER, TlsaRRset.of(300, [stale]), None),
        ),
    )
    plan = planner.Plan(
        "mail",
        phases.CLEANUP,
        "retire",
        State("mail"),
        change=change,
        removals=(ownership.ClassifiedRecord(OWNER, old, "old certificate"),),
        stale=(ownership.ClassifiedRecord(OTHER, stale, "stale"),),
    )
    rows = change_rows(plan)
    assert [(r["op"], r["owner"], r["ttl"], r["record"], r["why"]) for r in rows] == [
        ("remove", OWNER.to_text(), 300, records.to_text(old), "old certificate"),
        ("remove", OTHER.to_text(), 300, records.to_text(stale), "stale"),
        ("add", OWNER.to_text(), 600, records.to_text(new), None),
    ]


def test_no_change_no_rows() -> None:
    assert change_rows(planner.Plan("mail", phases.IDLE, "idle", State("mail"))) == []
