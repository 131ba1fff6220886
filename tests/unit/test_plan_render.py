"""commands: rendering a plan's write as rows (plan/apply --output json)."""

from __future__ import annotations

import dns.name

from tests.support.helpers import rd
from tlsarotate import ownership, phases, planner, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.plan_render import change_rows
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


def test_plan_text_shows_stale_records_in_every_phase_and_what_needs_force() -> None:
    """A stale record the write does not remove yet is listed (even beside a publish); one it
    removes is a ``-`` row only; a write over the thresholds says "needs --force"."""
    from tlsarotate import safety
    from tlsarotate.plan_render import plan_json, plan_text

    keep, stale, new = rd(1), rd(4), rd(3)
    marked = (ownership.ClassifiedRecord(OWNER, stale, "stale"),)
    publish = ZoneChange(
        dns.name.from_text("example.test."),
        (
            OwnerChange(
                OWNER, TlsaRRset.of(300, [keep, stale]), TlsaRRset.of(300, [keep, stale, new])
            ),
        ),
    )
    p = planner.Plan("mail", phases.PUBLISH, "add", State("mail"), change=publish, stale=marked)
    text = "\n".join(plan_text(p, 0.0))
    assert f"  stale: {OWNER} TLSA {records.to_text(stale)} (stale; removed once" in text
    assert "needs --force" not in text and plan_json(p, 0.0)["needs_force"] == []
    cleanup = ZoneChange(
        dns.name.from_text("example.test."),
        (OwnerChange(OWNER, TlsaRRset.of(300, [keep, stale]), TlsaRRset.of(300, [keep])),),
    )
    unsafe = safety.judge(cleanup, marked, safety.Limits())
    p = planner.Plan(
        "mail",
        phases.CLEANUP,
        "remove",
        State("mail"),
        change=cleanup,
        removals=marked,
        stale=marked,
        unsafe=unsafe,
    )
    lines = plan_text(p, 0.0)
    assert f"  - {OWNER} 300 IN TLSA {records.to_text(stale)}    (stale)" in lines
    assert not any(ln.startswith("  stale:") for ln in lines), lines
    assert f"  needs --force: {OWNER}: removes 1 of 2 records" in "\n".join(lines)
    (entry,) = plan_json(p, 0.0)["needs_force"]
    assert entry["owner"] == OWNER.to_text() and (entry["stale"], entry["size"]) == (1, 2)
