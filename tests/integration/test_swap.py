"""The certificate swap on real files: the pair at the deployed paths is never torn, whatever
moment the process is killed at (a real fork + os._exit before every file operation); the
journal names both pairs before anything moves; recovery never deploys a pair whose records are
not published; owner, group and mode are kept; a hanging reload is bounded and killed; a failing
reload while finishing an interrupted swap restores; DER next certificates swap (as PEM)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.helpers import assert_one_line, assert_one_line_error, run_cli
from tests.support.world import Crash, SimWorld
from tlsarotate import (
    certfiles,
    certstore,
    config,
    demo,
    fsutil,
    material,
    pki,
    records,
    recovery,
    swap,
)
from tlsarotate.errors import ConfigError, SwapError
from tlsarotate.pair import read_pair
from tlsarotate.reload import run_reload
from tlsarotate.state import SwapJournal


class CombinedWorld(SimWorld):
    """A SimWorld whose service reads one combined key + chain file (Postfix chain_files)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        f = tmp / "deployed/mx.pem"
        d = tmp / "deployed"
        f.write_bytes((d / "privkey.pem").read_bytes() + (d / "fullchain.pem").read_bytes())
        f.chmod(0o600)
        for n in ("privkey.pem", "fullchain.pem"):
            (d / n).unlink()
        slot = dataclasses.replace(
            self.service.certificates[0], deployed=config.CertPaths(combined=f)
        )
        self.service = dataclasses.replace(self.service, certificates=(slot,))
        self.cfg = dataclasses.replace(self.cfg, services=(self.service,))
        self.served = self.deployed()

    def deployed(self) -> material.Material:
        f = self.tmp / "deployed/mx.pem"
        return certfiles.load_combined(f) if f.exists() else super().deployed()


def make_world(tmp: Path, layout: str) -> SimWorld:
    tmp.mkdir(parents=True, exist_ok=True)
    return SimWorld(tmp) if layout == "split" else CombinedWorld(tmp)


def ready_to_swap(w: SimWorld) -> None:
    """A renewal published and waited for: the next step is the swap."""
    w.new_next()
    w.apply()
    w.clock.advance(300)


def journal(w: SimWorld) -> dict[str, Any] | None:
    doc = json.loads((w.tmp / "state/mail.json").read_text())
    return doc["swap"]  # type: ignore[no-any-return]


def temp_files(d: Path) -> list[Path]:
    return [p for p in d.rglob(".*.tmp")]


def accepted_by_published(w: SimWorld, m: material.Material) -> bool:
    return all(records.accepts(rr.records, m.chain_der) for rr in w.current().values())


# -- a kill before every file operation ----------------------------------------------------------

OPS = ("replace", "rename", "symlink", "mkdir", "unlink", "rmdir", "fsync", "chmod", "chown")


def _in_child(w: SimWorld, kill_at: int, count_file: Path) -> None:
    """Runs in the forked child: one engine step (the swap), killed with os._exit before the
    ``kill_at``-th file operation; writes how many operations it made if it got through."""
    n = {"ops": 0}

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def op(*a: Any, **kw: Any) -> Any:
            if n["ops"] == kill_at:
                os._exit(17)  # a SIGKILL: no finally, no cleanup
            n["ops"] += 1
            return real(*a, **kw)

        return op

    for name in OPS:
        setattr(os, name, wrap(getattr(os, name)))
    try:
        w.engine().step([w.service], act=True)
    except BaseException:  # the child reports any failure by its exit code
        os._exit(3)
    count_file.write_text(str(n["ops"]))
    os._exit(0)


