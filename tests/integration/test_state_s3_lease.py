# ruff: noqa: F811
"""The S3 state store on a real moto_server: a corrupt object is rebuilt, a lost or expired lease
stops the next save, a failing release does not hide the error in flight, the acquire deadline
holds, client setup errors name type and message."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.corrupt_states import CORRUPT
from tests.support.moto_server import fresh_bucket, moto_url, raw_client  # noqa: F401  (a real moto_server)
from tlsarotate.clock import FakeClock
from tlsarotate.errors import LockTimeout, StateError
from tlsarotate.state import State
from tlsarotate.stores.s3 import S3StateStore

BUCKET = "tlsarotate-review"


PREFIX = "ci/"


@pytest.fixture
def s3(moto_url: str) -> Any:
    return fresh_bucket(moto_url, BUCKET)


def store(url: str, client: Any = None, **kw: Any) -> S3StateStore:
    return S3StateStore(BUCKET, PREFIX, client=client or raw_client(url, "s3"), **kw)


@pytest.mark.parametrize(("what", "raw"), CORRUPT[:8], ids=[c[0] for c in CORRUPT[:8]])
def test_corrupt_state_object_is_rebuilt(s3: Any, moto_url: str, what: str, raw: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key="ci/mx.json", Body=raw)
    st = store(moto_url).load("mx")
    assert (st.service, st.digest) == ("mx", None)
    assert "corrupt" in st.rebuilt and "s3://tlsarotate-review/ci/mx.json" in st.rebuilt


def test_lost_lease_stops_the_next_save(
    s3: Any, moto_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = store(moto_url, holder="runner-a", lease=0.3)  # heartbeat every 0.1 s
    a.save(State("mx", digest="before"))
    with caplog.at_level(logging.WARNING, logger="tlsarotate.state"), a.lock("mx", timeout=1):
        st = a.load("mx")
        # another runner takes the lock over (as after an expiry)
        other = {"holder": "runner-b", "acquired": time.time(), "expires": time.time() + 300}
        s3.put_object(Bucket=BUCKET, Key="ci/mx.lock", Body=json.dumps(other).encode())
        deadline = time.monotonic() + 10
        while "lost the lock" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(StateError) as ei:
            a.save(st.with_(digest="after"))
        assert str(ei.value).startswith("lost the lock for mx to another runner; stopping")
    assert store(moto_url).load("mx").digest == "before"  # nothing was written
    body = json.loads(s3.get_object(Bucket=BUCKET, Key="ci/mx.lock")["Body"].read())
    assert body["holder"] == "runner-b"  # and the new holder's lock was not deleted


def test_expired_lease_stops_the_next_save(s3: Any, moto_url: str) -> None:
    """A lease whose heartbeat could not extend it (the clock ran past its expiry) is not
    trusted either, even before anybody else took it."""
    clock = FakeClock(start=time.time())
    a = store(moto_url, clock=clock, lease=300)
    with a.lock("mx", timeout=1):
        st = a.load("mx")
        clock.advance(301)
        with pytest.raises(StateError, match="expired"):
            a.save(st)


class _Wrapped:
    """A real moto client with one call overridden (a fault the server cannot be made to
    produce on demand)."""

    def __init__(self, inner: Any, **override: Any) -> None:
        self.inner = inner
        self.override = override
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.override:
            return self.override[name]
        return getattr(self.inner, name)


def test_failing_release_does_not_hide_the_error_in_flight(s3: Any, moto_url: str) -> None:
    from botocore.exceptions import ClientError

    def denied(**kw: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteObject")

    client = _Wrapped(raw_client(moto_url, "s3"), delete_object=denied)
    a = store(moto_url, client=client)
    with pytest.raises(RuntimeError, match="the real failure"), a.lock("mx", timeout=1):
        raise RuntimeError("the real failure")
    assert client.calls.get("delete_object") == 1
    # without an error in flight a failing release is still reported
    b = store(
        moto_url, client=_Wrapped(raw_client(moto_url, "s3"), delete_object=denied), lease=300
    )
    s3.delete_object(Bucket=BUCKET, Key="ci/mx.lock")
    with pytest.raises(StateError, match="AccessDenied"), b.lock("mx", timeout=1):
        pass


def test_acquire_deadline_holds_when_the_lock_keeps_vanishing(s3: Any, moto_url: str) -> None:
    """The lock exists when we create it, is gone when we read it, again and again: the
    retry-at-once path must still pass the deadline (a fake clock: no real time goes by)."""
    from botocore.exceptions import ClientError

    real = raw_client(moto_url, "s3")
    real.put_object(Bucket=BUCKET, Key="ci/mx.lock", Body=b'{"holder": "x", "expires": 9e99}')
    gets = {"n": 0}

    def vanished(**kw: Any) -> Any:
        gets["n"] += 1
        if gets["n"] > 10_000:
            raise RuntimeError("the deadline was never checked")
        if kw["Key"].endswith(".lock"):
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        return real.get_object(**kw)

    a = store(moto_url, client=_Wrapped(real, get_object=vanished), clock=FakeClock())
    result: list[BaseException] = []

    def go() -> None:
        try:
            with a.lock("mx", timeout=5):
                pass
        except BaseException as e:  # handed to the test thread
            result.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(120)
    assert not t.is_alive()
    assert len(result) == 1 and isinstance(result[0], LockTimeout), result


def test_client_setup_error_names_type_and_message(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    s = S3StateStore("b", endpoint_url="not a url")
    with pytest.raises(StateError) as ei:
        s.load("mx")
    assert str(ei.value) == (
        "s3://b/tlsarotate/: cannot set up the S3 client: ValueError: Invalid endpoint: not a url"
    )
