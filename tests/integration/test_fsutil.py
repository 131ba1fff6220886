"""fsutil: the one reader of user-named files (one-line errors) and the atomic writer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tlsarotate import demo
from tlsarotate.errors import ConfigError, MaterialError
from tlsarotate.fsutil import (
    MAX_CONFIG,
    MAX_SMALL,
    MAX_ZONE,
    atomic_write,
    read_file,
    read_text,
    remove_stale_temps,
)


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


# ------------------------------------------------------------------- hostile files (issue #15)

HOSTILE = ["fifo", "link-to-fifo", "dev-zero", "char-device", "socket", "oversized"]


def _make_hostile(path: Path, kind: str) -> str:
    """Replace ``path`` with a hostile file of ``kind``; returns what the refusal must say."""
    import socket
    import stat

    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
        return "is a FIFO"
    if kind == "link-to-fifo":
        os.mkfifo(path.with_name("elsewhere.fifo"))
        path.symlink_to("elsewhere.fifo")
        return "is a FIFO"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
        return "is a character device"
    if kind == "char-device":
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
        return "is a character device"
    if kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
        return "is a socket"
    assert kind == "oversized"
    with open(path, "wb") as f:
        f.truncate(MAX_SMALL + 1)  # sparse: no disk, 1 MiB + 1 byte
    return f"is larger than {MAX_SMALL} bytes"


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("command", ["validate", "apply"])
def test_hostile_next_certificate_is_one_line_and_never_hangs(
    tmp_path: Path, kind: str, command: str
) -> None:
    """A next certificate that is a FIFO hung validate and apply for ever; /dev/zero ended in
    a MemoryError traceback. Now each is refused in one line, before anything is written."""
    cfg = demo.setup(tmp_path, ttl=2)
    zone = tmp_path / "example.test.zone"
    before = zone.read_bytes()
    cert = tmp_path / "live/mx.example.test/fullchain.pem"
    needle = _make_hostile(cert, kind)
    proc = run_cli("-c", cfg, command, timeout=30)  # TimeoutExpired: it hangs
    assert_one_line_error(proc, str(cert), needle)
    assert zone.read_bytes() == before  # no DNS write
    assert not (tmp_path / "state/mail.json").exists()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "oversized"])
def test_hostile_config_file_is_one_line(tmp_path: Path, kind: str) -> None:
    cfg = demo.setup(tmp_path, ttl=2)
    needle = _make_hostile(cfg, kind).replace(str(MAX_SMALL), str(MAX_CONFIG))
    if kind == "oversized":
        with open(cfg, "wb") as f:
            f.truncate(MAX_CONFIG + 1)
    proc = run_cli("-c", cfg, "validate", timeout=30)
    assert_one_line_error(proc, str(cfg), needle, "config file")


def test_size_cap_counts_what_is_read_not_what_stat_says(tmp_path: Path) -> None:
    """/proc files say size 0: the cap holds on the bytes actually read."""
    with pytest.raises(ConfigError) as ei:
        read_file("/proc/self/environ", "file", limit=1)  # at least PATH=... is there
    assert _message(ei) == "/proc/self/environ: is larger than 1 bytes, too large for a file"
    assert read_file(write(tmp_path / "ok", b"x" * 10), "file", limit=10) == b"x" * 10


def test_zone_file_cap_is_larger(tmp_path: Path) -> None:
    big = tmp_path / "db.big"
    with open(big, "wb") as f:
        f.truncate(MAX_SMALL * 2)
    assert len(read_file(big, "zone file", limit=MAX_ZONE)) == MAX_SMALL * 2


def write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_atomic_write_never_writes_through_a_planted_temp_link(tmp_path: Path) -> None:
    """The temp file is O_EXCL|O_NOFOLLOW: a link planted under any name is never followed,
    and the final rename replaces a link at the path itself (its target stays as it was)."""
    victim = write(tmp_path / "victim", b"precious")
    link = tmp_path / "state.json"
    link.symlink_to(victim)
    atomic_write(link, b"new", mode=0o600)
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink() and link.read_bytes() == b"new"


def test_atomic_write_relative_to_a_directory_descriptor(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        atomic_write("x.json", b"1", mode=0o600, dir_fd=fd)
        with pytest.raises(ValueError):
            atomic_write(str(tmp_path / "x.json"), b"2", dir_fd=fd)
    finally:
        os.close(fd)
    assert (tmp_path / "x.json").read_bytes() == b"1"


def test_remove_stale_temps_removes_only_old_leftovers_of_that_file(tmp_path: Path) -> None:
    target = write(tmp_path / "mail.json", b"{}")
    old = write(tmp_path / ".mail.json.abc123.tmp", b"half")
    fresh = write(tmp_path / ".mail.json.def456.tmp", b"in flight")
    other = write(tmp_path / ".other.json.abc123.tmp", b"not ours")
    odd = write(tmp_path / ".mail.json.a b.tmp", b"not our pattern")
    victim = write(tmp_path / "victim", b"keep")
    link = tmp_path / ".mail.json.zzz999.tmp"
    link.symlink_to(victim)
    past = time.time() - 3600
    for p in (old, other, odd):
        os.utime(p, (past, past))
    os.utime(link, (past, past), follow_symlinks=False)
    assert remove_stale_temps(target, older_than=60) == [old.name]
    assert fresh.exists() and other.exists() and odd.exists() and link.is_symlink()
    assert victim.read_bytes() == b"keep"


def test_deployed_path_linking_out_of_its_directory_is_refused(tmp_path: Path) -> None:
    """A deployed path that links into another place (certbot's live/, say) would be followed
    there by every read and make the server follow the ACME client: refused in one line by
    validate and apply; a link to a file beside it (versioned copies) is fine."""
    cfg = demo.setup(tmp_path, ttl=2)
    dep = tmp_path / "deployed/fullchain.pem"
    zone = tmp_path / "example.test.zone"
    before = zone.read_bytes()
    elsewhere = tmp_path / "live/mx.example.test/deployed-copy.pem"
    dep.rename(elsewhere)
    dep.symlink_to(elsewhere)
    for command in ("validate", "apply"):
        proc = run_cli("-c", cfg, command, timeout=60)
        assert_one_line_error(proc, "deployed.cert", str(dep), "outside its directory")
    assert zone.read_bytes() == before
    dep.unlink()
    elsewhere.rename(tmp_path / "deployed/fullchain-2026.pem")
    dep.symlink_to("fullchain-2026.pem")
    proc = run_cli("-c", cfg, "validate", timeout=60)
    assert proc.returncode == 0, proc.stderr
