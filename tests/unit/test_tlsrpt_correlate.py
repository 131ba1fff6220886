"""tlsarotate.tlsrpt.correlate: each TLSRPT failure against the rollover history that the
simulated world's engine wrote into the state."""

from __future__ import annotations

from pathlib import Path

from tests.support.tlsrpt_reports import report
from tests.support.world import SimWorld
from tlsarotate import timefmt
from tlsarotate.state import State
from tlsarotate.tlsrpt.correlate import correlate
from tlsarotate.tlsrpt.summary import analyse, domains_of
from tlsarotate.tlsrpt.validate import parse_report

IP = "209.85.220.41"
MX = "mx1.example.test"


def rolled(tmp_path: Path) -> tuple[SimWorld, State, float]:
    """A world that published a next certificate's records, swapped after the TTL and retired
    the old ones; returns the state and the time of the swap."""
    w = SimWorld(tmp_path, ttl=300, margin=60)
    w.apply()
    w.clock.advance(3600)
    w.new_next()
    w.apply()
    w.clock.advance(360)
    w.apply()
    swapped = w.clock.now()
    w.clock.advance(3600)
    w.apply()
    return w, w.store.load("mail"), swapped


def test_a_failure_during_the_rollover_matches_its_swap(tmp_path: Path) -> None:
    w, st, swapped = rolled(tmp_path)
    start = swapped - 1800
    end = start + 86399
    doc = report("example.test", start, end, [("tlsa-invalid", IP, MX, 12)])
    served = domains_of(w.cfg.services)
    (c,) = correlate(parse_report(doc, "g.json"), served, {"mail": st})
    swap = next(h for h in st.history if h.event == "swap")
    before = [h for h in st.history if h.t <= start][-1]  # current when the range began
    assert c.rollover == swap and swap.t == swapped
    assert c.digests[0] == before.digest and len(c.digests) == 3  # both, then the new alone
    old, new = before.deployed["default"], swap.deployed["default"]
    assert old != new
    assert c.text == (
        f"12 sessions from Google Inc. ({IP}) failed tlsa-invalid on {MX} between "
        f"{timefmt.iso(start)} and {timefmt.iso(end)}, while RRsets "
        f"{', '.join(d[:12] for d in c.digests)} were published in turn and certificates "
        f"{old[:12]}, {new[:12]} served in turn: this matches the rollover at "
        f"{timefmt.iso(swapped)} (certificate swap)"
    )


def test_a_quiet_day_is_not_blamed_on_a_rollover(tmp_path: Path) -> None:
    w, st, swapped = rolled(tmp_path)
    start = swapped + 86400 * 2
    doc = report("example.test", start, start + 86399, [("tlsa-invalid", IP, MX, 1)])
    (c,) = correlate(parse_report(doc, "g"), domains_of(w.cfg.services), {"mail": st})
    assert c.rollover is None and len(c.digests) == 1
    assert c.text.startswith("1 session from Google Inc.")
    assert c.text.endswith(
        f"certificate {st.deployed['default'][:12]} served: "
        "no rollover step of service mail falls in this range"
    )


def test_what_a_rollover_does_not_cause_and_what_the_history_does_not_cover(
    tmp_path: Path,
) -> None:
    w, st, swapped = rolled(tmp_path)
    served = domains_of(w.cfg.services)
    doc = report(
        "example.test", swapped - 100, swapped + 100, [("starttls-not-supported", IP, MX, 3)]
    )
    (c,) = correlate(parse_report(doc, "g"), served, {"mail": st})
    assert c.rollover is None
    assert c.text.endswith(": starttls-not-supported is not a failure a TLSA rollover causes")
    early = swapped - 86400 * 30
    doc = report("example.test", early, early + 86399, [("tlsa-invalid", IP, MX, 3)])
    (c,) = correlate(parse_report(doc, "g"), served, {"mail": st})
    first = min(h.t for h in st.history)
    assert c.text.endswith(
        f": the rollover history of service mail starts later, at {timefmt.iso(first)}"
    )
    (c,) = correlate(parse_report(doc, "g"), served, {})
    assert c.text.endswith(": service mail has no rollover history to compare with")


def test_analyse_skips_foreign_domains_and_duplicates(tmp_path: Path) -> None:
    w, st, swapped = rolled(tmp_path)
    ours = report("example.test", swapped - 10, swapped + 10, [("tlsa-invalid", IP, MX, 5)])
    theirs = report(
        "other.example",
        swapped,
        swapped + 1,
        [("tlsa-invalid", IP, "mx.other.example", 9)],
        report_id="other",
    )
    a = analyse(
        [("a.json", ours), ("b.json", ours), ("c.json", theirs), ("d.json", {"x": 1})],
        ["e.json: not UTF-8 text (byte 3)"],
        w.cfg.services,
        {"mail": st},
    )
    assert [r.source for r in a.reports] == ["a.json"]  # c.json: no policy of ours
    assert a.failed == {("example.test", MX, "tlsa-invalid"): 5}
    assert [c.sessions for c in a.correlations] == [5]
    assert a.problems == (
        "e.json: not UTF-8 text (byte 3)",
        "b.json: report '2026-11-30T00:00:00Z_example.test' was already read; skipped",
        "c.json: policy domain 'other.example' is not served by any configured service "
        "(example.test, mx1.example.test); skipped",
        "d.json: not an RFC 8460 report: 'date-range' is missing",
    )
