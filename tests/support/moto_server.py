"""A real ``moto_server`` (Route 53 over HTTP) for the tests.

``moto_url`` (session scope) starts ``moto_server -H 127.0.0.1 -p PORT`` on a free port and stops it
by pid at the end; ``route53_env`` (function scope) resets moto (``POST /moto-api/reset``), points
boto3's standard credential chain at dummy keys (:data:`DUMMY_KEY_ID`, :data:`DUMMY_SECRET`: tests
assert the secret never shows up in messages) and away from the host's ``~/.aws``, and returns
moto's URL.
A missing ``moto_server`` binary is a test failure, never a skip.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port, stop_process

DUMMY_KEY_ID = "AKIATLSAROTATETEST01"
DUMMY_SECRET = "tlsarotate-dummy-secret-9f8e7d6c5b4a"


def moto_post(url: str, path: str, data: bytes = b"") -> bytes:
    req = urllib.request.Request(
        url + path, data=data, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body: bytes = resp.read()
        return body


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server not found: pip install 'moto[server]'")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    for _ in range(3):  # the port may be taken between probing and binding
        port = free_port()
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [exe, "-H", "127.0.0.1", "-p", str(port)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                moto_post(url, "/moto-api/reset")
                break
            except (OSError, http.client.HTTPException):  # not listening, or not ready yet
                time.sleep(0.05)
        if proc.poll() is None and time.monotonic() < deadline:
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail(f"moto_server did not start: {Path(log).read_text()[-2000:]}")
    try:
        yield url
    finally:
        stop_process(proc)


@pytest.fixture
def route53_env(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A clean moto and dummy credentials via the standard chain; returns the moto URL."""
    moto_post(moto_url, "/moto-api/reset")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    return moto_url


def raw_client(url: str, service: str = "route53") -> Any:
    """A plain boto3 client on moto: the 'second writer' and the test's own setup."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=DUMMY_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET,
    )


def fresh_bucket(url: str, bucket: str) -> Any:
    """Reset moto and create an empty S3 bucket; the S3 client on it."""
    moto_post(url, "/moto-api/reset")
    client = raw_client(url, "s3")
    client.create_bucket(Bucket=bucket)
    return client


class CountingClient:
    """Wraps a boto3 client: every call passes through, ChangeResourceRecordSets is counted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.batches: list[list[dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "change_resource_record_sets":
                self.batches.append(kwargs["ChangeBatch"]["Changes"])
            return attr(*args, **kwargs)

        return call
