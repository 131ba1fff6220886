"""Where the rollover state is kept: the :class:`StateStore` protocol every store follows
(files in ``state_dir``, S3, memory) and :func:`make_store`, the store a config asks for.

Every store reads and writes the one stored form of :mod:`tlsarotate.state` and validates
service names with it; a missing or corrupt document loads as a fresh state whose ``rebuilt``
says why.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from tlsarotate.state import State
from tlsarotate.stores.file import FileStateStore
from tlsarotate.stores.s3 import S3StateStore

if TYPE_CHECKING:
    from tlsarotate.config import Config


class StateStore(Protocol):
    """Per-service state, loaded and saved whole, and an exclusive per-service lock."""

    def load(self, service: str) -> State:
        """The stored state, or a fresh one whose ``rebuilt`` says why there was none."""
        ...

    def save(self, st: State) -> None:
        """Store ``st`` (without its ``rebuilt`` reason); :class:`StateError` on failure."""
        ...

    def lock(self, service: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Hold the service exclusively; :class:`LockTimeout` after ``timeout`` seconds."""
        ...


def make_store(cfg: Config) -> StateStore:
    """The state store the config asks for: files in ``state_dir`` or S3 (``state.backend``)."""
    if cfg.state.backend == "s3":
        st = cfg.state
        assert st.bucket is not None
        return S3StateStore(
            st.bucket, st.prefix, region=st.region, endpoint_url=st.endpoint_url, profile=st.profile
        )
    return FileStateStore(cfg.state_dir)
