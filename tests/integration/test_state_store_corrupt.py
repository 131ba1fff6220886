# ruff: noqa: F811
"""The file state store: a corrupt state file is rebuilt with a reason, never a traceback; a valid
one still loads; an unusable lock path is one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.corrupt_states import CORRUPT, GOOD
from tests.support.moto_server import fresh_bucket, moto_url, raw_client  # noqa: F401  (a real moto_server)
from tlsarotate.errors import StateError
from tlsarotate.state import CachedRRset, State, SwapJournal
from tlsarotate.stores.file import FileStateStore
from tlsarotate.stores.s3 import S3StateStore

RECORD = "3 1 1 " + "ab" * 32


@pytest.mark.parametrize(("what", "raw"), CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupt_state_file_is_rebuilt(tmp_path: Path, what: str, raw: bytes) -> None:
    (tmp_path / "mx.json").write_bytes(raw)
    st = FileStateStore(tmp_path).load("mx")
    assert (st.service, st.digest, st.visible_since, st.swap) == ("mx", None, None, None)
    assert "corrupt" in st.rebuilt and str(tmp_path / "mx.json") in st.rebuilt
    assert "\n" not in st.rebuilt
    FileStateStore(tmp_path).save(st.with_(digest="fixed"))
    assert FileStateStore(tmp_path).load("mx").digest == "fixed"


def test_valid_state_still_loads(tmp_path: Path) -> None:
    full = State(
        "mx",
        digest="d",
        visible_since=12.5,
        hold_ttl=300,
        ttl_seen=3600,
        deployed={"default": "ab"},
        previous={"default": "cd"},
        retiring=["3 1 1 00"],
        records={"_25._tcp.mx.example.": [RECORD]},
        cached=[
            CachedRRset({"_25._tcp.mx.example.": [RECORD, "3 0 1 " + "cd" * 32]}, 300, 99.5),
            CachedRRset(None, 3600, None),
        ],
        last_step="wait",
        updated=99.0,
    )
    full = full.with_(swap=SwapJournal("default", "ef", 7))
    store = FileStateStore(tmp_path)
    store.save(full)
    assert store.load("mx") == full
    (tmp_path / "mx.json").write_text(json.dumps({**GOOD, "updated": None, "visible_since": 5}))
    got = store.load("mx")
    assert (got.updated, got.visible_since, got.rebuilt) == (0.0, 5, "")


def test_lock_path_unusable_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mx.lock").mkdir()
    with pytest.raises(StateError) as ei, FileStateStore(tmp_path).lock("mx", timeout=1):
        pass
    text = str(ei.value)
    assert "\n" not in text and str(tmp_path / "mx.lock") in text and "lock" in text


BUCKET = "tlsarotate-review"


PREFIX = "ci/"


@pytest.fixture
def s3(moto_url: str) -> Any:
    return fresh_bucket(moto_url, BUCKET)


def store(url: str, client: Any = None, **kw: Any) -> S3StateStore:
    return S3StateStore(BUCKET, PREFIX, client=client or raw_client(url, "s3"), **kw)
