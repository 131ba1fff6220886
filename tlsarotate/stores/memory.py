"""A state store in memory, for tests and embedding: the same stored form and the same
contract as the file and S3 stores (a saved state loads back equal, less its ``rebuilt``
reason; a corrupt document loads as a rebuilt state; the lock is exclusive, across threads)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from tlsarotate.errors import LockTimeout
from tlsarotate.state import State, check_service_name, encode, from_stored


class MemoryStateStore:
    """``documents`` holds the stored form of each service's state (tests may plant one)."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def load(self, service: str) -> State:
        check_service_name(service, "state document")
        raw = self.documents.get(service)
        if raw is None:
            return State(service, rebuilt="no state yet")
        return from_stored(service, f"state document {service!r} in memory", raw)

    def save(self, st: State) -> None:
        check_service_name(st.service, "state document")
        self.documents[st.service] = encode(st)

    @contextlib.contextmanager
    def lock(self, service: str, timeout: float) -> Iterator[None]:
        """Exclusive per-service lock (not re-entrant, as a file lock opened twice)."""
        check_service_name(service, "state document")
        with self._guard:
            held = self._locks.setdefault(service, threading.Lock())
        if not held.acquire(timeout=max(0.0, timeout)):
            raise LockTimeout(
                f"service {service!r} is locked by another holder (in memory); gave up after "
                f"{timeout:g}s (--lock-timeout)"
            )
        try:
            yield
        finally:
            held.release()