@pytest.mark.parametrize("layout", ["split", "combined"])
def test_a_kill_at_any_file_operation_never_leaves_a_torn_pair(tmp_path: Path, layout: str) -> None:
    k, total = 0, None
    while total is None:
        w = make_world(tmp_path / f"k{k}", layout)
        if layout == "split" and k % 2:
            # every other run starts from the versioned layout (a second rollover)
            ready_to_swap(w)
            w.apply()
        old = w.deployed()
        ready_to_swap(w)
        new = w.next()
        count_file = tmp_path / f"count{k}"
        pid = os.fork()
        if pid == 0:
            _in_child(w, k, count_file)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code in (0, 17), f"the child failed (exit {code}) at operation {k}"
        if code == 0:
            total = int(count_file.read_text())
            assert total < k + 1
        # the moment of the kill: the deployed paths hold one whole pair, the old or the new
        on_disk = w.deployed()  # load_pair/load_combined: raises if the key does not belong
        assert on_disk.same_as(old) or on_disk.same_as(new), k
        # the next run recovers: no journal left, no temp file, converges to the new pair
        w.served = on_disk if code == 0 else w.served  # the child's reload, if it got there
        w.apply(wait=True)
        assert w.deployed().same_as(new), k
        assert accepted_by_published(w, w.deployed())
        assert journal(w) is None, k
        assert temp_files(w.tmp / "deployed") == [], k
        store = w.tmp / "deployed/.tlsarotate/privkey.pem"
        if store.exists():  # at most the pair deployed and the one before
            assert len([p for p in store.iterdir() if p.name.isdigit()]) <= 2
        k += 1
    assert total > 10  # the kills really went through the swap's operations
    assert (layout == "split") == (w.tmp / "deployed/fullchain.pem").is_symlink()


# -- the journal --------------------------------------------------------------------------------


def test_journal_names_both_pairs_before_anything_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SimWorld(tmp_path)
    old = w.deployed()
    ready_to_swap(w)
    new = w.next()
    seen: list[dict[str, Any] | None] = []
    real = fsutil.atomic_write

    def first_write(*a: Any, **kw: Any) -> None:
        seen.append(journal(w))
        raise Crash("killed at the first file the swap writes")

    monkeypatch.setattr(certstore, "atomic_write", first_write)
    with pytest.raises(Crash):
        w.apply()
    monkeypatch.setattr(certstore, "atomic_write", real)
    j = seen[0]
    assert j is not None
    store = tmp_path / "deployed/.tlsarotate/privkey.pem"
    assert (j["fingerprint"], j["previous"]) == (new.fingerprint, old.fingerprint)
    assert (j["backup"], j["installed"]) == (str(store / "1"), str(store / "2"))


