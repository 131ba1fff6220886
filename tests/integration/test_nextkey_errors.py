"""Keep-ahead next keys: a failed write or rotation of the next key is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.moto_server import fresh_bucket, moto_url, raw_client  # noqa: F401  (a real moto_server)
from tlsarotate import nextkey
from tlsarotate.errors import MaterialError


def test_next_key_write_failure_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / ("k" * 240)  # the key's own name fits; its temp file's does not
    with pytest.raises(MaterialError) as ei:
        nextkey.ensure(path, "ecdsa-p256")
    text = str(ei.value)
    assert "\n" not in text and str(path) in text and "cannot write" in text
    assert not path.exists()


def test_next_key_rotate_failure_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "next.key"
    nextkey.ensure(path, "ecdsa-p256")
    (tmp_path / "next.key.used").mkdir()  # something in the way
    (tmp_path / "next.key.used" / "x").write_text("x")
    with pytest.raises(MaterialError) as ei:
        nextkey.rotate(path, "ecdsa-p256")
    text = str(ei.value)
    assert "\n" not in text and str(path) in text and "next.key.used" in text
    assert path.exists()
