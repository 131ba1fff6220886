"""The state model's one codec (tlsarotate.state): encode / parse round trip, each validation
error as one line naming the field, hostile documents, what a store's load makes of a
document (from_stored), service names safe to store under."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tlsarotate import state
from tlsarotate.errors import StateError
from tlsarotate.state import MAX_HISTORY, VERSION, CachedRRset, HistoryEntry, State, SwapJournal

RECORD = "3 1 1 " + "ab" * 32
OWNER = "_25._tcp.mx.example."
GOOD = {"version": VERSION, "service": "mx"}

FULL = State(
    "mx",
    digest="d",
    visible_since=12.5,
    hold_ttl=300,
    ttl_seen=3600,
    records={OWNER: [RECORD]},
    cached=[CachedRRset({OWNER: [RECORD, "3 0 1 " + "cd" * 32]}, 300, 99.5), CachedRRset(None, 60)],
    swap=SwapJournal("default", "ef", 7.0, previous="ab", backup="/s/1", installed="/s/2"),
    deployed={"default": "ab"},
    previous={"default": "cd"},
    retiring=[RECORD],
    last_step="wait",
    updated=99.0,
    ours={OWNER: [RECORD]},
    history=[
        HistoryEntry(5.0, "published", "d", {"default": "cd"}),
        HistoryEntry(7.0, "swap", "d", {"default": "ef"}),
        HistoryEntry(8.0, "deployed", None),
    ],
)


def test_round_trip_keeps_every_field() -> None:
    assert state.parse(state.encode(FULL)) == FULL
    assert state.parse(state.encode(State("mx"))) == State("mx")


def test_encode_is_stable_json_without_the_rebuilt_reason() -> None:
    raw = state.encode(FULL.with_(rebuilt="no state file yet"))
    assert raw == state.encode(FULL)  # the reason is for this run only
    assert raw.endswith(b"}\n")
    doc = json.loads(raw)
    assert doc["version"] == VERSION and doc["rebuilt"] == ""
    assert list(doc) == sorted(doc)
    assert raw == (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def test_optional_fields_default_and_null_updated_is_zero() -> None:
    assert state.parse(json.dumps({**GOOD, "updated": None}).encode()) == State("mx")
    st = State.from_json({**GOOD, "visible_since": 5})
    assert (st.visible_since, st.updated, st.cached, st.swap) == (5, 0.0, [], None)


def test_a_state_from_before_the_history_loads_with_an_empty_one() -> None:
    old = {k: v for k, v in json.loads(state.encode(FULL)).items() if k != "history"}
    st = state.parse(json.dumps(old).encode())
    assert st.history == [] and st.digest == FULL.digest and st.swap == FULL.swap


def test_a_longer_stored_history_keeps_its_newest_entries() -> None:
    entries = [{"t": i, "event": "visible", "digest": "d", "deployed": {}} for i in range(300)]
    st = State.from_json({**GOOD, "history": entries})
    assert len(st.history) == MAX_HISTORY and st.history[-1].t == 299


def _wrong(field: str, value: str) -> str:
    return f"field {field} has a wrong value {value}"


BAD_DOCUMENTS: list[tuple[Any, str]] = [
    ([], "expected a JSON object, found a list"),
    (None, "expected a JSON object, found null"),
    ("mx", "expected a JSON object, found a str"),
    (5, "expected a JSON object, found a int"),
    ({"service": "mx"}, "unsupported state version None"),
    ({**GOOD, "version": 2}, "unsupported state version 2"),
    ({**GOOD, "surprise": 1, "another": 2}, "unknown field 'another'"),
    ({"version": VERSION}, "field 'service' is missing"),
    ({**GOOD, "service": 7}, _wrong("'service'", "7")),
    ({**GOOD, "digest": 5}, _wrong("'digest'", "5")),
    ({**GOOD, "visible_since": "abc"}, _wrong("'visible_since'", '"abc"')),
    ({**GOOD, "updated": "yesterday"}, _wrong("'updated'", '"yesterday"')),
    ({**GOOD, "hold_ttl": True}, _wrong("'hold_ttl'", "true")),
    ({**GOOD, "hold_ttl": 1.5}, _wrong("'hold_ttl'", "1.5")),
    ({**GOOD, "ttl_seen": -1}, _wrong("'ttl_seen'", "-1")),
    ({**GOOD, "deployed": {"a": 1}}, _wrong("'deployed'", '{"a": 1}')),
    ({**GOOD, "previous": ["a"]}, _wrong("'previous'", '["a"]')),
    ({**GOOD, "retiring": "x"}, _wrong("'retiring'", '"x"')),
    ({**GOOD, "retiring": [1]}, _wrong("'retiring'", "[1]")),
    ({**GOOD, "records": ["x"]}, _wrong("'records'", '["x"]')),
    ({**GOOD, "records": {"o.": ["3 1 1 zz"]}}, _wrong("'records'", '{"o.": ["3 1 1 zz"]}')),
    ({**GOOD, "ours": {"o.": ["3 1 1 abcd"]}}, _wrong("'ours'", '{"o.": ["3 1 1 abcd"]}')),
    ({**GOOD, "cached": {}}, _wrong("'cached'", "{}")),
    (
        {**GOOD, "cached": [{"records": None, "ttl": 5}]},
        "field 'cached[0]' is not a cached RRset (records, ttl, until)",
    ),
    (
        {**GOOD, "cached": [{"records": None, "ttl": "5", "until": None}]},
        _wrong("cached[0].'ttl'", '"5"'),
    ),
    (
        {**GOOD, "cached": [{"records": {"o.": [1]}, "ttl": 5, "until": 1}]},
        _wrong("cached[0].'records'", '{"o.": [1]}'),
    ),
    (
        {**GOOD, "swap": []},
        "field 'swap' is not a swap journal (slot, fingerprint, started, previous, backup, "
        "installed)",
    ),
    (
        {**GOOD, "swap": {"slot": "a", "fingerprint": "f", "started": 1, "extra": ""}},
        "field 'swap' is not a swap journal (slot, fingerprint, started, previous, backup, "
        "installed)",
    ),
    (
        {**GOOD, "swap": {"slot": "a", "fingerprint": "f", "started": "x"}},
        _wrong("swap.'started'", '"x"'),
    ),
    ({**GOOD, "last_step": 5}, _wrong("'last_step'", "5")),
    ({**GOOD, "history": {}}, _wrong("'history'", "{}")),
    (
        {**GOOD, "history": [{"t": 1, "event": "swap", "digest": None}]},
        "field 'history[0]' is not a history entry (t, event, digest, deployed)",
    ),
    (
        {**GOOD, "history": [{"t": 1, "event": "boom", "digest": None, "deployed": {}}]},
        _wrong("history[0].'event'", '"boom"'),
    ),
    (
        {**GOOD, "history": [{"t": "x", "event": "swap", "digest": None, "deployed": {}}]},
        _wrong("history[0].'t'", '"x"'),
    ),
    (
        {**GOOD, "history": [{"t": 1, "event": "swap", "digest": None, "deployed": {"a": 2}}]},
        _wrong("history[0].'deployed'", '{"a": 2}'),
    ),
    ({**GOOD, "digest": 7, "records": ["x" * 100]}, _wrong("'digest'", "7")),
    ({**GOOD, "digest": ["x" * 100]}, _wrong("'digest'", '["' + "x" * 37 + "…")),
]


@pytest.mark.parametrize(("doc", "message"), BAD_DOCUMENTS, ids=[m for _, m in BAD_DOCUMENTS])
def test_each_validation_error_is_one_line(doc: Any, message: str) -> None:
    with pytest.raises(ValueError) as ei:
        State.from_json(doc)
    assert str(ei.value) == message
    with pytest.raises(ValueError) as ei:  # the same through the bytes
        state.parse(json.dumps(doc).encode())
    assert str(ei.value) == message


HOSTILE: list[tuple[bytes, str]] = [
    (b'{"version": 1, "service": "mx\xff"}', "not UTF-8 text"),
    (b"", "not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"{not json", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"version": 1, "service": "mx", "visible_since": NaN}', _wrong("'visible_since'", "nan")),
    (b'{"version": 1, "service": "mx", "updated": 1e400}', _wrong("'updated'", "inf")),
    (b'{"version": 1, "service": "mx", "hold_ttl": -Infinity}', _wrong("'hold_ttl'", "-inf")),
]


@pytest.mark.parametrize(("raw", "message"), HOSTILE, ids=[m[:30] for _, m in HOSTILE])
def test_hostile_bytes_are_one_line_value_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError) as ei:
        state.parse(raw)
    assert str(ei.value).startswith(message) and "\n" not in str(ei.value)


def test_from_stored_rebuilds_with_the_reason() -> None:
    where = "state file /s/mx.json"
    assert state.from_stored("mx", where, state.encode(FULL)) == FULL
    why = "expected a JSON object, found a list"
    assert state.from_stored("mx", where, b"[]") == State(
        "mx", rebuilt=f"{where} was corrupt ({why}); rebuilt from DNS"
    )
    assert state.from_stored("mx", where, state.encode(State("other"))) == State(
        "mx", rebuilt=f"{where} belongs to 'other'; rebuilt"
    )
    assert state.corrupt("mx", where, "too big") == State(
        "mx", rebuilt=f"{where} was corrupt (too big); rebuilt from DNS"
    )


@pytest.mark.parametrize("name", ["mx", "MX-1", "a.b_c", "0"])
def test_service_names_safe_to_store(name: str) -> None:
    state.check_service_name(name, "state file")


@pytest.mark.parametrize("name", ["", "../etc", ".hidden", "a/b", "-x", "mx\n", "é"])
def test_unsafe_service_names_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(StateError) as ei:
        state.check_service_name(name, "state object")
    assert str(ei.value) == f"invalid service name for a state object: {name!r}"
