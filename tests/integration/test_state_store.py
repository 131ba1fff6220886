"""The file state store against a hostile state_dir (issue #15): links are never followed, the
directory must be the running user's and not writable by others, each refusal is one line, and
the file a planted link points at is never changed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line, assert_one_line_error, run_cli
from tlsarotate import demo, records
from tlsarotate.errors import ProviderError, StateError
from tlsarotate.state import State
from tlsarotate.stores.file import FileStateStore

VICTIM = b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """The demo's zone-file layout (config, zone file, certificates); state in state/."""
    return demo.setup(tmp_path, ttl=2)


def victim(tmp_path: Path) -> Path:
    v = tmp_path / "passwd"
    v.write_bytes(VICTIM)
    return v


def zone(cfg: Path) -> bytes:
    return (cfg.parent / "example.test.zone").read_bytes()


# ------------------------------------------------------------------------------- the lock


def test_lock_file_symlink_is_refused_and_its_target_unchanged(tmp_path: Path) -> None:
    v = victim(tmp_path)
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    (d / "mail.lock").symlink_to(v)
    with pytest.raises(StateError) as ei, FileStateStore(d).lock("mail", timeout=1):
        pass
    assert_one_line(ei.value, str(d / "mail.lock"), "symbolic link")
    assert v.read_bytes() == VICTIM and v.stat().st_mode & 0o777 == 0o644


def test_lock_symlink_attack_through_the_cli(setup: Path, tmp_path: Path) -> None:
    """A root `apply` opened (and truncated, and wrote its pid into) the link's target."""
    v = victim(tmp_path)
    d = setup.parent / "state"
    d.mkdir(mode=0o700)
    (d / "mail.lock").symlink_to(v)
    before = zone(setup)
    proc = run_cli("-c", setup, "apply", timeout=60)
    assert_one_line_error(proc, "mail.lock", "symbolic link")
    assert v.read_bytes() == VICTIM
    assert zone(setup) == before  # nothing written


def test_lock_file_with_another_hard_link_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    v = d / "kept"
    v.write_bytes(VICTIM)
    os.link(v, d / "mail.lock")
    with pytest.raises(StateError) as ei, FileStateStore(d).lock("mail", timeout=1):
        pass
    assert_one_line(ei.value, "mail.lock", "hard links")
    assert v.read_bytes() == VICTIM


def test_lock_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    os.mkfifo(d / "mail.lock")
    with pytest.raises(StateError) as ei, FileStateStore(d).lock("mail", timeout=1):
        pass
    assert_one_line(ei.value, "mail.lock", "FIFO")


# -------------------------------------------------------------------------- the state file


def test_state_file_symlink_is_refused_never_read_or_written(tmp_path: Path) -> None:
    """A planted state (visible since long ago) through a link could make a swap come early."""
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({"version": 1, "service": "mail", "visible_since": 1.0}))
    (d / "mail.json").symlink_to(planted)
    store = FileStateStore(d)
    with pytest.raises(StateError) as ei:
        store.load("mail")
    assert_one_line(ei.value, str(d / "mail.json"), "symbolic link")
    before = planted.read_bytes()
    store.save(State("mail"))  # the rename replaces the link itself, never its target
    assert planted.read_bytes() == before
    assert not (d / "mail.json").is_symlink()
    assert store.load("mail") == State("mail")


