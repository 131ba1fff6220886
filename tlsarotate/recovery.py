"""Recovery after a killed run: finish or undo the swap it interrupted, from the journal in
the state (which names both pairs and where each is), and replace a keep-ahead key a finished
swap used. Which of swap.py's recovery primitives to use is decided here; the state changes
are :mod:`tlsarotate.phases`' (``abort_swap``, ``after_swap`` through the engine)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import phases, records, swap
from tlsarotate.config import Service
from tlsarotate.errors import RecordError, SwapError
from tlsarotate.material import Material
from tlsarotate.reload import run_reload
from tlsarotate.state import State

if TYPE_CHECKING:
    from tlsarotate.engine import Engine

log = logging.getLogger("tlsarotate.engine")


def recover(engine: Engine, svc: Service) -> None:
    """Clean up after a killed run, and finish or undo a swap it interrupted (the journal
    in the state names both pairs and where each is). A pair is deployed or kept only if
    the published records accept it; if no pair on disk qualifies, stop with one line."""
    for slot in svc.certificates:
        for path in swap.cleanup(slot):
            log.info("service %s: removed %s, left by a killed run", svc.name, path)
    st = engine.store.load(svc.name)
    if st.swap is None:
        # a run killed between recording a keep-ahead swap and replacing the used key
        for slot in svc.certificates:
            now = swap.deployed(slot) if slot.next_key is not None else None
            if now is not None:
                engine.rotate_next_key(svc, slot.name, now)
        return
    j = st.swap
    cfg_slot = next((s for s in svc.certificates if s.name == j.slot), None)
    if cfg_slot is None:
        engine.store.save(phases.abort_swap(st))
        return
    engine.event(f"{svc.name}: recovering the swap of {j.slot!r} interrupted at {j.started:.0f}")
    published = engine.providers[svc.provider].read(svc.zone, tuple(svc.owners))

    def accepted(m: Material | None) -> bool:
        return m is not None and all(
            o in published and records.accepts(published[o].records, m.chain_der)
            for o in svc.owners
        )

    def clear() -> None:
        engine.store.save(phases.abort_swap(engine.store.load(svc.name)))

    disk = swap.deployed(cfg_slot)
    kept = swap.kept(cfg_slot, j.backup)
    backup_ok = kept is not None and accepted(kept)
    if kept is not None and j.previous and kept.fingerprint != j.previous:
        backup_ok = False  # not the pair this journal backed up (a rollover before)
    previous = j.previous or (kept.fingerprint if kept is not None else "")
    verifier = engine.verifier(svc)
    old_fp = j.previous or st.deployed.get(j.slot, "")
    old_records = records.build_all(kept, svc.params) if kept is not None and backup_ok else []

    def finish(installed: Material) -> None:
        try:
            swap.finish(
                cfg_slot,
                installed,
                engine.runner,
                verifier,
                j.backup if backup_ok else None,
                previous,
            )
        except swap.RestoreFailed:
            raise
        except SwapError:
            clear()  # the previous pair is back in place and reloaded
            raise
        replaced = old_records or _ours_besides(engine.store.load(svc.name), installed, svc)
        engine.finish_swap(svc, j.slot, old_fp, replaced)
        engine.rotate_next_key(svc, j.slot, installed)  # as an uninterrupted swap does

    if disk is not None and disk.fingerprint == j.fingerprint and accepted(disk):
        finish(disk)  # the new pair is in place: reload and verify again
        return
    if disk is not None and accepted(disk):
        # nothing was switched, or it was switched back: keep it; the service may have
        # been reloaded with the new pair meanwhile, so reload once more
        engine.event(
            f"{svc.name}: the swap of {j.slot!r} did not happen; keeping the deployed pair"
        )
        problem = run_reload(cfg_slot, engine.runner)
        clear()
        if problem is not None:
            raise SwapError(
                f"certificate {j.slot!r}: reloading after an interrupted swap: {problem}"
            )
        return
    if backup_ok:
        engine.event(f"{svc.name}: restoring the pair the swap of {j.slot!r} backed up")
        swap.put_back(cfg_slot, j.backup, previous)
        problem = run_reload(cfg_slot, engine.runner)
        clear()
        if problem is not None:
            raise SwapError(
                f"certificate {j.slot!r}: the previous pair was restored after an "
                f"interrupted swap, but its reload failed: {problem}"
            )
        return
    new = swap.kept(cfg_slot, j.installed) if j.installed else None
    if new is not None and new.fingerprint == j.fingerprint and accepted(new):
        engine.event(f"{svc.name}: installing the pair the swap of {j.slot!r} wrote")
        swap.put_back(cfg_slot, j.installed, j.fingerprint)
        finish(new)
        return
    found = (
        "unreadable or not a matching pair"
        if disk is None
        else (f"{disk.fingerprint[:16]}…, whose records are not published")
    )
    raise SwapError(
        f"certificate {j.slot!r}: an interrupted swap can be neither finished nor undone "
        f"safely: the deployed pair at {cfg_slot.deployed.describe()} is {found}, and no "
        "kept pair has its records published; deploy a pair whose records are published "
        "and re-run"
    )


def _ours_besides(st: State, installed: Material, svc: Service) -> list[TLSA]:
    """The records this tlsarotate published that ``installed`` does not account for: the
    replaced pair's, when its backup is gone and its records cannot be built again. Retiring
    them is safe: a record some certificate still needs is kept whatever the list says."""
    new = set()
    for params in svc.params:
        try:
            new.add(records.to_text(records.build(installed, params)))
        except RecordError:  # a combination this chain cannot give (2 x x, no CA sent)
            continue
    ours = {t for texts in (st.ours or {}).values() for t in texts}
    return [records.from_text(t) for t in sorted(ours - new)]