def test_a_crash_before_the_backup_never_restores_a_retired_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the journal was written but before any file moved, then the ACME client
    renews again: the rerun keeps the deployed certificate, never the one from the rollover
    before (whose records were retired)."""
    w = SimWorld(tmp_path)
    first = w.deployed()
    ready_to_swap(w)
    w.apply(wait=True)  # rollover 1 done: the first certificate's records are retired
    second = w.deployed()
    assert not second.same_as(first) and not accepted_by_published(w, first)
    ready_to_swap(w)
    real = fsutil.atomic_write
    calls = {"n": 0}

    def crash_first(*a: Any, **kw: Any) -> None:
        calls["n"] += 1
        raise Crash("before the backup")

    monkeypatch.setattr(certstore, "atomic_write", crash_first)
    with contextlib.suppress(Crash):
        w.apply()
    assert calls["n"] == 1
    monkeypatch.setattr(certstore, "atomic_write", real)
    w.new_next()  # another renewal before the rerun
    w.apply()
    assert w.deployed().same_as(second) and w.served.same_as(second)
    assert accepted_by_published(w, w.deployed())
    assert w.violations == []
    w.apply(wait=True)
    assert w.deployed().same_as(w.next()) and w.violations == []


def test_recovery_never_deploys_a_pair_whose_records_are_not_published(tmp_path: Path) -> None:
    """A torn pair on disk (an older version's crash) and a journal whose backup is a pair
    whose records were retired: recovery stops with one line and installs nothing."""
    w = SimWorld(tmp_path)
    first = w.deployed()
    first_key = (tmp_path / "deployed/privkey.pem").read_bytes()
    ready_to_swap(w)
    w.apply(wait=True)
    second = w.deployed()
    store = tmp_path / "deployed/.tlsarotate/privkey.pem"
    assert certfiles.load_pair(store / "1/cert.pem", store / "1/key.pem").same_as(first)
    # torn: the second certificate beside the first key, as regular files
    cert = (tmp_path / "deployed/fullchain.pem").read_bytes()
    _tear(w, cert, first_key)
    st = w.store.load("mail")
    j = SwapJournal("default", "ab" * 32, 1.0, first.fingerprint, str(store / "1"), "")
    w.store.save(st.with_(swap=j))
    with pytest.raises(SwapError) as e:
        w.apply()
    assert_one_line(
        e.value, "neither finished nor undone", "no kept pair has its records published"
    )
    assert (tmp_path / "deployed/privkey.pem").read_bytes() == first_key  # nothing installed
    assert (tmp_path / "deployed/fullchain.pem").read_bytes() == cert
    assert w.store.load("mail").swap == j  # still there: the next run says it again
    assert second.fingerprint != first.fingerprint


def _tear(w: SimWorld, cert: bytes, key: bytes) -> None:
    """Regular files at the deployed paths, as an older version's crash left them."""
    for p, data in (
        (w.tmp / "deployed/fullchain.pem", cert),
        (w.tmp / "deployed/privkey.pem", key),
    ):
        p.unlink()
        p.write_bytes(data)


def test_an_older_journal_with_a_torn_pair_is_undone_from_the_prev_copies(tmp_path: Path) -> None:
    """Upgraded in the middle of a crashed swap of the old code: new key beside the old
    certificate, the old pair in *.prev, a journal without fingerprints. The published records
    accept the *.prev pair: it is put back (into the store), then the rollover goes on."""
    w = SimWorld(tmp_path)
    old = w.deployed()
    ready_to_swap(w)
    d = tmp_path / "deployed"
    old_cert, old_key = (d / "fullchain.pem").read_bytes(), (d / "privkey.pem").read_bytes()
    (d / "fullchain.pem.prev").write_bytes(old_cert)
    (d / "privkey.pem.prev").write_bytes(old_key)
    _tear(w, old_cert, (tmp_path / "next/privkey.pem").read_bytes())
    legacy = {"slot": "default", "fingerprint": w.next().fingerprint, "started": 1.0}
    doc = json.loads((tmp_path / "state/mail.json").read_text())
    doc["swap"] = legacy
    (tmp_path / "state/mail.json").write_text(json.dumps(doc))
    events: list[str] = []
    e = w.engine()
    e.on_event = events.append
    recovery.recover(e, w.service)
    assert any("restoring the pair the swap of 'default' backed up" in x for x in events)
    assert w.deployed().same_as(old) and (d / "privkey.pem").is_symlink()
    assert journal(w) is None
    w.apply(wait=True)
    assert w.deployed().same_as(w.next()) and w.violations == []


def test_a_torn_pair_with_the_new_pair_written_is_finished_from_its_version(
    tmp_path: Path,
) -> None:
    """The backup named by the journal is gone, the deployed pair torn, the new version
    complete and its records published: recovery installs it and finishes the swap."""
    w = SimWorld(tmp_path)
    old = w.deployed()
    ready_to_swap(w)
    new = w.next()
    prepared = swap.prepare(w.service.certificates[0], new.fingerprint)
    store = tmp_path / "deployed/.tlsarotate/privkey.pem"
    assert prepared.installed == store / "2"
    certstore.CertStore(
        tmp_path / "deployed/fullchain.pem", tmp_path / "deployed/privkey.pem"
    ).write_version(prepared.installed, prepared.pair.chain_pem, prepared.pair.key_pem)
    d = tmp_path / "deployed"
    _tear(w, (d / "fullchain.pem").read_bytes(), (tmp_path / "next/privkey.pem").read_bytes())
    j = SwapJournal(
        "default", new.fingerprint, 1.0, old.fingerprint, str(store / "1"), str(store / "2")
    )
    w.store.save(w.store.load("mail").with_(swap=j))
    reloads = w.reloads
    recovery.recover(w.engine(), w.service)
    assert w.deployed().same_as(new) and w.served.same_as(new) and w.reloads == reloads + 1
    st = w.store.load("mail")
    assert st.swap is None and st.previous == {"default": old.fingerprint}
    w.apply(wait=True)
    assert w.published_texts() == {
        records.to_text(r) for r in records.build_all(new, w.service.params)
    }
    assert w.violations == []


def test_a_write_failure_leaves_the_deployed_pair_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SimWorld(tmp_path)
    old = w.deployed()
    ready_to_swap(w)
    real = fsutil.atomic_write

    def full(path: Any, *a: Any, **kw: Any) -> None:
        if "/2/" in str(path):  # the new version's files
            raise OSError(28, "No space left on device", str(path))
        real(path, *a, **kw)

    monkeypatch.setattr(certstore, "atomic_write", full)
    with pytest.raises(SwapError) as e:
        w.apply()
    assert_one_line(e.value, "No space left on device", "the deployed pair is unchanged")
    assert w.deployed().same_as(old) and w.reloads == 0 and journal(w) is None


def test_a_failure_right_after_the_switch_switches_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename of current happened, the fsync of its directory failed: the new pair is
    deployed, so it is switched back and reloaded, not reported unchanged."""
    w = SimWorld(tmp_path)
    old = w.deployed()
    ready_to_swap(w)
    w.apply(wait=True)  # converted; the second rollover switches versions
    second = w.deployed()
    ready_to_swap(w)
    real = fsutil.replace_with_symlink
    calls = {"n": 0}

    def eio_after(path: Path, target: str) -> None:
        real(path, target)
        if path.name == "current":
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(5, "Input/output error", str(path.parent))

    monkeypatch.setattr(certstore, "replace_with_symlink", eio_after)
    with pytest.raises(SwapError) as e:
        w.apply()
    assert_one_line(e.value, "Input/output error", "previous certificate was restored")
    assert w.deployed().same_as(second) and w.served.same_as(second) and journal(w) is None
    assert not second.same_as(old)


# -- owner, group, mode; temp files -------------------------------------------------------------


@pytest.mark.parametrize("layout", ["split", "combined"])
def test_owner_group_and_mode_are_kept(tmp_path: Path, layout: str) -> None:
    w = make_world(tmp_path / "w", layout)
    d = w.tmp / "deployed"
    os.chown(d, 0, 4242)
    d.chmod(0o750)
    if layout == "split":
        os.chown(d / "privkey.pem", 0, 4242)
        (d / "privkey.pem").chmod(0o640)
        os.chown(d / "fullchain.pem", 1234, 4242)
        (d / "fullchain.pem").chmod(0o644)
        want = {d / "privkey.pem": (0, 4242, 0o640), d / "fullchain.pem": (1234, 4242, 0o644)}
    else:
        os.chown(d / "mx.pem", 0, 4242)
        (d / "mx.pem").chmod(0o640)
        want = {d / "mx.pem": (0, 4242, 0o640)}
    for _ in range(2):  # the first swap converts, the second switches versions
        ready_to_swap(w)
        w.apply(wait=True)
        assert w.deployed().same_as(w.next())
        for p, meta in want.items():
            st = os.stat(p)  # through the links
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == meta, p
    if layout == "split":
        for sub in (
            d / ".tlsarotate",
            d / ".tlsarotate/privkey.pem",
            d / ".tlsarotate/privkey.pem/3",
        ):
            st = os.stat(sub)
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 4242, 0o750), sub
    else:
        st = os.stat(d / "mx.pem.prev")
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 4242, 0o640)


def _swap_pair(slot: config.CertSlot) -> swap.Prepared:
    nxt = read_pair(slot.next).material  # type: ignore[arg-type]
    prepared = swap.prepare(slot, nxt.fingerprint)
    swap.commit(prepared, None)
    return prepared


def test_the_store_keeps_the_sticky_bit_of_the_key_s_directory(
    tmp_path: Path, pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued]
) -> None:
    """ "The store's directories get the mode of the key's directory": the sticky bit was
    dropped, so in a 1777 directory the store became 0777 and any local user could rename
    ``current`` (root's own) to switch the pair the server reads."""
    slot, _, _ = pair_files
    d = tmp_path / "deployed"
    d.chmod(0o1777)
    _swap_pair(slot)
    store = d / ".tlsarotate" / "key.pem"
    for sub in (store.parent, store, store / "1", store / "2"):
        assert stat.S_IMODE(os.stat(sub).st_mode) == 0o1777, sub


@pytest.mark.parametrize("planted", ["foreign", "symlink", "file"])
def test_a_store_directory_someone_else_made_is_refused(
    tmp_path: Path,
    pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued],
    planted: str,
) -> None:
    """A store directory that already exists and is not ours (made by another user in a
    world-writable directory, or a link to one) would let them switch the pair: one line,
    nothing moved, nothing written there."""
    slot, old, _ = pair_files
    d = tmp_path / "deployed"
    d.chmod(0o1777)
    old_fp = certfiles.load_pair(d / "cert.pem", d / "key.pem").fingerprint
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir()
    os.chown(elsewhere, 65534, 65534)
    if planted == "foreign":
        (d / ".tlsarotate").mkdir()
        os.chown(d / ".tlsarotate", 65534, 65534)
    elif planted == "symlink":
        (d / ".tlsarotate").symlink_to(elsewhere)
    else:
        (d / ".tlsarotate").write_text("")
    before = {p: p.read_bytes() for p in (d / "cert.pem", d / "key.pem")}
    with pytest.raises(SwapError) as e:
        _swap_pair(slot)
    assert_one_line(e.value, str(d / ".tlsarotate"), "refusing", "pair is unchanged")
    assert {p: p.read_bytes() for p in before} == before
    assert not (d / "cert.pem").is_symlink() and not (d / "key.pem").is_symlink()
    assert list(elsewhere.iterdir()) == []
    assert _deployed(slot).fingerprint == old_fp
    assert old.cert_pem in before[d / "cert.pem"]


def test_a_key_is_never_left_readable_by_others(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    (tmp_path / "deployed/privkey.pem").chmod(0o644)
    ready_to_swap(w)
    w.apply(wait=True)
    assert (tmp_path / "deployed/privkey.pem").stat().st_mode & 0o777 == 0o640


def test_temp_files_left_by_a_kill_are_removed_by_the_next_run(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    ready_to_swap(w)
    w.apply(wait=True)
    d = tmp_path / "deployed"
    store = d / ".tlsarotate/privkey.pem"
    left = [
        d / ".privkey.pem.k3j_9x0a.tmp",
        d / ".fullchain.pem.abcdefgh.tmp",
        d / ".privkey.pem.prev.0123abcd.tmp",
        store / ".current.00ff00ff.tmp",
        store / "2/.key.pem.zz_zz_zz.tmp",
    ]
    for p in left:
        p.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    keep = [d / ".other.abcdefgh.tmp", d / "privkey.pem.bak", d / ".privkey.pem.not-ours.tmp"]
    for p in keep:
        p.write_bytes(b"x")
    w.apply()
    assert [p for p in left if p.exists()] == []
    assert all(p.exists() for p in keep)


# -- reload: bounded, restored, one line ----------------------------------------------------------


@pytest.fixture
def pair_files(tmp_path: Path) -> Iterator[tuple[config.CertSlot, pki.Issued, pki.Issued]]:
    ca = pki.make_ca()
    old, new = pki.make_leaf(ca, ["mx.example.test"]), pki.make_leaf(ca, ["mx.example.test"])
    for d, leaf in (("deployed", old), ("next", new)):
        (tmp_path / d).mkdir()
        (tmp_path / d / "cert.pem").write_bytes(leaf.cert_pem)
        (tmp_path / d / "key.pem").write_bytes(leaf.key_pem)
    slot = config.CertSlot(
        "default",
        config.CertPaths(cert=tmp_path / "deployed/cert.pem", key=tmp_path / "deployed/key.pem"),
        config.CertPaths(cert=tmp_path / "next/cert.pem", key=tmp_path / "next/key.pem"),
    )
    yield slot, old, new


def _deployed(slot: config.CertSlot) -> material.Material:
    return config.load_cert(slot.deployed)


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status  # killed, not yet reaped by init


def test_a_hanging_reload_is_killed_after_reload_timeout_and_the_pair_restored(
    tmp_path: Path, pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued]
) -> None:
    slot, _, _ = pair_files
    script = (
        f"if [ -e {tmp_path}/hung ]; then exit 0; fi; touch {tmp_path}/hung; "
        f"sleep 1000 & echo $! > {tmp_path}/pid; wait"
    )
    slot = dataclasses.replace(slot, reload=("sh", "-c", script), reload_timeout=1)
    nxt = certfiles.load_pair(tmp_path / "next/cert.pem", tmp_path / "next/key.pem")
    prepared = swap.prepare(slot, nxt.fingerprint)
    with pytest.raises(SwapError) as e:
        swap.commit(prepared, None)
    assert_one_line(
        e.value,
        "timed out after 1 s and was killed",
        "the previous certificate was restored and reloaded",
        "NOT retired",
    )
    assert _deployed(slot).fingerprint == prepared.previous.fingerprint
    assert _gone(int((tmp_path / "pid").read_text()))  # the whole process group was killed


def test_a_reload_that_starts_a_daemon_succeeds_and_the_daemon_lives(
    tmp_path: Path, pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued]
) -> None:
    """A reload command that (re)starts the server exits at once, leaving a daemon that still
    holds the output it inherited (a sysvinit script, ``sh -c 'server &'``). The reload is
    done when the COMMAND exits: reading its output until EOF waited for the daemon, so the
    reload "timed out", the daemon's process group was killed (the server gone) and the swap
    rolled back."""
    slot, _, _ = pair_files
    script = f"sleep 1000 & echo $! > {tmp_path}/daemon; exit 0"
    slot = dataclasses.replace(slot, reload=("sh", "-c", script), reload_timeout=3)
    nxt = read_pair(slot.next).material  # type: ignore[arg-type]
    prepared = swap.prepare(slot, nxt.fingerprint)
    try:
        swap.commit(prepared, None)
        assert _deployed(slot).fingerprint == nxt.fingerprint
        assert not _gone(int((tmp_path / "daemon").read_text()))  # the daemon still runs
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((tmp_path / "daemon").read_text()), 9)


