"""Files the user names: read with one-line errors; written atomically (temp file in the same
directory, fsync, rename, fsync the directory).

Reading is for hostile paths too: a file is opened only if it is a regular file (after following
links; a FIFO, a device or a socket is refused before it is opened, and checked again on the
open descriptor), never becomes the controlling terminal, never blocks on open, and is read up to
a size cap for its kind (certificates and keys are kilobytes; ``/dev/zero`` or a 10 GB file is one
line, not a ``MemoryError``)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from pathlib import Path

from tlsarotate.errors import ConfigError, TlsarotateError

# size caps per kind of file (bytes)
MAX_SMALL = 1 << 20  # certificates, keys, TSIG key files, token/secret files, TLSA files
MAX_CONFIG = 8 << 20  # the config file
MAX_STATE = 64 << 20  # a state file (thousands of owners, many cached RRsets)
MAX_ZONE = 256 << 20  # a zone master file

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def file_kind(mode: int) -> str:
    """What kind of file ``mode`` says, in words ("a FIFO (named pipe)", "a directory", ...)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "an unknown kind of file"


def _kind_line(at: str, mode: int, what: str) -> str:
    return f"{at}: is {file_kind(mode)}, expected a {what}"


def _size_line(at: str, limit: int, what: str) -> str:
    return f"{at}: is larger than {limit} bytes, too large for a {what}"


def read_fd(fd: int, limit: int) -> bytes | None:
    """Everything an open descriptor holds, or None when that is more than ``limit`` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def open_regular(
    path: str | os.PathLike[str],
    what: str,
    *,
    where: str | None = None,
    error: type[TlsarotateError] = ConfigError,
    hint: str = "",
) -> tuple[int, os.stat_result]:
    """An open descriptor (and its stat) of the regular file the user named, after following
    links; never a FIFO (opening one would block), a device (/dev/zero reads without end) or a
    directory. Every failure is ``error`` with one line starting with ``where`` (default: the
    path) and saying which kind of file (``what``) was expected; ``hint`` follows "not found".
    The caller closes the descriptor."""
    p = Path(path)
    at = where or str(p)
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):  # refused before it is opened (a FIFO would block)
            raise error(_kind_line(at, st.st_mode, what))
        fd = os.open(p, _READ_FLAGS)
    except FileNotFoundError:
        if p.is_symlink():
            raise error(
                f"{at}: broken symbolic link to {os.readlink(p)}, expected a {what}"
            ) from None
        raise error(f"{at}: {what} not found{hint}") from None
    except IsADirectoryError:
        raise error(f"{at}: is a directory, expected a {what}") from None
    except PermissionError:
        raise error(f"{at}: permission denied reading the {what}") from None
    except OSError as e:
        raise error(f"{at}: cannot read the {what}: {e.strerror or type(e).__name__}") from None
    try:
        st = os.fstat(fd)  # the file opened, not the one looked at (it may have been swapped)
        if not stat.S_ISREG(st.st_mode):
            raise error(_kind_line(at, st.st_mode, what))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    where: str | None = None,
    error: type[TlsarotateError] = ConfigError,
    hint: str = "",
    limit: int = MAX_SMALL,
) -> bytes:
    """The bytes of a file the user named (see :func:`open_regular` for what is refused, and
    how it is said). Only a regular file of at most ``limit`` bytes is read."""
    at = where or str(Path(path))
    fd, st = open_regular(path, what, where=where, error=error, hint=hint)
    try:
        if st.st_size > limit:
            raise error(_size_line(at, limit, what))
        data = read_fd(fd, limit)
    except OSError as e:
        raise error(f"{at}: cannot read the {what}: {e.strerror or type(e).__name__}") from None
    finally:
        os.close(fd)
    if data is None:  # grew while read, or a file whose size says nothing (/proc)
        raise error(_size_line(at, limit, what))
    return data


def read_text(
    path: str | os.PathLike[str],
    what: str,
    *,
    where: str | None = None,
    error: type[TlsarotateError] = ConfigError,
    hint: str = "",
    limit: int = MAX_SMALL,
) -> str:
    """:func:`read_file`, decoded as UTF-8 (anything else is one line too)."""
    data = read_file(path, what, where=where, error=error, hint=hint, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{where or path}: not a UTF-8 text file, expected a {what}") from None


def _temp_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(6)}.tmp"


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    mode: int = 0o644,
    owner: tuple[int, int] | None = None,
    *,
    dir_fd: int | None = None,
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The temp file (``.NAME.<random>.tmp`` beside it) is created with ``O_EXCL|O_NOFOLLOW``, mode
    0600, then given ``mode``, so secret bytes are never readable by others, not even for an
    instant, and no planted file or link is ever written through. ``owner`` (uid, gid) gives the
    new file that owner first (keeping a replaced file's owner: a zone file BIND reads as
    ``bind``); changing it needs the right to (root), else :class:`PermissionError`. With
    ``dir_fd``, ``path`` is a plain name in that open directory (no path is looked up again).
    The rename replaces ``path`` itself: a symbolic link there is replaced, never followed.
    """
    p = Path(path)
    if dir_fd is None:
        dfd = os.open(p.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        if p.name != str(path):
            raise ValueError(f"atomic_write with dir_fd takes a plain name, not {path!r}")
        dfd = dir_fd
    try:
        _write_in(dfd, p.name, data, mode, owner)
    finally:
        if dir_fd is None:
            os.close(dfd)


def _write_in(dfd: int, name: str, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = _temp_name(name)
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary file name", name)
    try:
        try:
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])  # before fchmod: a chown may clear setgid
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    os.fsync(dfd)