def test_state_file_that_is_a_fifo_is_refused_not_hung(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    os.mkfifo(d / "mail.json")
    with pytest.raises(StateError) as ei:
        FileStateStore(d).load("mail")
    assert_one_line(ei.value, "mail.json", "FIFO")


def test_stale_temp_files_of_a_killed_save_are_removed(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    stale = d / ".mail.json.k1ll3d.tmp"
    stale.write_text("{half")
    past = time.time() - 3600
    os.utime(stale, (past, past))
    FileStateStore(d).save(State("mail"))
    assert sorted(os.listdir(d)) == ["mail.json"]


# ---------------------------------------------------------------------------- the directory


def test_missing_state_dir_is_created_0700(tmp_path: Path) -> None:
    d = tmp_path / "var/lib/tlsarotate"
    store = FileStateStore(d)
    assert store.load("mail").rebuilt == "no state file yet"
    assert not d.exists()  # loading never creates it
    store.save(State("mail"))
    assert d.stat().st_mode & 0o777 == 0o700


def test_symlinked_state_dir_is_refused(setup: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (setup.parent / "state").symlink_to(real)
    for command in ("validate", "plan", "apply"):
        proc = run_cli("-c", setup, command, timeout=60)
        assert_one_line_error(proc, "state_dir", "symbolic link", str(real))
    assert os.listdir(real) == []
    with pytest.raises(StateError) as ei, FileStateStore(setup.parent / "state").lock("mail", 1):
        pass
    assert_one_line(ei.value, "symbolic link")


@pytest.mark.parametrize("how", ["other-owner", "mode-0777", "group-writable"])
def test_state_dir_not_ours_or_writable_by_others_is_refused(setup: Path, how: str) -> None:
    d = setup.parent / "state"
    d.mkdir(mode=0o700)
    if how == "other-owner":
        os.chown(d, 65534, 65534)
        needle = "owned by uid 65534"
    else:
        os.chmod(d, 0o777 if how == "mode-0777" else 0o770)
        needle = "writable by group or others"
    before = zone(setup)
    for command in ("validate", "apply"):
        proc = run_cli("-c", setup, command, timeout=60)
        assert_one_line_error(proc, "state_dir", str(d), needle)
    assert zone(setup) == before and os.listdir(d) == []
    with pytest.raises(StateError) as ei:
        FileStateStore(d).load("mail")
    assert_one_line(ei.value, needle)


def test_good_state_dir_still_works_through_the_cli(setup: Path) -> None:
    d = setup.parent / "state"
    d.mkdir(mode=0o755)  # readable by others is fine: no secrets in state
    assert run_cli("-c", setup, "validate").returncode == 0
    proc = run_cli("-c", setup, "apply", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert sorted(os.listdir(d)) == ["mail.json", "mail.lock"]
    assert (d / "mail.json").stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------- a timeout in the middle of a write


def test_timeout_on_part_2_of_3_leaves_state_the_next_run_finishes(tmp_path: Path) -> None:
    """A write split in parts (as RFC 2136 splits past one DNS message) that times out on part
    2 of 3: part 1 is published, the rest not; the run fails in one line, the state on disk
    is valid, and the next run publishes the rest and rolls over to idle."""
    from tests.support.world import ZONE, SimWorld
    from tlsarotate import phases

    hosts = [f"mx{i}.example.test" for i in range(6)]
    w = SimWorld(tmp_path, ttl=60, hosts=hosts)
    w.new_next()
    w.provider.part_size = 2  # 6 owners: 3 parts
    w.provider.fail_part = 2
    with pytest.raises(ProviderError) as ei:
        w.apply(wait=True)
    assert_one_line(ei.value, "part 2 of 3", "timed out")
    nxt = {records.to_text(r) for r in records.build_all(w.next(), w.service.params)}
    have = {o: nxt <= set(rr.texts()) for o, rr in w.provider.data[ZONE].items()}
    assert sorted(have.values()) == [False] * 4 + [True] * 2  # part 1 only
    st = FileStateStore(tmp_path / "state").load("mail")
    assert st.rebuilt == "" and st.service == "mail"  # a valid state was left
    assert w.violations == []
    plans = w.apply(wait=True)  # the next run
    assert [p.phase for p in plans] == [phases.IDLE]
    assert all(set(rr.texts()) == nxt for rr in w.current().values())
    assert w.deployed().same_as(w.next()) and w.violations == []


def test_state_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.write_text("")
    with pytest.raises(StateError) as ei:
        FileStateStore(d).load("mail")
    assert_one_line(ei.value, f"state_dir {d}: is a regular file, expected a directory")
    with pytest.raises(StateError) as ei, FileStateStore(d).lock("mail", 1):
        pass
    assert_one_line(ei.value, "is a regular file")
