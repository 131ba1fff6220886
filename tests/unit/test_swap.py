"""swap: the procedure on tmp_path files with a runner standing for the reload command (no
process started). Where prepare puts the backup and the new pair, what commit leaves on success
and after a failed reload or verify, and the recovery primitives (kept, put_back, finish,
cleanup). The kill-at-every-operation proof is in tests/test_swap.py."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tlsarotate import pki, swap
from tlsarotate.certstore import STORE, CertStore
from tlsarotate.config import CertPaths, CertSlot, load_cert
from tlsarotate.errors import SwapError
from tlsarotate.material import Material


class Reloads:
    """The reload command: records each run; exits with the next code of ``codes`` (0 after)."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.runs: list[Sequence[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.runs.append(argv)
        code = self.codes.pop(0) if self.codes else 0
        return subprocess.CompletedProcess(list(argv), code, "", "boom" if code else "")


def _write(d: Path, ca: pki.Issued, combined: bool = False) -> CertPaths:
    d.mkdir(parents=True, exist_ok=True)
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    if combined:
        (d / "mx.pem").write_bytes(leaf.key_pem + pki.fullchain_pem(leaf, ca))
        return CertPaths(combined=d / "mx.pem")
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)
    return CertPaths(cert=d / "fullchain.pem", key=d / "privkey.pem")


def _slot(tmp_path: Path, ca: pki.Issued, combined: bool = False) -> CertSlot:
    return CertSlot(
        "default",
        _write(tmp_path / "deployed", ca, combined),
        _write(tmp_path / "next", ca),
        reload=("reload", "mail"),
    )


def _next(slot: CertSlot) -> Material:
    assert slot.next is not None
    return load_cert(slot.next)


def _one_line(e: pytest.ExceptionInfo[SwapError], *needles: str) -> None:
    text = str(e.value)
    assert "\n" not in text
    for n in needles:
        assert n in text


def test_the_first_swap_keeps_the_pair_before_as_version_1(tmp_path: Path, ca: pki.Issued) -> None:
    slot = _slot(tmp_path, ca)
    root = tmp_path / "deployed" / STORE / "privkey.pem"
    p = swap.prepare(slot, _next(slot).fingerprint)
    assert (p.backup, p.installed) == (root / "1", root / "2")
    assert not root.exists()  # prepare writes nothing
    swap.commit(p, Reloads())
    again = _slot(tmp_path / "later", ca)
    again = CertSlot("default", slot.deployed, again.next, reload=slot.reload)
    p2 = swap.prepare(again, _next(again).fingerprint)
    assert (p2.backup, p2.installed) == (root / "2", root / "3")


def test_a_combined_file_is_backed_up_beside_itself(tmp_path: Path, ca: pki.Issued) -> None:
    slot = _slot(tmp_path, ca, combined=True)
    f = tmp_path / "deployed" / "mx.pem"
    p = swap.prepare(slot, _next(slot).fingerprint)
    assert (p.backup, p.installed) == (tmp_path / "deployed" / "mx.pem.prev", f)
    swap.commit(p, Reloads())
    assert load_cert(slot.deployed).same_as(_next(slot))
    kept = swap.kept(slot, str(p.backup))
    assert kept is not None and kept.same_as(p.previous)
    assert swap.kept(slot, "") == kept  # an older journal: the *.prev copy


def test_a_next_pair_other_than_planned_is_one_line_and_writes_nothing(
    tmp_path: Path, ca: pki.Issued
) -> None:
    slot = _slot(tmp_path, ca)
    with pytest.raises(SwapError) as e:
        swap.prepare(slot, "0" * 64)
    _one_line(e, "'default'", "not the one planned", "nothing installed")
    assert not (tmp_path / "deployed" / STORE).exists()


