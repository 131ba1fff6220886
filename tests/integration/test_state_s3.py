# ruff: noqa: F811
"""S3 state store against a real ``moto_server`` over HTTP: conditional writes, racing writers,
exclusive leases, stale-lock breaking."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.moto_server import (  # noqa: F401  (one moto_server for all)
    fresh_bucket,
    moto_url,
    raw_client,
    route53_env,
)
from tlsarotate.clock import FakeClock
from tlsarotate.config import Config, StateBackend
from tlsarotate.errors import LockTimeout, StateError
from tlsarotate.state import State
from tlsarotate.stores import make_store
from tlsarotate.stores.file import FileStateStore
from tlsarotate.stores.s3 import S3StateStore

BUCKET = "tlsarotate-state"
PREFIX = "ci/"


@pytest.fixture
def s3(moto_url: str) -> Any:
    return fresh_bucket(moto_url, BUCKET)


def store(url: str, **kw: Any) -> S3StateStore:
    return S3StateStore(BUCKET, PREFIX, client=raw_client(url, "s3"), **kw)


def test_load_missing_then_roundtrip(s3: Any, moto_url: str) -> None:
    st = store(moto_url)
    first = st.load("mx")
    assert first == State("mx", rebuilt="no state object yet")
    st.save(first.with_(digest="abc", hold_ttl=300))
    body = s3.get_object(Bucket=BUCKET, Key="ci/mx.json")["Body"].read()
    assert json.loads(body)["digest"] == "abc"
    again = store(moto_url).load("mx")
    assert (again.digest, again.hold_ttl, again.rebuilt) == ("abc", 300, "")
    # the same store may save twice in a row (it tracks its own new ETag)
    st.save(again.with_(hold_ttl=600))
    st.save(again.with_(hold_ttl=900))
    assert store(moto_url).load("mx").hold_ttl == 900


def test_corrupt_state_is_rebuilt_and_overwritable(s3: Any, moto_url: str) -> None:
    s3.put_object(Bucket=BUCKET, Key="ci/mx.json", Body=b"{not json")
    st = store(moto_url)
    got = st.load("mx")
    assert got.digest is None
    assert "corrupt" in got.rebuilt and "s3://tlsarotate-state/ci/mx.json" in got.rebuilt
    st.save(got.with_(digest="fixed"))
    assert store(moto_url).load("mx").digest == "fixed"


def test_foreign_state_is_rebuilt(s3: Any, moto_url: str) -> None:
    store(moto_url).save(State("other"))
    s3.copy_object(Bucket=BUCKET, Key="ci/mx.json", CopySource=f"{BUCKET}/ci/other.json")
    assert "belongs to 'other'" in store(moto_url).load("mx").rebuilt


def test_lost_race_is_refused_and_keeps_the_winner(s3: Any, moto_url: str) -> None:
    a, b = store(moto_url), store(moto_url)
    sa, sb = a.load("mx"), b.load("mx")
    b.save(sb.with_(digest="from-b"))
    with pytest.raises(StateError) as ei:
        a.save(sa.with_(digest="from-a"))
    msg = str(ei.value)
    assert "state for service 'mx' changed underneath (another runner?); re-run" in msg
    assert "\n" not in msg
    assert store(moto_url).load("mx").digest == "from-b"
    # existing object: both load the same ETag, one wins with If-Match, the other is refused
    sa, sb = a.load("mx"), b.load("mx")
    a.save(sa.with_(digest="a2"))
    with pytest.raises(StateError, match="changed underneath"):
        b.save(sb.with_(digest="b2"))
    assert store(moto_url).load("mx").digest == "a2"


def test_state_deleted_underneath_is_a_lost_race(s3: Any, moto_url: str) -> None:
    a = store(moto_url)
    a.save(State("mx", digest="x"))
    st = a.load("mx")
    s3.delete_object(Bucket=BUCKET, Key="ci/mx.json")
    with pytest.raises(StateError, match="changed underneath"):
        a.save(st.with_(digest="y"))


def test_racing_writers_without_lock_lose_no_update(s3: Any, moto_url: str) -> None:
    """Two threads increment a counter with load/save only: every save that returns is
    counted exactly once (no lost update); losers get StateError."""
    store(moto_url).save(State("mx", hold_ttl=0))
    ok = [0, 0]
    conflicts = [0, 0]

    def worker(i: int) -> None:
        s = store(moto_url)
        for _ in range(25):
            st = s.load("mx")
            try:
                s.save(st.with_(hold_ttl=st.hold_ttl + 1))
                ok[i] += 1
            except StateError:
                conflicts[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(ok) + sum(conflicts) == 50  # every attempt accounted for (no thread died)
    assert store(moto_url).load("mx").hold_ttl == sum(ok)


WORKER = r"""
import sys, boto3
from tlsarotate.stores.s3 import S3StateStore
url, n = sys.argv[1], int(sys.argv[2])
c = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
s = S3StateStore("tlsarotate-state", "ci/", client=c)
for _ in range(n):
    with s.lock("mx", timeout=60):
        st = s.load("mx")
        s.save(st.with_(hold_ttl=st.hold_ttl + 1))