def test_a_reload_s_output_is_kept_for_the_error_line(
    pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued],
) -> None:
    slot, _, _ = pair_files
    slot = dataclasses.replace(slot, reload=("sh", "-c", "echo 'bad config' >&2; exit 3"))
    assert (run_reload(slot, None) or "").endswith(" exited 3: bad config")
    slot = dataclasses.replace(slot, reload=("sh", "-c", r"printf 'caf\351\n'; exit 1"))
    assert (run_reload(slot, None) or "").endswith(" exited 1: caf\ufffd")


def test_both_reloads_hanging_say_so_in_one_line(
    pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued],
) -> None:
    slot, _, _ = pair_files
    slot = dataclasses.replace(slot, reload=("sleep", "1000"), reload_timeout=1)
    nxt = read_pair(slot.next).material  # type: ignore[arg-type]
    prepared = swap.prepare(slot, nxt.fingerprint)
    with pytest.raises(SwapError) as e:
        swap.commit(prepared, None)
    assert_one_line(
        e.value, "restored and its reload failed too", "'sleep 1000' timed out after 1 s"
    )
    assert _deployed(slot).same_as(prepared.previous)


def test_a_runner_timing_out_is_one_line_not_the_exception_name(
    pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued],
) -> None:
    slot, _, _ = pair_files
    slot = dataclasses.replace(slot, reload=("systemctl", "reload", "exim4"), reload_timeout=7)
    calls: list[Sequence[str]] = []

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        if len(calls) == 1:
            raise subprocess.TimeoutExpired(list(argv), 7)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    prepared = swap.prepare(slot, read_pair(slot.next).material.fingerprint)  # type: ignore[arg-type]
    with pytest.raises(SwapError) as e:
        swap.commit(prepared, runner)
    assert_one_line(
        e.value, "'systemctl reload exim4' timed out after 7 s", "restored and reloaded"
    )
    assert "TimeoutExpired" not in str(e.value) and len(calls) == 2


