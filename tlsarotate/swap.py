"""The swap: installing the next pair at the deployed paths, reloading the service, verifying
it, and putting the previous pair back when any of that fails; and the primitives that finish or
undo a swap a killed run left (engine.recover decides which to use).

No reader ever sees a key beside a certificate it does not belong to, whatever moment the
process dies at: a combined file is replaced by one rename, a cert + key pair is switched by one
rename of its versioned store's ``current`` link (certstore.py holds both layouts). The swap
journal (state.SwapJournal) is written before anything moves and names the fingerprints of both
pairs and where each is; a run that was killed is finished or undone from exactly those files.

If the reload command fails or runs past ``reload_timeout`` (reload.py), or the service then
serves something else than what was installed (``verify``, postswap.py), the previous pair is
put back, the service reloaded again, and a :class:`SwapError` raised: the engine stops there
and never retires records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tlsarotate import material
from tlsarotate.certstore import file_meta, prev_path, store_for, write_like
from tlsarotate.config import CertPaths, CertSlot, load_cert
from tlsarotate.errors import SwapError, TlsarotateError
from tlsarotate.fsutil import (
    read_file,
    remove_stale_temps,
)
from tlsarotate.pair import Pair, load_or_none, read_pair
from tlsarotate.reload import run_reload
from tlsarotate.runner import Runner

log = logging.getLogger("tlsarotate.swap")

# verify(slot, installed material) -> None if the live service serves it, else why not
Verifier = Callable[[CertSlot, material.Material], "str | None"]


class RestoreFailed(SwapError):
    """The swap failed and the previous pair could not be put back: the journal stays, so the
    next run recovers from the files it names."""


# -- the swap ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A swap read and checked, nothing moved yet: what the journal records."""

    slot: CertSlot
    pair: Pair  # what gets installed
    previous: material.Material  # what is deployed now
    backup: Path  # where the pair deployed now is kept during the swap
    installed: Path  # where the new pair is written


def _read_next(slot: CertSlot, expected_fingerprint: str) -> Pair:
    """The next pair, read once; :class:`SwapError` if it is not the one planned."""
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
    return pair


def prepare(slot: CertSlot, expected_fingerprint: str) -> Prepared:
    """Read the next pair (once) and the deployed one; decide where each will be. Nothing is
    written; :class:`SwapError` if the next pair is not the one planned."""
    pair = _read_next(slot, expected_fingerprint)
    try:
        previous = load_cert(slot.deployed)
    except TlsarotateError as e:
        raise SwapError(
            f"certificate {slot.name!r}: the deployed pair is unusable ({e}); nothing installed"
        ) from None
    store = store_for(slot)
    if store is None:
        assert slot.deployed.combined is not None
        f = slot.deployed.combined
        return Prepared(slot, pair, previous, prev_path(f), f)
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
    store = store_for(slot)
    try:
        if store is None:
            f = slot.deployed.combined
            assert f is not None
            meta = file_meta(f)
            write_like(p.backup, read_file(f, "key and chain", error=SwapError), meta, secret=True)
            write_like(f, p.pair.combined(), meta, secret=True)
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
    failed = run_reload(slot, runner)
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
    again = run_reload(slot, runner)
    tail = "reloaded" if again is None else f"its reload failed too: {again}"
    raise SwapError(
        f"certificate {slot.name!r}: swap to the next certificate failed: {problem}; "
        f"the previous certificate was restored and {tail}. Records were NOT retired."
    )


def install_first(
    slot: CertSlot, expected_fingerprint: str, runner: Runner | None, verify: Verifier | None
) -> material.Material:
    """A first issuance (see bootstrap.py): nothing is deployed, so the next pair is written to
    the deployed paths (a missing directory is created 0755; the key file is 0600), the service
    reloaded and verified. Nothing to back up or put back: when the reload or the check fails,
    the pair stays installed (its records are published, or none are) and :class:`SwapError`
    says so. Returns what was installed."""
    pair = _read_next(slot, expected_fingerprint)
    d = slot.deployed
    paths = [p for p in (d.combined, d.cert, d.key) if p is not None]
    if any(os.path.lexists(p) for p in paths):
        raise SwapError(
            f"certificate {slot.name!r}: {d.describe()} appeared since the plan was made; "
            "nothing installed, re-run to re-plan"
        )
    try:
        for p in paths:
            p.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        store = store_for(slot)
        if store is None:
            assert d.combined is not None
            write_like(d.combined, pair.combined(), None, secret=True)
        else:
            v = store.fresh()
            store.write_version(v, pair.chain_pem, pair.key_pem)
            store.switch(v)
            store.link()
            store.prune({v})
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise SwapError(
            f"certificate {slot.name!r}: installing the first certificate: cannot write{where}: "
            f"{e.strerror or e}"
        ) from None
    failed = run_reload(slot, runner)
    if failed is None and verify is not None:
        failed = verify(slot, pair.material)
    if failed is not None:
        raise SwapError(
            f"certificate {slot.name!r}: the first certificate is installed at {d.describe()}, "
            f"but {failed}"
        )
    log.info("certificate %r: installed the first %s", slot.name, pair.material.spki_sha256[:16])
    return pair.material


# -- recovery primitives (engine.recover decides which to use) ---------------------------------


def deployed(slot: CertSlot) -> material.Material | None:
    """What the deployed paths hold now (None if unreadable or not a matching pair)."""
    return load_or_none(slot.deployed)


def kept(slot: CertSlot, where: str) -> material.Material | None:
    """The pair kept at ``where`` (a journal's ``backup`` or ``installed``): a version directory
    of the slot's store, its combined file or ``*.prev``; "" (an older journal): the
    ``*.prev`` copies. None if there is no pair there."""
    store = store_for(slot)
    if store is None:
        f = slot.deployed.combined
        assert f is not None
        if where in ("", str(prev_path(f))):
            return load_or_none(CertPaths(combined=prev_path(f)))
        return load_or_none(CertPaths(combined=f)) if where == str(f) else None
    v = store.version(where)
    if v is not None:
        return store.pair_at(v)
    if where == "":
        return load_or_none(CertPaths(cert=prev_path(store.cert), key=prev_path(store.key)))
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
    store = store_for(slot)
    if store is None:
        f = slot.deployed.combined
        assert f is not None
        src = prev_path(f) if where in ("", str(prev_path(f))) else f
        if src != f:
            data = read_file(src, "key and chain", error=SwapError)
            write_like(f, data, file_meta(f), secret=True)
        return
    v = store.version(where)
    if v is None:  # an older journal's *.prev copies: into a version of their own
        v = store.fresh()
        chain = read_file(prev_path(store.cert), "certificate", error=SwapError)
        key = read_file(prev_path(store.key), "key", error=SwapError)
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
    problem = run_reload(slot, runner)
    if problem is None and verify is not None:
        problem = verify(slot, installed)
    if problem is None:
        store = store_for(slot)
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
    store = store_for(slot)
    if store is not None:
        paths += store.temp_paths()
        paths += [prev_path(store.cert), prev_path(store.key)]
    elif slot.deployed.combined is not None:
        paths += [slot.deployed.combined, prev_path(slot.deployed.combined)]
    removed: list[Path] = []
    for p in paths:
        # under the service lock: every temp file there is a killed run's
        removed += [p.parent / n for n in remove_stale_temps(p, older_than=0, links=True)]
    return removed
