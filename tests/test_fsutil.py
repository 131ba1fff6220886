"""fsutil: the one reader of user-named files (one-line errors) and the atomic writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tlsarotate.errors import ConfigError, MaterialError
from tlsarotate.fsutil import atomic_write, read_file, read_text


def _message(excinfo: pytest.ExceptionInfo[Exception]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_missing_file_names_where_what_and_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        read_text(tmp_path / "nope", "config file", hint=" (use -c FILE)")
    assert _message(ei) == f"{tmp_path / 'nope'}: config file not found (use -c FILE)"


def test_where_replaces_the_path_and_error_class_is_kept(tmp_path: Path) -> None:
    with pytest.raises(MaterialError) as ei:
        read_file(tmp_path / "nope", "certificate", where="deployed.cert", error=MaterialError)
    assert _message(ei) == "deployed.cert: certificate not found"


def test_broken_symlink_says_where_it_points(tmp_path: Path) -> None:
    link = tmp_path / "fullchain.pem"
    link.symlink_to(tmp_path / "archive/fullchain9.pem")
    with pytest.raises(ConfigError) as ei:
        read_file(link, "certificate chain")
    assert "broken symbolic link to" in _message(ei) and "archive/fullchain9.pem" in str(ei.value)


def test_directory_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        read_text(tmp_path, "BIND key file")
    assert _message(ei) == f"{tmp_path}: is a directory, expected a BIND key file"
    bad = tmp_path / "latin1"
    bad.write_bytes(b"caf\xe9\n")
    assert read_file(bad, "file") == b"caf\xe9\n"
    with pytest.raises(ConfigError) as ei:
        read_text(bad, "TLSA file")
    assert _message(ei) == f"{bad}: not a UTF-8 text file, expected a TLSA file"


def test_other_os_errors_are_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)  # reading it fails with ELOOP
    with pytest.raises(ConfigError) as ei:
        read_file(loop, "config file")
    assert _message(ei).startswith(f"{loop}: cannot read the config file: ")


def test_atomic_write_replaces_with_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "privkey.pem"
    target.write_bytes(b"old")
    atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["privkey.pem"]
