"""The deployed pair's files on disk: the versioned store of a cert + key pair and its atomic
``current`` switch, the ``*.prev`` copy of a combined file, and the writes that keep a replaced
file's owner, group and mode.

- ``deployed: {combined: F}``: the key and chain are one file, replaced by one rename. The file
  before is kept as ``F.prev`` (:func:`prev_path`) during the swap.
- ``deployed: {cert: A, key: B}``: two files cannot be replaced together, so they become
  symbolic links into a versioned store beside the key (as certbot's ``live``/``archive``)::

      B_DIR/.tlsarotate/B_NAME/1/{cert.pem,key.pem}   the pair before (kept for a rollback)
      B_DIR/.tlsarotate/B_NAME/2/{cert.pem,key.pem}   the pair installed
      B_DIR/.tlsarotate/B_NAME/current -> 2
      A -> …/.tlsarotate/B_NAME/current/cert.pem
      B -> .tlsarotate/B_NAME/current/key.pem

  One rename of ``current`` switches both (:meth:`CertStore.switch`). The first swap converts
  regular files into this layout (:meth:`CertStore.convert`): the pair deployed now is copied
  into a version, ``current`` points at it, then ``B`` and ``A`` are each replaced by a link that
  resolves to the same bytes — at no moment is the pair torn. Versions older than the one before
  are pruned (:meth:`CertStore.prune`).

Every file written keeps the owner, group and mode of the file it replaces (a key is never
readable by others); a new directory those of its parent. Every write of the swap goes through
this module (:func:`write_like`, :meth:`CertStore.switch`, :meth:`CertStore.link`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from tlsarotate import material
from tlsarotate.config import CertPaths, CertSlot
from tlsarotate.errors import SwapError
from tlsarotate.fsutil import atomic_write, fsync_dir, read_file, replace_with_symlink
from tlsarotate.pair import load_or_none

STORE = ".tlsarotate"  # the versioned store's directory beside the deployed key
CERT, KEY, CURRENT = "cert.pem", "key.pem", "current"

# -- owner, group, mode ------------------------------------------------------------------------

Meta = tuple[int, int, int]  # uid, gid, mode


def file_meta(path: Path) -> Meta | None:
    """The owner, group and mode of ``path`` (through links); None if there is no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def write_like(path: Path, data: bytes, meta: Meta | None, secret: bool) -> None:
    """atomic_write with the owner, group and mode of ``meta`` (a key never world-readable;
    defaults: 0600 for a key, 0644 for a certificate)."""
    if meta is None:
        atomic_write(path, data, mode=0o600 if secret else 0o644)
        return
    uid, gid, mode = meta
    if secret:
        mode &= ~0o007
    # root always sets them (a setgid directory would otherwise give its group)
    same = (uid, gid) == (os.geteuid(), os.getegid())
    owner = (uid, gid) if os.geteuid() == 0 or not same else None
    atomic_write(path, data, mode=mode, owner=owner)


def mkdir_like(path: Path, like: Path) -> None:
    """Create ``path`` (if missing) with the owner, group and mode of the directory ``like``
    (its setgid and sticky bits too). One that exists must be a real directory owned by us or
    by ``like``'s owner: anyone else (in a world-writable directory) could switch the pair the
    server reads; :class:`SwapError` then."""
    st = os.stat(like)
    try:
        have = os.lstat(path)
    except FileNotFoundError:
        have = None
    if have is not None:
        if not stat.S_ISDIR(have.st_mode):
            raise SwapError(f"{path}: exists and is not a directory; refusing to keep keys there")
        if have.st_uid not in (os.geteuid(), st.st_uid):
            raise SwapError(
                f"{path}: owned by uid {have.st_uid}, not by the owner of {like}; refusing to "
                "keep keys there"
            )
        return
    os.mkdir(path, 0o700)
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, st.st_mode & 0o3777)
    fsync_dir(path.parent)


def prev_path(path: Path) -> Path:
    """The ``*.prev`` copy beside a deployed file (a combined file's backup during a swap; an
    older journal's copies of a cert + key pair)."""
    return path.with_name(path.name + ".prev")


# -- the versioned store of a cert + key pair --------------------------------------------------


