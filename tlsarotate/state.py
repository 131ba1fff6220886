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
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsarotate import records
from tlsarotate.errors import LockTimeout, RecordError, StateError
from tlsarotate.fsutil import MAX_STATE, atomic_write, file_kind, read_fd, remove_stale_temps

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
    """Files ``<dir>/<service>.json`` and ``<dir>/<service>.lock``.

    ``state_dir`` is trusted only if it is what the config names: a real directory (a symbolic
    link is refused, not followed), owned by the user running tlsarotate and not writable by
    group or others (a planted state could make a swap come early); created 0700 if missing.
    Every file in it is opened relative to the checked directory's descriptor with
    ``O_NOFOLLOW``: a lock or state file that is a link is refused and its target never touched.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _name(self, service: str, ext: str) -> str:
        if not _SAFE.match(service):
            raise StateError(f"invalid service name for a state file: {service!r}")
        return f"{service}.{ext}"

    def _path(self, service: str, ext: str) -> Path:
        return self.dir / self._name(service, ext)

    def _open_dir(self, create: bool) -> int | None:
        """A descriptor of the checked state directory; None if it is missing and not
        ``create``."""
        if create and not os.path.lexists(self.dir):
            try:
                self.dir.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self.dir, 0o700)
            except OSError as e:
                raise StateError(
                    f"state_dir {self.dir}: cannot create the state directory: {e.strerror}"
                ) from None
        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise StateError(f"state_dir {self.dir}: removed while it was created") from None
            return None
        except OSError as e:
            why = dir_problem(self.dir) or f"state_dir {self.dir}: {e.strerror}"
            raise StateError(why) from None
        try:
            problem = _dir_problem(self.dir, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        if problem:
            os.close(fd)
            raise StateError(problem)
        return fd

    def load(self, service: str) -> State:
        """The stored state, or a fresh one whose ``rebuilt`` says why."""
        p = self._path(service, "json")
        dfd = self._open_dir(create=False)
        if dfd is None:
            return State(service, rebuilt="no state file yet")
        try:
            raw = _read_state(dfd, self._name(service, "json"), p)
            if raw is None:
                return State(service, rebuilt="no state file yet")
            st = parse(raw)
        except ValueError as e:
            return State(service, rebuilt=f"state file {p} was corrupt ({e}); rebuilt from DNS")
        finally:
            os.close(dfd)
        if st.service != service:
            return State(service, rebuilt=f"state file {p} belongs to {st.service!r}; rebuilt")
        return st

    def save(self, st: State) -> None:
        data = json.dumps(st.with_(rebuilt="").to_json(), indent=2, sort_keys=True) + "\n"
        name = self._name(st.service, "json")
        dfd = self._open_dir(create=True)
        assert dfd is not None
        try:
            remove_stale_temps(name, dir_fd=dfd)  # a killed run's half-written state
            atomic_write(name, data.encode(), mode=0o600, dir_fd=dfd)
        except OSError as e:
            raise StateError(f"{self.dir}: cannot write state: {e.strerror}") from None
        finally:
            os.close(dfd)

    @contextlib.contextmanager
    def lock(self, service: str, timeout: float) -> Iterator[None]:
        """Exclusive per-service lock (flock); waits up to ``timeout`` seconds."""
        p = self._path(service, "lock")
        dfd = self._open_dir(create=True)
        assert dfd is not None
        flags = os.O_RDWR | os.O_CREAT
        try:
            fd, fst = _open_regular(
                dfd, self._name(service, "lock"), flags, p, "lock file", "cannot open the lock file"
            )
        finally:
            os.close(dfd)
        try:
            if fst.st_nlink != 1:
                raise StateError(
                    f"{p}: the lock file has {fst.st_nlink} hard links; refusing to write it "
                    "(remove it)"
                )
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


def _open_regular(
    dfd: int, name: str, flags: int, p: Path, what: str, cannot: str
) -> tuple[int, os.stat_result]:
    """Open ``name`` in the directory ``dfd`` without following a link (nor blocking on a FIFO)
    and check it is a regular file: the descriptor and its stat, else :class:`StateError` in one
    line naming ``p``. A missing file stays :class:`FileNotFoundError`."""
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600, dir_fd=dfd)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StateError(
                f"{p}: the {what} is a symbolic link; refusing to follow it (remove it)"
            ) from None
        raise StateError(f"{p}: {cannot}: {e.strerror}") from None
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise StateError(f"{p}: the {what} is {file_kind(fst.st_mode)}; remove it")
    except BaseException:
        os.close(fd)
        raise
    return fd, fst


def _read_state(dfd: int, name: str, p: Path) -> bytes | None:
    """A state file's bytes (None: there is none), read without following a link;
    :class:`ValueError` if it is too large to be one (it is then rebuilt)."""
    try:
        fd, _ = _open_regular(dfd, name, os.O_RDONLY, p, "state file", "cannot read state")
    except FileNotFoundError:
        return None
    try:
        data = read_fd(fd, MAX_STATE)
    except OSError as e:
        raise StateError(f"{p}: cannot read state: {e.strerror}") from None
    finally:
        os.close(fd)
    if data is None:
        raise ValueError(f"larger than {MAX_STATE} bytes")
    return data


def _dir_problem(d: Path, st: os.stat_result) -> str | None:
    if not stat.S_ISDIR(st.st_mode):
        return f"state_dir {d}: is {file_kind(st.st_mode)}, expected a directory"
    me = os.geteuid()
    if st.st_uid != me:
        return (
            f"state_dir {d}: owned by uid {st.st_uid}, not by the user running tlsarotate "
            f"(uid {me}); chown it or choose another state_dir"
        )
    if st.st_mode & 0o022:
        return (
            f"state_dir {d}: writable by group or others (mode {st.st_mode & 0o7777:o}); "
            "run chmod go-w on it or choose another state_dir"
        )
    return None


def dir_problem(d: str | os.PathLike[str]) -> str | None:
    """What makes ``d`` unusable as the state directory (one line), or None: fine or missing
    (it is created 0700 when first needed)."""
    d = Path(d)
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"state_dir {d}: {e.strerror}"
    if stat.S_ISLNK(st.st_mode):
        return (
            f"state_dir {d}: is a symbolic link to {os.readlink(d)}; a link is not followed, "
            "name the directory itself"
        )
    return _dir_problem(d, st)


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