def test_commit_installs_reloads_once_and_keeps_the_backup(tmp_path: Path, ca: pki.Issued) -> None:
    slot = _slot(tmp_path, ca)
    p = swap.prepare(slot, _next(slot).fingerprint)
    reloads = Reloads()
    swap.commit(p, reloads)
    assert reloads.runs == [("reload", "mail")]
    now = swap.deployed(slot)
    assert now is not None and now.same_as(_next(slot))
    store = CertStore(tmp_path / "deployed/fullchain.pem", tmp_path / "deployed/privkey.pem")
    assert store.current_version() == p.installed and store.numbers() == [1, 2]
    kept = swap.kept(slot, str(p.backup))
    assert kept is not None and kept.same_as(p.previous)


@pytest.mark.parametrize("combined", [False, True])
def test_a_failed_reload_puts_the_previous_pair_back_and_reloads(
    tmp_path: Path, ca: pki.Issued, combined: bool
) -> None:
    slot = _slot(tmp_path, ca, combined)
    p = swap.prepare(slot, _next(slot).fingerprint)
    reloads = Reloads(1)
    with pytest.raises(SwapError) as e:
        swap.commit(p, reloads)
    _one_line(e, "'reload mail' exited 1: boom", "restored and reloaded", "NOT retired")
    assert not isinstance(e.value, swap.RestoreFailed)
    assert len(reloads.runs) == 2
    now = swap.deployed(slot)
    assert now is not None and now.same_as(p.previous)


def test_a_verify_that_sees_another_certificate_rolls_back(tmp_path: Path, ca: pki.Issued) -> None:
    slot = _slot(tmp_path, ca)
    p = swap.prepare(slot, _next(slot).fingerprint)
    seen: list[Material] = []

    def verify(s: CertSlot, m: Material) -> str | None:
        seen.append(m)
        return "still serves another certificate"

    with pytest.raises(SwapError) as e:
        swap.commit(p, Reloads(), verify)
    _one_line(e, "still serves another certificate", "previous certificate was restored")
    assert seen == [p.pair.material]
    now = swap.deployed(slot)
    assert now is not None and now.same_as(p.previous)


def test_put_back_refuses_a_pair_the_journal_does_not_name(tmp_path: Path, ca: pki.Issued) -> None:
    slot = _slot(tmp_path, ca)
    p = swap.prepare(slot, _next(slot).fingerprint)
    swap.commit(p, Reloads())
    with pytest.raises(SwapError) as e:
        swap.put_back(slot, str(p.backup), "f" * 64)
    _one_line(e, "no pair ffffffffffffffff", str(p.backup))
    swap.put_back(slot, str(p.backup), p.previous.fingerprint)
    now = swap.deployed(slot)
    assert now is not None and now.same_as(p.previous)


def test_finish_without_a_backup_to_put_back_is_restore_failed(
    tmp_path: Path, ca: pki.Issued
) -> None:
    slot = _slot(tmp_path, ca)
    p = swap.prepare(slot, _next(slot).fingerprint)
    swap.commit(p, Reloads())
    with pytest.raises(swap.RestoreFailed) as e:
        swap.finish(slot, p.pair.material, Reloads(2), None, None, p.previous.fingerprint)
    _one_line(e, "finishing an interrupted swap", "no previous pair", "NOT retired")
    swap.finish(slot, p.pair.material, Reloads(), None, str(p.backup), p.previous.fingerprint)


def test_cleanup_removes_a_killed_run_s_temp_files_only(tmp_path: Path, ca: pki.Issued) -> None:
    slot = _slot(tmp_path, ca)
    p = swap.prepare(slot, _next(slot).fingerprint)
    swap.commit(p, Reloads())
    d = tmp_path / "deployed"
    leftovers = [d / ".privkey.pem.abc123.tmp", p.installed / ".key.pem.def456.tmp"]
    for f in leftovers:
        f.write_bytes(b"a copy of a key")
    (d / "notes.txt").write_text("the user's")
    assert sorted(swap.cleanup(slot)) == sorted(leftovers)
    assert not any(f.exists() for f in leftovers) and (d / "notes.txt").exists()