@dataclass(frozen=True)
class CertStore:
    """The versioned store of the pair deployed at ``cert`` + ``key``."""

    cert: Path  # deployed cert path (a link once converted)
    key: Path  # deployed key path (a link once converted)

    @property
    def root(self) -> Path:
        return self.key.parent / STORE / self.key.name

    @property
    def current(self) -> Path:
        return self.root / CURRENT

    def link_target(self, path: Path, name: str) -> str:
        """Relative beside the store (as certbot's links); absolute from another directory
        (a relative path through a symlinked directory would resolve elsewhere)."""
        if path.parent == self.key.parent:
            return os.path.relpath(self.current / name, path.parent)
        return str(Path(os.path.abspath(self.current / name)))

    def version(self, name: str) -> Path | None:
        """A version directory of this store named by a journal (None if it is not one)."""
        if not name:
            return None
        p = Path(name)
        return p if p.parent == self.root and p.name.isdigit() else None

    def current_version(self) -> Path | None:
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        return self.root / target if target.isdigit() else None

    def converted(self) -> bool:
        """The deployed paths are this store's links and ``current`` holds a pair's files."""

        def links(path: Path, name: str) -> bool:
            try:
                return os.readlink(path) == self.link_target(path, name)
            except OSError:
                return False

        cur = self.current_version()
        return (
            cur is not None
            and (cur / CERT).is_file()
            and (cur / KEY).is_file()
            and links(self.cert, CERT)
            and links(self.key, KEY)
        )

    def numbers(self) -> list[int]:
        try:
            return sorted(int(e.name) for e in os.scandir(self.root) if e.name.isdigit())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def fresh(self, after: int = 0) -> Path:
        """A version directory not in the store yet, numbered above ``after`` and every one."""
        return self.root / str(max([after, *self.numbers()]) + 1)

    def write_version(self, vdir: Path, chain: bytes, key: bytes) -> None:
        """A new version directory holding ``chain`` and ``key``, with the owner, group and mode
        of the files deployed now (read through the links)."""
        cert_meta, key_meta = file_meta(self.cert), file_meta(self.key)
        mkdir_like(self.root.parent, self.key.parent)
        mkdir_like(self.root, self.key.parent)
        mkdir_like(vdir, self.key.parent)
        write_like(vdir / KEY, key, key_meta, secret=True)
        write_like(vdir / CERT, chain, cert_meta, secret=False)

    def switch(self, vdir: Path) -> None:
        """Point ``current`` at ``vdir``: one rename switches certificate and key together."""
        replace_with_symlink(self.current, vdir.name)

    def convert(self, vdir: Path) -> None:
        """Put the deployed regular files into the store without changing what they read as."""
        chain = read_file(self.cert, "certificate", error=SwapError)
        key = read_file(self.key, "private key", error=SwapError)
        self.write_version(vdir, chain, key)
        self.switch(vdir)
        replace_with_symlink(self.key, self.link_target(self.key, KEY))
        replace_with_symlink(self.cert, self.link_target(self.cert, CERT))

    def link(self) -> None:
        """Make the deployed paths the store's links (after ``current`` was switched)."""
        for path, name in ((self.key, KEY), (self.cert, CERT)):
            target = self.link_target(path, name)
            with contextlib.suppress(OSError):
                if os.readlink(path) == target:
                    continue
            replace_with_symlink(path, target)

    def prune(self, keep: set[Path]) -> None:
        """Remove every version but ``current``'s and ``keep``."""
        keep = keep | {v for v in (self.current_version(),) if v is not None}
        for n in self.numbers():
            v = self.root / str(n)
            if v not in keep:
                shutil.rmtree(v, ignore_errors=True)

    def pair_at(self, vdir: Path) -> material.Material | None:
        return load_or_none(CertPaths(cert=vdir / CERT, key=vdir / KEY))

    def temp_paths(self) -> list[Path]:
        """The paths beside which a killed write may have left a temp file."""
        out = [self.cert, self.key, self.current]
        out += [self.root / str(n) / f for n in self.numbers() for f in (CERT, KEY)]
        return out


def store_for(slot: CertSlot) -> CertStore | None:
    """The versioned store of a slot deployed as cert + key; None for a combined file."""
    d = slot.deployed
    if d.cert is None or d.key is None:
        return None
    return CertStore(d.cert, d.key)
