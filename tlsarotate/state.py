"""Per-service rollover state: one JSON file per service, written atomically, guarded by an
exclusive lock. No secrets are ever stored here.

State is a cache of what tlsarotate observed, never the source of truth: certificates are read
from disk and records from DNS on every run. When the state is missing or corrupt it is rebuilt
and the safe path taken (the published RRset is treated as visible only from now).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsarotate import records
from tlsarotate.errors import LockTimeout, RecordError, StateError
from tlsarotate.fsutil import atomic_write

if TYPE_CHECKING:
    from tlsarotate.config import Config

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
class State:
    service: str
    digest: str | None = None  # what was published when last looked at (change.digest)
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

    def with_(self, **kw: Any) -> State:
        return replace(self, **kw)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
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
        for k in ("hold_ttl", "ttl_seen"):
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
        st = cls(**d, cached=entries)
        if swap is not None:
            st = replace(st, swap=SwapJournal(**swap))
        return st


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


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StateStore:
    """Files ``<dir>/<service>.json`` and ``<dir>/<service>.lock``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _path(self, service: str, ext: str) -> Path:
        if not _SAFE.match(service):
            raise StateError(f"invalid service name for a state file: {service!r}")
        return self.dir / f"{service}.{ext}"

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise StateError(f"{self.dir}: cannot create state directory: {e.strerror}") from None

    def load(self, service: str) -> State:
        """The stored state, or a fresh one whose ``rebuilt`` says why."""
        p = self._path(service, "json")
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return State(service, rebuilt="no state file yet")
        except OSError as e:
            raise StateError(f"{p}: cannot read state: {e.strerror}") from None
        try:
            st = parse(raw)
        except ValueError as e:
            return State(service, rebuilt=f"state file {p} was corrupt ({e}); rebuilt from DNS")
        if st.service != service:
            return State(service, rebuilt=f"state file {p} belongs to {st.service!r}; rebuilt")
        return st

    def save(self, st: State) -> None:
        self._ensure_dir()
        data = json.dumps(st.with_(rebuilt="").to_json(), indent=2, sort_keys=True) + "\n"
        try:
            atomic_write(self._path(st.service, "json"), data.encode(), mode=0o600)
        except OSError as e:
            raise StateError(f"{self.dir}: cannot write state: {e.strerror}") from None

    @contextlib.contextmanager
    def lock(self, service: str, timeout: float) -> Iterator[None]:
        """Exclusive per-service lock (flock); waits up to ``timeout`` seconds."""
        self._ensure_dir()
        p = self._path(service, "lock")
        try:
            fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StateError(f"{p}: cannot open the lock file: {e.strerror}") from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise StateError(f"{p}: cannot lock: {e.strerror}") from None
                    if time.monotonic() >= deadline:
                        holder = _read_holder(fd)
                        raise LockTimeout(
                            f"service {service!r} is locked by another tlsarotate{holder} "
                            f"({p}); gave up after {timeout:g}s (--lock-timeout)"
                        ) from None
                    time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError as e:
                raise StateError(f"{p}: cannot write the lock file: {e.strerror}") from None
            yield
        finally:
            os.close(fd)


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


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def make_store(cfg: Config) -> Any:
    """The state store the config asks for: files in ``state_dir`` or S3 (``state.backend``)."""
    if cfg.state.backend == "s3":
        from tlsarotate.state_s3 import S3StateStore

        st = cfg.state
        assert st.bucket is not None
        return S3StateStore(
            st.bucket, st.prefix, region=st.region, endpoint_url=st.endpoint_url, profile=st.profile
        )
    return StateStore(cfg.state_dir)
