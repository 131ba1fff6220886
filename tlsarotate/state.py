"""Per-service rollover state, the model and its one stored form (UTF-8 JSON). No I/O: the
stores in :mod:`tlsarotate.stores` keep the documents; no secrets are ever stored here.

State is a cache of what tlsarotate observed, never the source of truth: certificates are read
from disk and records from DNS on every run. When the state is missing or corrupt it is rebuilt
and the safe path taken (the published RRset is treated as visible only from now).

The codec: :func:`encode` is what a store writes, :func:`parse` reads it back (or says in one
line what is wrong), :func:`from_stored` is what a store's ``load`` returns for a document.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from tlsarotate import records
from tlsarotate.errors import RecordError, StateError

VERSION = 1


@dataclass(frozen=True)
class SwapJournal:
    """Written before any file of a swap moves, cleared after it finished or was undone: a crash
    in between is finished or rolled back from exactly the files it names (see swap.py)."""

    slot: str
    fingerprint: str  # the next certificate being installed
    started: float
    previous: str = ""  # the fingerprint of the pair being replaced ("" in an older journal)
    backup: str = ""  # where that pair is kept during the swap (a version directory, *.prev)
    installed: str = ""  # where the new pair is written (a version directory, the file itself)


SWAP_REQUIRED = ("slot", "fingerprint", "started")
SWAP_FIELDS = (*SWAP_REQUIRED, "previous", "backup", "installed")


@dataclass(frozen=True)
class CachedRRset:
    """An RRset no longer published that resolvers may still hold in their caches."""

    records: dict[str, list[str]] | None  # owner -> record texts; None: unknown (no history)
    ttl: int  # the largest TTL it was seen with
    until: float | None = None  # its successor visible + ttl; None: successor not visible yet


# more older RRsets than this are merged (as unknown) into the oldest kept one
MAX_CACHED = 16


@dataclass(frozen=True)
class HistoryEntry:
    """One step of the rollover history: at ``t``, ``event`` happened; ``digest`` is the RRset
    published then (change.digest; None: not known yet) and ``deployed`` the certificates
    served (slot -> fingerprint). TLSRPT reports are correlated against these."""

    t: float
    event: str  # one of HISTORY_EVENTS
    digest: str | None
    deployed: dict[str, str] = field(default_factory=dict)


#: published: a new RRset was observed; visible: every server serves it; started: the
#: certificates in use at the first run; deployed: they changed (not by a swap); swap: the next
#: certificate was installed
HISTORY_EVENTS = ("published", "visible", "started", "deployed", "swap")
HISTORY_FIELDS = ("t", "event", "digest", "deployed")
# the oldest entries beyond this many are dropped (a rollover takes about six)
MAX_HISTORY = 200


@dataclass(frozen=True)
class State:
    service: str
    digest: str | None = None  # what was published when last looked at (change.published_digest)
    visible_since: float | None = None  # when every authoritative server served ``digest``
    hold_ttl: int = 0  # the longest TTL caches may still hold from before ``digest``
    ttl_seen: int = 0  # the largest TTL seen for ``digest``
    records: dict[str, list[str]] | None = None  # the records of ``digest``: owner -> texts
    cached: list[CachedRRset] = field(default_factory=list)  # older RRsets caches may hold
    swap: SwapJournal | None = None
    deployed: dict[str, str] = field(default_factory=dict)  # slot -> fingerprint at last run
    previous: dict[str, str] = field(default_factory=dict)  # slot -> fingerprint before swap
    retiring: list[str] = field(default_factory=list)  # record texts of swapped-out certificates
    last_step: str = ""
    updated: float = 0.0
    rebuilt: str = ""  # why the state was rebuilt, if it was
    # owner -> texts of the records this instance published that are still there; None: not
    # known (first run, rebuilt, or a state from an older tlsarotate): the planner then counts
    # the records of the certificates it knows, and ``retiring``, as ours
    ours: dict[str, list[str]] | None = None
    # the provider stores ``ttl_applied`` when asked for ``ttl_asked`` (a backend that rounds
    # TTLs up, seen when our own write read back; 0: never seen to differ)
    ttl_asked: int = 0
    ttl_applied: int = 0
    # the rollover history, oldest first, at most MAX_HISTORY entries (empty in older states)
    history: list[HistoryEntry] = field(default_factory=list)

    def with_(self, **kw: Any) -> State:
        return replace(self, **kw)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.ttl_applied:  # only written when seen: other states stay as they were
            del d["ttl_asked"], d["ttl_applied"]
        d["version"] = VERSION
        return d

    @classmethod
    def from_json(cls, d: Any) -> State:
        """The state in a decoded JSON document; :class:`ValueError` naming the first field
        that is missing, unknown or of the wrong type (the caller then rebuilds the state)."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, found {_json_kind(d)}")
        if d.get("version") != VERSION:
            raise ValueError(f"unsupported state version {d.get('version')!r}")
        d = {k: v for k, v in d.items() if k != "version"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(d) - known)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        if "service" not in d:
            raise ValueError("field 'service' is missing")
        _check(d, "service", _is_str)
        _check(d, "digest", _is_str, none=True)
        _check(d, "visible_since", _is_number, none=True)
        _check(d, "updated", _is_number, none=True)
        for k in ("hold_ttl", "ttl_seen", "ttl_asked", "ttl_applied"):
            _check(d, k, _is_count)
        for k in ("deployed", "previous"):
            _check(d, k, _is_str_map)
        _check(d, "retiring", lambda v: isinstance(v, list) and all(map(_is_str, v)))
        _check(d, "records", _is_records, none=True)
        _check(d, "ours", _is_records, none=True)
        cached = d.pop("cached", [])
        if not isinstance(cached, list):
            raise ValueError(f"field 'cached' has a wrong value {_short(cached)}")
        entries = []
        for i, c in enumerate(cached):
            where = f"cached[{i}]."
            if not isinstance(c, dict) or set(c) != {"records", "ttl", "until"}:
                raise ValueError(f"field 'cached[{i}]' is not a cached RRset (records, ttl, until)")
            _check(c, "records", _is_records, none=True, where=where)
            _check(c, "ttl", _is_count, where=where)
            _check(c, "until", _is_number, none=True, where=where)
            entries.append(CachedRRset(c["records"], c["ttl"], c["until"]))
        for k in ("last_step", "rebuilt"):
            _check(d, k, _is_str)
        history = _history(d.pop("history", []))
        swap = d.pop("swap", None)
        if swap is not None:
            if (
                not isinstance(swap, dict)
                or not set(SWAP_REQUIRED) <= set(swap)
                or not set(swap) <= set(SWAP_FIELDS)
            ):
                raise ValueError(f"field 'swap' is not a swap journal ({', '.join(SWAP_FIELDS)})")
            for k in SWAP_FIELDS:
                _check(swap, k, _is_number if k == "started" else _is_str, where="swap.")
        if d.get("updated") is None:
            d.pop("updated", None)
        st = cls(**d, cached=entries, history=history)
        if swap is not None:
            st = replace(st, swap=SwapJournal(**swap))
        return st


