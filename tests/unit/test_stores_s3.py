"""Without boto3 the S3 state backend names the extra that installs it: ``[s3]``."""

from __future__ import annotations

import sys

import pytest

from tlsarotate.errors import StateError
from tlsarotate.stores.s3 import S3StateStore


def test_s3_without_boto3_names_the_s3_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    store = S3StateStore("bucket")
    with pytest.raises(StateError) as ei:
        store.client()
    assert str(ei.value) == "state backend s3 needs boto3: pip install 'tlsarotate[s3]'"