print("done")
"""


def test_two_processes_with_lock_lose_no_update(s3: Any, moto_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    n = 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, moto_url, str(n)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert store(moto_url).load("mx").hold_ttl == 2 * n
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="ci/mx.lock")


def test_lock_is_exclusive_between_threads(s3: Any, moto_url: str) -> None:
    inside = [0]
    peak = [0]
    rounds = [0]
    guard = threading.Lock()

    def worker() -> None:
        s = store(moto_url)
        for _ in range(8):
            with s.lock("mx", timeout=60):
                with guard:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                time.sleep(0.01)
                with guard:
                    inside[0] -= 1
                    rounds[0] += 1

    ts = [threading.Thread(target=worker) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert rounds[0] == 3 * 8  # every round finished (a thread's exception would be lost)
    assert peak[0] == 1


def test_lock_timeout_names_holder_and_release_deletes(s3: Any, moto_url: str) -> None:
    a = store(moto_url, holder="runner-a")
    b = store(moto_url, holder="runner-b")
    with a.lock("mx", timeout=1):
        body = json.loads(s3.get_object(Bucket=BUCKET, Key="ci/mx.lock")["Body"].read())
        assert body["holder"] == "runner-a" and body["expires"] > time.time()
        with pytest.raises(LockTimeout) as ei, b.lock("mx", timeout=0.3):
            pass
        msg = str(ei.value)
        assert "runner-a" in msg and "s3://tlsarotate-state/ci/mx.lock" in msg
        assert "--lock-timeout" in msg
        with b.lock("other", timeout=0.3):  # other services are not blocked
            pass
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="ci/mx.lock")
    with b.lock("mx", timeout=0.3):
        pass


def test_stale_lock_is_broken(s3: Any, moto_url: str, caplog: pytest.LogCaptureFixture) -> None:
    dead = {"holder": "crashed-runner", "acquired": 1.0, "expires": time.time() - 1}
    s3.put_object(Bucket=BUCKET, Key="ci/mx.lock", Body=json.dumps(dead).encode())
    with (
        caplog.at_level(logging.WARNING, logger="tlsarotate.state"),
        store(moto_url, holder="me").lock("mx", timeout=0.2),
    ):
        body = json.loads(s3.get_object(Bucket=BUCKET, Key="ci/mx.lock")["Body"].read())
        assert body["holder"] == "me"
    assert "crashed-runner" in caplog.text


def test_unreadable_lock_is_treated_as_stale(s3: Any, moto_url: str) -> None:
    s3.put_object(Bucket=BUCKET, Key="ci/mx.lock", Body=b"garbage")
    with store(moto_url).lock("mx", timeout=0.2):
        pass


def test_live_lease_is_extended_by_heartbeat(s3: Any, moto_url: str) -> None:
    """A holder working longer than its lease keeps the lock: the heartbeat moves the expiry."""
    a = store(moto_url, holder="runner-a", lease=0.6)
    b = store(moto_url, holder="runner-b", lease=0.6)
    with a.lock("mx", timeout=1):
        first = json.loads(s3.get_object(Bucket=BUCKET, Key="ci/mx.lock")["Body"].read())
        time.sleep(1.5)  # well past the first expiry
        later = json.loads(s3.get_object(Bucket=BUCKET, Key="ci/mx.lock")["Body"].read())
        assert later["holder"] == "runner-a"
        assert later["expires"] > first["expires"]
        with pytest.raises(LockTimeout), b.lock("mx", timeout=0.2):
            pass


def test_taken_over_lock_is_not_deleted_by_old_holder(s3: Any, moto_url: str) -> None:
    a = store(moto_url, holder="runner-a")
    future = FakeClock(start=time.time() + 10_000)  # b sees a's lease as long expired
    b = store(moto_url, holder="runner-b", clock=future)
    with a.lock("mx", timeout=1):
        cm = b.lock("mx", timeout=1)
        cm.__enter__()
    try:
        # a's release must not delete b's lock
        body = json.loads(s3.get_object(Bucket=BUCKET, Key="ci/mx.lock")["Body"].read())
        assert body["holder"] == "runner-b"
    finally:
        cm.__exit__(None, None, None)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="ci/mx.lock")


def test_missing_bucket_is_one_line_error(moto_url: str) -> None:
    s = S3StateStore("no-such-bucket", "x/", client=raw_client(moto_url, "s3"))
    with pytest.raises(StateError) as ei:
        s.load("mx")
    assert str(ei.value) == "s3://no-such-bucket/x/mx.json: cannot read state (NoSuchBucket)"
    with pytest.raises(StateError, match="NoSuchBucket"):
        s.save(State("mx"))


def test_invalid_service_name() -> None:
    with pytest.raises(StateError, match="invalid service name"):
        S3StateStore("b", client=object()).load("../etc")


def test_make_store_from_config(moto_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    cfg = Config(tmp_path / "c.yaml", tmp_path / "state", 60, {}, ())
    fs = make_store(cfg)
    assert isinstance(fs, FileStateStore) and fs.dir == tmp_path / "state"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    c = raw_client(moto_url, "s3")
    c.create_bucket(Bucket="cfg-bucket")
    cfg3 = Config(
        tmp_path / "c.yaml",
        tmp_path / "state",
        60,
        {},
        (),
        state=StateBackend("s3", "cfg-bucket", "p/", "us-east-1", moto_url),
    )
    s3store = make_store(cfg3)
    assert isinstance(s3store, S3StateStore)
    s3store.save(State("mx", digest="via-config"))
    assert c.get_object(Bucket="cfg-bucket", Key="p/mx.json")["ETag"]
    assert make_store(cfg3).load("mx").digest == "via-config"


def test_unknown_profile_is_one_line_error(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    s = S3StateStore("b", profile="nope")
    with pytest.raises(StateError) as ei:
        s.load("mx")
    assert str(ei.value) == (
        "s3://b/tlsarotate/: cannot set up the S3 client: "
        "ProfileNotFound: The config profile (nope) could not be found"
    )


def test_cli_rollover_with_state_in_s3(route53_env: str, tmp_path: Path) -> None:
    """The whole rollover from the command line with ``state: {backend: s3}`` on moto: an
    ephemeral runner keeps nothing on disk between runs."""
    import boto3

    from tests.support.helpers import cli_env, run_cli
    from tlsarotate import demo

    s3 = boto3.client("s3", endpoint_url=route53_env, region_name="us-east-1")
    s3.create_bucket(Bucket="ci-state")
    cfg = demo.setup(tmp_path, ttl=1)
    cfg.write_text(
        cfg.read_text().replace(
            "state_dir: state\n",
            f"state:\n  backend: s3\n  bucket: ci-state\n  prefix: runs/\n"
            f"  endpoint_url: {route53_env}\n",
        )
    )
    env = cli_env()
    first = run_cli("-c", cfg, "apply", env=env)
    assert first.returncode == 2, first.stdout + first.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ci-state")["Contents"]]
    assert "runs/mail.json" in keys and "runs/mail.lock" not in keys  # lock released
    assert not (tmp_path / "state").exists()  # nothing on the runner's disk
    done = run_cli("-c", cfg, "apply", "--wait", env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    body = s3.get_object(Bucket="ci-state", Key="runs/mail.json")["Body"].read().decode()
    assert '"last_step": "cleanup"' in body
