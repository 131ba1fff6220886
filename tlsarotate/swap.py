"""Installing the next certificate at the deployed paths, reloading the service, rolling back.

No reader ever sees a key beside a certificate it does not belong to, whatever moment the
process dies at:

- ``deployed: {combined: F}``: the key and chain are one file, replaced by one rename. The file
  before is kept as ``F.prev`` during the swap.
- ``deployed: {cert: A, key: B}``: two files cannot be replaced together, so they become
  symbolic links into a versioned store beside the key (as certbot's ``live``/``archive``)::

      B_DIR/.tlsarotate/B_NAME/1/{cert.pem,key.pem}   the pair before (kept for a rollback)
      B_DIR/.tlsarotate/B_NAME/2/{cert.pem,key.pem}   the pair installed
      B_DIR/.tlsarotate/B_NAME/current -> 2
      A -> …/.tlsarotate/B_NAME/current/cert.pem
      B -> .tlsarotate/B_NAME/current/key.pem

  One rename of ``current`` switches both. The first swap converts regular files into this
  layout: the pair deployed now is copied into a version, ``current`` points at it, then ``B``
  and ``A`` are each replaced by a link that resolves to the same bytes — at no moment is the
  pair torn. Versions older than the one before are pruned.

Every file written keeps the owner, group and mode of the file it replaces (a key is never
readable by others); a new directory those of its parent. The swap journal (state.SwapJournal)
is written before anything moves and names the fingerprints of both pairs and where each is; a
run that was killed is finished or undone from exactly those files (engine.recover).

If the reload command fails or runs past ``reload_timeout`` (its process group is then killed),
or the service then serves something else than what was installed (``verify``), the previous
pair is put back, the service reloaded again, and a :class:`SwapError` raised: the engine stops
there and never retires records.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

from cryptography.hazmat.primitives import serialization

from tlsarotate import material
from tlsarotate.config import CertPaths, CertSlot, load_cert
from tlsarotate.errors import SwapError, TlsarotateError
from tlsarotate.fsutil import (
    atomic_write,
    fsync_dir,
    read_file,
    remove_stale_temps,
    replace_with_symlink,
)
from tlsarotate.runner import Runner

log = logging.getLogger("tlsarotate.swap")

STORE = ".tlsarotate"  # the versioned store's directory beside the deployed key
CERT, KEY, CURRENT = "cert.pem", "key.pem", "current"
OUTPUT_LIMIT = 65536  # bytes of a reload command's output read (only its first line is shown)

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL
)

# verify(slot, installed material) -> None if the live service serves it, else why not
Verifier = Callable[[CertSlot, material.Material], "str | None"]


class RestoreFailed(SwapError):
    """The swap failed and the previous pair could not be put back: the journal stays, so the
    next run recovers from the files it names."""


# -- reading: one reader for the planner's bytes and the swap's --------------------------------


@dataclass(frozen=True)
class Pair:
    """A certificate chain and its private key as they will be installed (PEM), and what they
    are (parsed from exactly these bytes' sources by the same reader the planner uses)."""

    chain_pem: bytes
    key_pem: bytes
    material: material.Material

    def combined(self) -> bytes:
        return self.key_pem + self.chain_pem


def _pem_chain(m: material.Material) -> bytes:
    """The chain exactly as parsed, as PEM (a DER certificate file becomes PEM here), in the
    strict form of RFC 7468 (64-character lines), as openssl and cryptography write it."""
    out = []
    for der in m.chain_der:
        b64 = base64.b64encode(der)
        lines = b"".join(b64[i : i + 64] + b"\n" for i in range(0, len(b64), 64))
        out.append(b"-----BEGIN CERTIFICATE-----\n" + lines + b"-----END CERTIFICATE-----\n")
    return b"".join(out)


def _pem_key(data: bytes, where: Path) -> bytes:
    """The key's PEM bytes: a PEM file as it is, a DER key converted (PKCS#8)."""
    if b"-----BEGIN " in data:
        return data if data.endswith(b"\n") else data + b"\n"
    try:
        key = serialization.load_der_private_key(data, password=None)
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    except (TypeError, ValueError) as e:
        raise SwapError(f"{where}: cannot convert the DER private key to PEM: {e}") from None


def _read(path: Path, what: str) -> bytes:
    return read_file(path, what, error=SwapError)


def _parse_pair(cert_path: Path, cert_data: bytes, key_path: Path, key_data: bytes) -> Pair:
    """The checks of material.load_pair, on bytes already read (PEM or DER, as the planner)."""
    cert = material.parse(cert_data, cert_path)
    if not cert.chain:
        raise SwapError(f"{cert_path}: expected a certificate, found a {cert.kind}")
    key = material.parse(key_data, key_path)
    if key.kind != "private key":
        raise SwapError(f"{key_path}: expected a private key, found a {key.kind}")
    if key.spki != cert.spki:
        raise SwapError(f"{key_path}: the private key does not belong to the certificate")
    return Pair(_pem_chain(cert), _pem_key(key_data, key_path), cert)


def _parse_combined(path: Path, data: bytes) -> Pair:
    """The checks of material.load_combined, on bytes already read."""
    cert = material.parse(data, path)
    if not cert.chain:
        raise SwapError(f"{path}: no certificate found in the combined key+chain file")
    blocks = [m.group(0) for m in _KEY_BLOCK.finditer(data)]
    if not blocks:
        raise SwapError(f"{path}: no private key found in the combined key+chain file")
    key = material.parse(blocks[0], path)
    if key.spki != cert.spki:
        raise SwapError(f"{path}: the private key does not belong to the leaf certificate")
    return Pair(_pem_chain(cert), _pem_key(blocks[0], path), cert)


def read_pair(paths: CertPaths) -> Pair:
    """Read and check the pair at cert+key, a combined file, or a certbot lineage: each file is
    read once, and what is installed is exactly what was checked."""
    try:
        if paths.lineage:
            c, k = paths.lineage / "fullchain.pem", paths.lineage / "privkey.pem"
            return _parse_pair(c, _read(c, "certificate chain"), k, _read(k, "private key"))
        if paths.combined:
            return _parse_combined(paths.combined, _read(paths.combined, "key and chain"))
        assert paths.cert is not None and paths.key is not None
        return _parse_pair(
            paths.cert,
            _read(paths.cert, "certificate"),
            paths.key,
            _read(paths.key, "private key"),
        )
    except SwapError:
        raise
    except TlsarotateError as e:
        raise SwapError(str(e)) from None


def _load(paths: CertPaths) -> material.Material | None:
    try:
        return load_cert(paths)
    except TlsarotateError:
        return None


# -- owner, group, mode ------------------------------------------------------------------------

Meta = tuple[int, int, int]  # uid, gid, mode


def _meta(path: Path) -> Meta | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def _write(path: Path, data: bytes, meta: Meta | None, secret: bool) -> None:
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


def _mkdir(path: Path, like: Path) -> None:
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


# -- the versioned store of a cert + key pair --------------------------------------------------


@dataclass(frozen=True)
class _Store:
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
        return self.root / str(max([after, *self.numbers()]) + 1)

    def write_version(self, vdir: Path, chain: bytes, key: bytes) -> None:
        """A new version directory holding ``chain`` and ``key``, with the owner, group and mode
        of the files deployed now (read through the links)."""
        cert_meta, key_meta = _meta(self.cert), _meta(self.key)
        _mkdir(self.root.parent, self.key.parent)
        _mkdir(self.root, self.key.parent)
        _mkdir(vdir, self.key.parent)
        _write(vdir / KEY, key, key_meta, secret=True)
        _write(vdir / CERT, chain, cert_meta, secret=False)

    def switch(self, vdir: Path) -> None:
        """Point ``current`` at ``vdir``: one rename switches certificate and key together."""
        replace_with_symlink(self.current, vdir.name)

    def convert(self, vdir: Path) -> None:
        """Put the deployed regular files into the store without changing what they read as."""
        chain = _read(self.cert, "certificate")
        key = _read(self.key, "private key")
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
        return _load(CertPaths(cert=vdir / CERT, key=vdir / KEY))

    def temp_paths(self) -> list[Path]:
        out = [self.cert, self.key, self.current]
        out += [self.root / str(n) / f for n in self.numbers() for f in (CERT, KEY)]
        return out


def _store(slot: CertSlot) -> _Store | None:
    d = slot.deployed
    if d.cert is None or d.key is None:
        return None
    return _Store(d.cert, d.key)


def _prev(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


# -- reload ------------------------------------------------------------------------------------


def run_bounded(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in its own process group; past ``timeout`` seconds the whole group is
    killed (a ``systemctl reload`` stuck on a hung unit, a script's children) and
    :class:`subprocess.TimeoutExpired` raised.

    Done when the command exits, not when its output ends: a reload that (re)starts the
    server leaves a daemon holding the output it inherited, which must neither hold the
    reload up nor be killed. The output goes to unlinked temp files (its first
    :data:`OUTPUT_LIMIT` bytes are read, as UTF-8 with replacement)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

        def text(f: IO[bytes]) -> str:
            f.seek(0)
            return f.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")

        return subprocess.CompletedProcess(list(argv), proc.returncode, text(out), text(err))


def reload(slot: CertSlot, runner: Runner | None) -> str | None:
    """Run the slot's reload command (bounded by ``reload_timeout``); None if it succeeded,
    else one line saying why not. ``runner`` replaces the subprocess (tests)."""
    argv = slot.reload
    if not argv:
        return None
    cmd = repr(" ".join(argv))
    try:
        proc = run_bounded(argv, slot.reload_timeout) if runner is None else runner(argv)
    except subprocess.TimeoutExpired:
        return f"{cmd} timed out after {slot.reload_timeout:g} s and was killed"
    except (OSError, ValueError) as e:
        return f"{cmd} could not run: {getattr(e, 'strerror', None) or e}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        return f"{cmd} exited {proc.returncode}" + (f": {detail[0]}" if detail else "")
    return None


# -- the swap ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A swap read and checked, nothing moved yet: what the journal records."""

    slot: CertSlot
    pair: Pair  # what gets installed
    previous: material.Material  # what is deployed now
    backup: Path  # where the pair deployed now is kept during the swap
    installed: Path  # where the new pair is written


def prepare(slot: CertSlot, expected_fingerprint: str) -> Prepared:
    """Read the next pair (once) and the deployed one; decide where each will be. Nothing is
    written; :class:`SwapError` if the next pair is not the one planned."""
    assert slot.next is not None
    where = slot.next.describe()
    try:
        pair = read_pair(slot.next)
    except SwapError as e:
        raise SwapError(f"certificate {slot.name!r}: next certificate unusable: {e}") from None
    if pair.material.fingerprint != expected_fingerprint:
        raise SwapError(
            f"certificate {slot.name!r}: the next certificate at {where} is not the one planned "
            "(it changed while it was read, or since the plan was made); nothing installed, "
            "re-run to re-plan"
        )
    try:
        previous = load_cert(slot.deployed)
    except TlsarotateError as e:
        raise SwapError(
            f"certificate {slot.name!r}: the deployed pair is unusable ({e}); nothing installed"
        ) from None
    store = _store(slot)
    if store is None:
        assert slot.deployed.combined is not None
        f = slot.deployed.combined
        return Prepared(slot, pair, previous, _prev(f), f)
    if store.converted():
        backup = store.current_version()
        assert backup is not None
    else:
        backup = store.fresh()
    return Prepared(slot, pair, previous, backup, store.fresh(after=int(backup.name)))


def commit(p: Prepared, runner: Runner | None, verify: Verifier | None = None) -> None:
    """Install the prepared pair, reload, verify. On failure the previous pair is put back and
    the service reloaded again; :class:`SwapError` (:class:`RestoreFailed` if putting it back
    failed too)."""
    slot = p.slot
    store = _store(slot)
    try:
        if store is None:
            f = slot.deployed.combined
            assert f is not None
            meta = _meta(f)
            _write(p.backup, _read(f, "key and chain"), meta, secret=True)
            _write(f, p.pair.combined(), meta, secret=True)
        else:
            if not store.converted():
                store.convert(p.backup)
            store.write_version(p.installed, p.pair.chain_pem, p.pair.key_pem)
            store.switch(p.installed)
    except SwapError as e:
        raise SwapError(
            f"certificate {slot.name!r}: {e}; the deployed pair is unchanged. "
            "Records were NOT retired."
        ) from None
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        problem = f"cannot write{where}: {e.strerror or e}"
        now = deployed(slot)
        if now is not None and now.same_as(p.pair.material):
            # the switch (or the combined rename) is the last step: only a failing fsync of
            # the directory after it gets here
            _undo(slot, str(p.backup), p.previous.fingerprint, problem, runner)
        raise SwapError(
            f"certificate {slot.name!r}: {problem}; the deployed pair is unchanged. "
            "Records were NOT retired."
        ) from None
    failed = reload(slot, runner)
    if failed is None and verify is not None:
        failed = verify(slot, p.pair.material)
    if failed is not None:
        _undo(slot, str(p.backup), p.previous.fingerprint, failed, runner)
    if store is not None:
        store.prune({p.installed, p.backup})
    log.info("certificate %r: installed %s", slot.name, p.pair.material.spki_sha256[:16])


def _undo(
    slot: CertSlot, backup: str, fingerprint: str, problem: str, runner: Runner | None
) -> NoReturn:
    """Put the backup back, reload, and raise the one line saying so."""
    try:
        put_back(slot, backup, fingerprint)
    except (OSError, SwapError) as e:
        raise RestoreFailed(
            f"certificate {slot.name!r}: swap to the next certificate failed: {problem}; "
            f"putting the previous certificate back failed too: {e}. Records were NOT retired; "
            "the next run recovers"
        ) from None
    again = reload(slot, runner)
    tail = "reloaded" if again is None else f"its reload failed too: {again}"
    raise SwapError(
        f"certificate {slot.name!r}: swap to the next certificate failed: {problem}; "
        f"the previous certificate was restored and {tail}. Records were NOT retired."
    )


# -- recovery primitives (engine.recover decides which to use) ---------------------------------


def deployed(slot: CertSlot) -> material.Material | None:
    """What the deployed paths hold now (None if unreadable or not a matching pair)."""
    return _load(slot.deployed)


def kept(slot: CertSlot, where: str) -> material.Material | None:
    """The pair kept at ``where`` (a journal's ``backup`` or ``installed``): a version directory
    of the slot's store, its combined file or ``*.prev``; "" (an older journal): the
    ``*.prev`` copies. None if there is no pair there."""
    store = _store(slot)
    if store is None:
        f = slot.deployed.combined
        assert f is not None
        if where in ("", str(_prev(f))):
            return _load(CertPaths(combined=_prev(f)))
        return _load(CertPaths(combined=f)) if where == str(f) else None
    v = store.version(where)
    if v is not None:
        return store.pair_at(v)
    if where == "":
        return _load(CertPaths(cert=_prev(store.cert), key=_prev(store.key)))
    return None


def put_back(slot: CertSlot, where: str, fingerprint: str) -> None:
    """Deploy the pair kept at ``where`` (see :func:`kept`) if it is the one ``fingerprint``
    names; :class:`SwapError` if it is not. The caller reloads."""
    m = kept(slot, where)
    if m is None or m.fingerprint != fingerprint:
        raise SwapError(f"no pair {fingerprint[:16]}… at {where or 'the *.prev copies'}")
    try:
        _put_back(slot, where)
    except OSError as e:
        raise RestoreFailed(
            f"certificate {slot.name!r}: cannot deploy the pair kept at "
            f"{where or 'the *.prev copies'}: {e.strerror or e}"
        ) from None


def _put_back(slot: CertSlot, where: str) -> None:
    store = _store(slot)
    if store is None:
        f = slot.deployed.combined
        assert f is not None
        src = _prev(f) if where in ("", str(_prev(f))) else f
        if src != f:
            _write(f, _read(src, "key and chain"), _meta(f), secret=True)
        return
    v = store.version(where)
    if v is None:  # an older journal's *.prev copies: into a version of their own
        v = store.fresh()
        chain, key = _read(_prev(store.cert), "certificate"), _read(_prev(store.key), "key")
        store.write_version(v, chain, key)
    store.switch(v)
    store.link()
    store.prune({v})


def finish(
    slot: CertSlot,
    installed: material.Material,
    runner: Runner | None,
    verify: Verifier | None,
    backup: str | None,
    previous: str,
) -> None:
    """A swap killed after the new pair was in place: reload and verify again. On failure the
    backup (when the caller found it safe, else None) is put back and reloaded, as in a normal
    swap; without one :class:`RestoreFailed`."""
    problem = reload(slot, runner)
    if problem is None and verify is not None:
        problem = verify(slot, installed)
    if problem is None:
        store = _store(slot)
        if store is not None:
            store.prune({v for v in (store.version(backup or ""),) if v is not None})
        return
    problem = f"finishing an interrupted swap: {problem}"
    if backup is None:
        raise RestoreFailed(
            f"certificate {slot.name!r}: {problem}; no previous pair whose records are "
            "published to put back. Records were NOT retired."
        )
    _undo(slot, backup, previous, problem, runner)


def cleanup(slot: CertSlot) -> list[Path]:
    """Remove the temp files (copies of keys among them) a killed run left beside the
    deployed files and in the store. Returns what was removed."""
    paths: list[Path] = []
    store = _store(slot)
    if store is not None:
        paths += store.temp_paths()
        paths += [_prev(store.cert), _prev(store.key)]
    elif slot.deployed.combined is not None:
        paths += [slot.deployed.combined, _prev(slot.deployed.combined)]
    removed: list[Path] = []
    for p in paths:
        # under the service lock: every temp file there is a killed run's
        removed += [p.parent / n for n in remove_stale_temps(p, older_than=0, links=True)]
    return removed