def _history(raw: Any) -> list[HistoryEntry]:
    if not isinstance(raw, list):
        raise ValueError(f"field 'history' has a wrong value {_short(raw)}")
    out = []
    for i, h in enumerate(raw):
        where = f"history[{i}]."
        if not isinstance(h, dict) or set(h) != set(HISTORY_FIELDS):
            raise ValueError(
                f"field 'history[{i}]' is not a history entry ({', '.join(HISTORY_FIELDS)})"
            )
        _check(h, "t", _is_number, where=where)
        _check(h, "event", lambda v: v in HISTORY_EVENTS, where=where)
        _check(h, "digest", _is_str, none=True, where=where)
        _check(h, "deployed", _is_str_map, where=where)
        out.append(HistoryEntry(h["t"], h["event"], h["digest"], h["deployed"]))
    return out[-MAX_HISTORY:]


def _json_kind(v: Any) -> str:
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "null"
    return f"a {type(v).__name__}"


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_records(v: Any) -> bool:
    return isinstance(v, dict) and all(
        _is_str(k) and isinstance(x, list) and all(map(_is_record, x)) for k, x in v.items()
    )


def _is_record(v: Any) -> bool:
    """Whether ``v`` is a TLSA record's text (``records.from_text`` remembers each text it
    parsed: a state holds the same few records at every owner, loaded several times a step)."""
    if not isinstance(v, str):
        return False
    try:
        records.from_text(v)
    except RecordError:
        return False
    return True


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_str(k) and _is_str(x) for k, x in v.items())


def _check(d: dict[str, Any], key: str, ok: Any, *, none: bool = False, where: str = "") -> None:
    if key not in d or (none and d[key] is None) or ok(d[key]):
        return
    raise ValueError(f"field {where}{key!r} has a wrong value {_short(d[key])}")


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:39] + "…"


def parse(raw: bytes) -> State:
    """A stored state document (UTF-8 JSON); :class:`ValueError` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"not JSON: {e}") from None
    return State.from_json(doc)


def encode(st: State) -> bytes:
    """The stored document of ``st`` (its ``rebuilt`` reason is not kept)."""
    return (json.dumps(st.with_(rebuilt="").to_json(), indent=2, sort_keys=True) + "\n").encode()


def from_stored(service: str, where: str, raw: bytes) -> State:
    """What a store's ``load`` returns for the document ``raw`` found at ``where`` (e.g. "state
    file /var/lib/tlsarotate/mx.json"): the state, or a fresh one whose ``rebuilt`` says why
    (corrupt, or another service's)."""
    try:
        st = parse(raw)
    except ValueError as e:
        return corrupt(service, where, e)
    if st.service != service:
        return State(service, rebuilt=f"{where} belongs to {st.service!r}; rebuilt")
    return st


def corrupt(service: str, where: str, why: object) -> State:
    """A fresh state for ``service`` saying the document at ``where`` was unusable."""
    return State(service, rebuilt=f"{where} was corrupt ({why}); rebuilt from DNS")


_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_service_name(service: str, what: str) -> None:
    """:class:`StateError` unless ``service`` is safe as the name of a stored ``what`` (a file,
    an object key): no path separator, no leading dot."""
    if not _SERVICE_NAME.fullmatch(service):
        raise StateError(f"invalid service name for a {what}: {service!r}")
