"""The file state store: ``<state_dir>/<service>.json``, written atomically, guarded by an
exclusive ``flock`` on ``<state_dir>/<service>.lock``; the state directory's checks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from tlsarotate.errors import LockTimeout, StateError
from tlsarotate.fsutil import MAX_STATE, atomic_write, file_kind, read_fd, remove_stale_temps
from tlsarotate.state import State, check_service_name, corrupt, encode, from_stored


class FileStateStore:
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
        check_service_name(service, "state file")
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
        except ValueError as e:  # too large to be a state file
            return corrupt(service, f"state file {p}", e)
        finally:
            os.close(dfd)
        if raw is None:
            return State(service, rebuilt="no state file yet")
        return from_stored(service, f"state file {p}", raw)

    def save(self, st: State) -> None:
        name = self._name(st.service, "json")
        dfd = self._open_dir(create=True)
        assert dfd is not None
        try:
            remove_stale_temps(name, dir_fd=dfd)  # a killed run's half-written state
            atomic_write(name, encode(st), mode=0o600, dir_fd=dfd)
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


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
