"""Loading a state parses each distinct record text once, however many owners hold it (a state
holds the same few records at every owner and is loaded several times a step)."""

from __future__ import annotations

import dns.rdata
import pytest

from tlsarotate import records, state
from tlsarotate.state import State

TEXTS = [f"3 1 1 {1:064x}", f"3 0 1 {2:064x}"]


def test_each_record_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    owners = {f"_25._tcp.h{i}.example.test.": list(TEXTS) for i in range(300)}
    raw = state.encode(State("mx", digest="d", records=owners, ours=owners))
    parsed: list[str] = []
    real = dns.rdata.from_text

    def counted(rdclass: object, rdtype: object, text: str, *a: object, **kw: object) -> object:
        parsed.append(text)
        return real(rdclass, rdtype, text, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(dns.rdata, "from_text", counted)
    records.from_text.cache_clear()
    for _ in range(5):
        assert state.parse(raw).records == owners
    assert sorted(parsed) == sorted(TEXTS)


def test_a_bad_record_is_still_refused() -> None:
    doc = state.encode(State("mx", digest="d", records={"a.example.": ["3 1 1 zz"]}))
    with pytest.raises(ValueError, match="records"):
        state.parse(doc)
    assert state.from_stored("mx", "state file X", doc).rebuilt