def test_a_failing_reload_while_finishing_an_interrupted_swap_restores_the_previous_pair(
    tmp_path: Path,
) -> None:
    w = SimWorld(tmp_path)
    old = w.deployed()
    ready_to_swap(w)
    w.crash_at = "reload"  # killed while the swap's reload ran: the new pair is in place
    with contextlib.suppress(Crash):
        w.apply()
    assert w.crash_at is None and w.deployed().same_as(w.next())
    w.fail_reload = 1
    with pytest.raises(SwapError) as e:
        w.apply()
    assert_one_line(
        e.value, "finishing an interrupted swap", "previous certificate was restored", "NOT retired"
    )
    assert w.deployed().same_as(old) and w.served.same_as(old)
    assert journal(w) is None
    assert accepted_by_published(w, old)  # nothing retired
    w.apply(wait=True)
    assert w.deployed().same_as(w.next()) and w.violations == []


# -- DER at a PEM path: one reader ----------------------------------------------------------------


def _der(pem: bytes) -> bytes:
    return material.parse(pem, "x").chain_der[0]


def test_a_der_next_pair_is_installed_as_pem(
    pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued], tmp_path: Path
) -> None:
    slot, _, new = pair_files
    (tmp_path / "next/cert.pem").write_bytes(_der(new.cert_pem))
    key = serialization.load_pem_private_key(new.key_pem, None)
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "next/key.pem").write_bytes(der_key)
    planned = config.load_cert(slot.next)  # type: ignore[arg-type] # what validate and plan read
    prepared = swap.prepare(slot, planned.fingerprint)
    swap.commit(prepared, None)
    assert _deployed(slot).same_as(planned)
    assert (tmp_path / "deployed/cert.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert (tmp_path / "deployed/key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    body = (tmp_path / "deployed/cert.pem").read_bytes().split(b"-----")[2]
    assert base64.b64decode(body) == _der(new.cert_pem)


def test_a_pem_next_chain_is_installed_byte_for_byte(
    pair_files: tuple[config.CertSlot, pki.Issued, pki.Issued], tmp_path: Path
) -> None:
    """A strict PEM chain (64-character lines, as openssl and certbot write it) reaches the
    deployed file unchanged; a DER one becomes the same strict PEM (RFC 7468), not 76-column
    base64."""
    slot, _, _ = pair_files
    strict = (tmp_path / "next/cert.pem").read_bytes()
    planned = config.load_cert(slot.next)  # type: ignore[arg-type]
    swap.commit(swap.prepare(slot, planned.fingerprint), None)
    assert (tmp_path / "deployed/cert.pem").read_bytes() == strict
    lines = strict.splitlines()
    assert max(len(line) for line in lines) == 64


def test_a_der_next_certificate_validates_plans_and_applies_alike(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=1)
    full = tmp_path / "live/mx.example.test/fullchain.pem"
    leaf_der = _der(full.read_bytes())
    full.write_bytes(leaf_der)  # DER at a .pem path
    assert run_cli("-c", cfg, "validate").returncode == 0
    plan = run_cli("-c", cfg, "plan")
    assert plan.returncode == 2 and "mail: publish" in plan.stdout
    done = run_cli("-c", cfg, "apply", "--wait", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    deployed = tmp_path / "deployed/fullchain.pem"
    assert deployed.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert certfiles.load(deployed).chain_der[0] == leaf_der
    assert run_cli("-c", cfg, "plan").returncode == 0


def test_reload_timeout_is_read_from_the_config(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=1)
    assert config.load(cfg).services[0].certificates[0].reload_timeout == 60
    text = cfg.read_text().replace('reload: ["true"]', 'reload: ["true"]\n      reload_timeout: 5')
    assert "reload_timeout: 5" in text
    cfg.write_text(text)
    assert config.load(cfg).services[0].certificates[0].reload_timeout == 5
    cfg.write_text(text.replace("reload_timeout: 5", "reload_timeout: 0"))
    with pytest.raises(ConfigError) as e:
        config.load(cfg)
    assert_one_line(e.value, "reload_timeout", "out of range")


def test_a_hanging_reload_from_the_command_line_is_one_line_and_restored(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=1)
    cfg.write_text(
        cfg.read_text().replace(
            'reload: ["true"]', 'reload: [sleep, "1000"]\n      reload_timeout: 1'
        )
    )
    before = (tmp_path / "deployed/fullchain.pem").read_bytes()
    proc = run_cli("-c", cfg, "apply", "--wait", timeout=120)
    assert_one_line_error(
        proc, "'sleep 1000' timed out after 1 s and was killed", "restored", "NOT retired"
    )
    assert (tmp_path / "deployed/fullchain.pem").read_bytes() == before
    assert json.loads((tmp_path / "state/mail.json").read_text())["swap"] is None
