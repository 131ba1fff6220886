"""The memory state store keeps the StateStore contract the file store keeps (the same stored
form, rebuilt reasons, an exclusive lock), so tests can use it in place of files."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tlsarotate import state
from tlsarotate.errors import LockTimeout, StateError
from tlsarotate.state import State
from tlsarotate.stores import StateStore
from tlsarotate.stores.file import FileStateStore
from tlsarotate.stores.memory import MemoryStateStore

MakeStore = Callable[[Path], StateStore]
STORES: dict[str, MakeStore] = {
    "memory": lambda _: MemoryStateStore(),
    "file": lambda tmp: FileStateStore(tmp / "state"),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    make: MakeStore = STORES[request.param]
    return make(tmp_path)


def test_missing_state_is_fresh_with_a_reason(store: StateStore) -> None:
    st = store.load("mx")
    assert st.service == "mx" and st.digest is None and st.rebuilt.startswith("no state")


def test_saved_state_loads_back_without_its_rebuilt_reason(store: StateStore) -> None:
    st = State("mx", digest="d", hold_ttl=300, deployed={"default": "ab"}, rebuilt="why")
    store.save(st)
    assert store.load("mx") == st.with_(rebuilt="")
    assert store.load("other").rebuilt.startswith("no state")


def test_unsafe_service_name_is_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="invalid service name"):
        store.load("../etc")
    with pytest.raises(StateError, match="invalid service name"):
        store.save(State("a/b"))


def test_lock_is_exclusive_and_released(store: StateStore) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with store.lock("mx", timeout=5):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)
    start = time.monotonic()
    locked = r"service 'mx' is locked by another .*gave up after 0.2s"
    with pytest.raises(LockTimeout, match=locked), store.lock("mx", timeout=0.2):
        pass
    assert time.monotonic() - start >= 0.2
    with store.lock("other", timeout=0.2):  # per service
        pass
    release.set()
    t.join(10)
    with store.lock("mx", timeout=1):  # released
        pass


def test_memory_store_keeps_the_one_stored_form() -> None:
    s = MemoryStateStore()
    st = State("mx", digest="d")
    s.save(st)
    assert s.documents["mx"] == state.encode(st)


def test_memory_store_rebuilds_a_planted_corrupt_or_foreign_document() -> None:
    s = MemoryStateStore()
    s.documents["mx"] = b"{not json"
    got = s.load("mx")
    assert got.digest is None
    assert got.rebuilt.startswith("state document 'mx' in memory was corrupt (not JSON: ")
    s.documents["mx"] = state.encode(State("other"))
    assert s.load("mx").rebuilt == "state document 'mx' in memory belongs to 'other'; rebuilt"