def remove_stale_temps(
    path: str | os.PathLike[str],
    *,
    older_than: float = 60.0,
    dir_fd: int | None = None,
    links: bool = False,
) -> list[str]:
    """Remove the temp files :func:`atomic_write` (and, with ``links``,
    :func:`replace_with_symlink`) left beside ``path`` when a run was killed mid-write
    (``.NAME.*.tmp``): only regular files (or links) owned by this user and not modified for
    ``older_than`` seconds (a concurrent writer's temp file lives for milliseconds). Returns the
    names removed. Never follows a link; errors are ignored (the leftovers are harmless)."""
    p = Path(path)
    prefix, suffix = f".{p.name}.", ".tmp"
    removed: list[str] = []
    try:
        names = os.listdir(dir_fd if dir_fd is not None else p.parent)
    except OSError:
        return removed
    now = time.time()
    for n in names:
        middle = n[len(prefix) : -len(suffix)]
        if not (n.startswith(prefix) and n.endswith(suffix) and middle):
            continue
        if not all(c.isalnum() or c == "_" for c in middle):
            continue  # not one of ours (mkstemp's or our random part)
        target: str | Path = n if dir_fd is not None else p.parent / n
        try:
            st = os.lstat(target, dir_fd=dir_fd)
            kind_ok = stat.S_ISREG(st.st_mode) or (links and stat.S_ISLNK(st.st_mode))
            if not kind_ok or st.st_uid != os.geteuid():
                continue
            if now - st.st_mtime < older_than:
                continue
            os.unlink(target, dir_fd=dir_fd)
        except OSError:
            continue
        removed.append(n)
    return removed


def fsync_dir(d: str | os.PathLike[str]) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_with_symlink(path: str | os.PathLike[str], target: str) -> None:
    """Make ``path`` a symbolic link to ``target`` in one rename: a reader opening ``path`` gets
    the old file (or link) or the new link, never nothing."""
    p = Path(path)
    while True:
        tmp = p.with_name(_temp_name(p.name))
        try:
            os.symlink(target, tmp)
            break
        except FileExistsError:
            continue
    try:
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)
