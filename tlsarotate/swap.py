"""Installing the next certificate at the deployed paths, reloading the service, rolling back.

Each file is replaced atomically (temp file in the same directory, fsync, rename); the previous
files are kept as ``*.prev``; key files are 0600 from the first byte. If the reload command
fails, or the service then serves something else than what was installed (``verify``), the
previous files are put back, the service reloaded again, and a :class:`SwapError` raised: the
engine stops there and never retires records.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tlsarotate import material
from tlsarotate.config import CertPaths, CertSlot
from tlsarotate.errors import SwapError, TlsarotateError
from tlsarotate.fsutil import atomic_write
from tlsarotate.providers.base import Runner

log = logging.getLogger("tlsarotate.swap")

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)

# verify(slot, installed material) -> None if the live service serves it, else why not
Verifier = Callable[[CertSlot, material.Material], "str | None"]


@dataclass(frozen=True)
class Bundle:
    """The PEM bytes of a certificate chain and its key, as read from the next location."""

    chain_pem: bytes
    key_pem: bytes

    def combined(self) -> bytes:
        return self.key_pem + self.chain_pem


def read_bundle(paths: CertPaths) -> Bundle:
    """Read the chain and key PEM from cert+key, a combined file, or a certbot lineage."""
    try:
        if paths.lineage:
            return Bundle(
                (paths.lineage / "fullchain.pem").read_bytes(),
                (paths.lineage / "privkey.pem").read_bytes(),
            )
        if paths.combined:
            data = paths.combined.read_bytes()
            blocks = [m.group(0) for m in _BLOCK.finditer(data)]
            key = b"".join(b for b in blocks if b.split(b"\n", 1)[0].endswith(b"PRIVATE KEY-----"))
            chain = b"".join(b for b in blocks if b.startswith(b"-----BEGIN CERTIFICATE"))
            return Bundle(_nl(chain), _nl(key))
        assert paths.cert is not None and paths.key is not None
        return Bundle(paths.cert.read_bytes(), paths.key.read_bytes())
    except OSError as e:
        raise SwapError(f"cannot read the next certificate {paths.describe()}: {e}") from None


def _nl(b: bytes) -> bytes:
    return b if b.endswith(b"\n") else b + b"\n"


def _targets(deployed: CertPaths, bundle: Bundle) -> list[tuple[Path, bytes, int]]:
    """(path, bytes, mode) to write; the key first, so a crash leaves the old cert beside
    the new key at worst, which the swap journal then redoes."""
    if deployed.combined:
        return [(deployed.combined, bundle.combined(), 0o600)]
    assert deployed.cert is not None and deployed.key is not None
    return [(deployed.key, bundle.key_pem, 0o600), (deployed.cert, bundle.chain_pem, 0o644)]


Saved = list[tuple[Path, bytes, int]]  # (deployed path, its previous bytes, mode)


def _prev(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def _backup(targets: Sequence[tuple[Path, bytes, int]]) -> Saved:
    """Copy each deployed file to ``*.prev``; key files (mode 0600 targets) stay 0600."""
    saved: Saved = []
    for p, _, target_mode in targets:
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise SwapError(f"cannot read the deployed file {p}: {e.strerror}") from None
        mode = 0o600 if target_mode == 0o600 else p.stat().st_mode & 0o7777
        atomic_write(_prev(p), data, mode=mode)
        saved.append((p, data, mode))
    return saved


def _run_reload(argv: Sequence[str], runner: Runner) -> str | None:
    if not argv:
        return None
    try:
        proc = runner(argv)
    except (OSError, ValueError) as e:
        return f"{' '.join(argv)!r} could not run: {e}"
    except Exception as e:  # subprocess.TimeoutExpired and the like
        return f"{' '.join(argv)!r} failed: {type(e).__name__}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        return f"{' '.join(argv)!r} exited {proc.returncode}" + (f": {detail[0]}" if detail else "")
    return None


def install(
    slot: CertSlot,
    expected_fingerprint: str,
    runner: Runner,
    verify: Verifier | None = None,
) -> material.Material:
    """Install ``slot.next`` at ``slot.deployed``, reload, verify. Returns the installed
    Material. On failure the previous files are restored and the service reloaded again."""
    assert slot.next is not None
    where = slot.next.describe()
    bundle = read_bundle(slot.next)
    # what gets installed is exactly these bytes: check them, not an earlier read of the files
    try:
        nxt = material.parse(bundle.combined(), where)
        key = material.parse(bundle.key_pem, where)
    except TlsarotateError as e:
        raise SwapError(f"certificate {slot.name!r}: next certificate unusable: {e}") from None
    if key.spki != nxt.spki or nxt.fingerprint != expected_fingerprint:
        raise SwapError(
            f"certificate {slot.name!r}: the next certificate at {where} is not the one planned "
            "(it changed while it was read, or since the plan was made); nothing installed, "
            "re-run to re-plan"
        )
    targets = _targets(slot.deployed, bundle)
    saved = _backup(targets)
    for path, data, mode in targets:
        try:
            atomic_write(path, data, mode=mode)
        except OSError as e:
            _restore(saved, slot, runner)
            raise SwapError(f"cannot write {path}: {e.strerror}; previous files restored") from None
    problem = _run_reload(slot.reload, runner)
    if problem is None and verify is not None:
        problem = verify(slot, nxt)
    if problem is not None:
        again = _restore(saved, slot, runner)
        tail = "" if again is None else f"; the reload after restoring failed too: {again}"
        raise SwapError(
            f"certificate {slot.name!r}: swap to the next certificate failed: {problem}; "
            f"the previous certificate was restored{tail}. Records were NOT retired."
        )
    log.info("certificate %r: installed %s", slot.name, nxt.spki_sha256[:16])
    return nxt


def _restore(saved: Saved, slot: CertSlot, runner: Runner) -> str | None:
    for path, data, mode in saved:
        atomic_write(path, data, mode=mode)
    return _run_reload(slot.reload, runner)


def restore_previous(slot: CertSlot, runner: Runner) -> str | None:
    """Put the ``*.prev`` copies back and reload (a crashed swap whose next certificate has
    changed since). Returns the reload's problem, if any."""
    saved: Saved = []
    for path in (slot.deployed.key, slot.deployed.cert, slot.deployed.combined):
        if path is not None and _prev(path).exists():
            prev = _prev(path)
            saved.append((path, prev.read_bytes(), prev.stat().st_mode & 0o7777))
    return _restore(saved, slot, runner)


def reload_and_verify(
    slot: CertSlot, installed: material.Material, runner: Runner, verify: Verifier | None
) -> None:
    """After a crash mid-swap whose files are already in place: reload and verify again."""
    problem = _run_reload(slot.reload, runner)
    if problem is None and verify is not None:
        problem = verify(slot, installed)
    if problem is not None:
        raise SwapError(f"certificate {slot.name!r}: finishing an interrupted swap: {problem}")
