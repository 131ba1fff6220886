"""Planner state details the simulated world reaches only rarely (the engine-level behaviour is
in tests/unit/test_engine.py and tests/unit/test_invariants.py)."""

from __future__ import annotations

from tlsarotate import phases
from tlsarotate.state import MAX_CACHED, CachedRRset

REC = {"_25._tcp.mx.example.": ["3 1 1 " + "ab" * 32]}


def test_cached_history_is_bounded_by_merging_the_oldest_as_unknown() -> None:
    entries = [CachedRRset(REC, ttl=i, until=1000.0 + i) for i in range(MAX_CACHED + 3)]
    out = phases.bounded(entries)
    assert len(out) == MAX_CACHED
    merged = out[0]
    # the four oldest became one unknown RRset living as long as the longest of them
    assert merged.records is None and merged.ttl == 3 and merged.until == 1003.0
    assert out[1:] == entries[4:]
    assert phases.bounded(entries[:MAX_CACHED]) == entries[:MAX_CACHED]


def test_merged_entry_without_expiry_stays_without_expiry() -> None:
    entries = [CachedRRset(REC, 5, None), *(CachedRRset(REC, 5, 9.0) for _ in range(MAX_CACHED))]
    out = phases.bounded(entries)
    assert out[0] == CachedRRset(None, 5, None)
