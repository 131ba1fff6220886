"""Files the user names: read with one-line errors; written atomically (temp file in the same
directory, fsync, rename, fsync the directory)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from tlsarotate.errors import ConfigError, TlsarotateError


def read_file(
    path: str | os.PathLike[str],
    what: str,
    *,
    where: str | None = None,
    error: type[TlsarotateError] = ConfigError,
    hint: str = "",
) -> bytes:
    """The bytes of a file the user named. Every failure is ``error`` with one line starting
    with ``where`` (default: the path) and saying which kind of file (``what``) was expected;
    ``hint`` follows "not found"."""
    p = Path(path)
    at = where or str(p)
    try:
        return p.read_bytes()
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


def read_text(
    path: str | os.PathLike[str],
    what: str,
    *,
    where: str | None = None,
    error: type[TlsarotateError] = ConfigError,
    hint: str = "",
) -> str:
    """:func:`read_file`, decoded as UTF-8 (anything else is one line too)."""
    data = read_file(path, what, where=where, error=error, hint=hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{where or path}: not a UTF-8 text file, expected a {what}") from None


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    mode: int = 0o644,
    owner: tuple[int, int] | None = None,
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    The temp file is created with ``mode`` already applied (0600 for keys), so secret bytes are
    never readable by others, not even for an instant. ``owner`` (uid, gid) gives the new file
    that owner first (keeping a replaced file's owner: a zone file BIND reads as ``bind``);
    changing it needs the right to (root), else :class:`PermissionError`.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])  # before fchmod: a chown may clear setgid bits
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def fsync_dir(d: str | os.PathLike[str]) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(p: Path) -> Path:
    """A temp name beside ``p`` of the form atomic_write's ``mkstemp`` uses
    (``.NAME.XXXXXXXX.tmp``), so :func:`remove_temp_files` finds what a killed run left."""
    import secrets

    return p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")


def replace_with_symlink(path: str | os.PathLike[str], target: str) -> None:
    """Make ``path`` a symbolic link to ``target`` in one rename: a reader opening ``path`` gets
    the old file (or link) or the new link, never nothing."""
    p = Path(path)
    while True:
        tmp = _temp_name(p)
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


def remove_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files that :func:`atomic_write` or :func:`replace_with_symlink` of
    ``path`` left behind when the process was killed (``.NAME.XXXXXXXX.tmp`` beside it).
    Returns what was removed; a missing directory is nothing to do."""
    import re

    p = Path(path)
    pattern = re.compile(rf"\.{re.escape(p.name)}\.[a-z0-9_]{{8}}\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(p.parent))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if pattern.fullmatch(entry.name) and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
