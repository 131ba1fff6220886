"""The zone file on disk: owner, group and mode kept, not UTF-8 or not a file, parse errors by
line, CRLF kept, RRSIGs told apart, no reload timeout left behind."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.tsigkeyring
import pytest

from tests.support.helpers import assert_one_line, rd
from tests.support.provider_configs import write_config
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.errors import ConfigError, ProviderError
from tlsarotate.providers.base import ProviderContext

ZONE = dns.name.from_text("example.test.")


A = records.owner_name("mx.example.test", 25)


ZONE_TEXT = """$TTL 300
$ORIGIN example.test.
@   IN SOA ns1 hostmaster ( 2026010100 3600 600 86400 300 )
    IN NS ns1
ns1 IN A 127.0.0.1
"""


def zone_file(tmp_path: Path, text: str = ZONE_TEXT) -> Path:
    path = tmp_path / "db.example.test"
    path.write_bytes(text.encode())
    return path


def zf(path: Path, runner: Any = None, **opts: Any) -> Any:
    from tlsarotate.providers.zonefile import ZoneFileProvider

    ctx = ProviderContext(base_dir=path.parent)
    if runner is not None:
        ctx.runner = runner
    return ZoneFileProvider("zf", {"path": str(path), **opts}, ctx)


def add_a(prov: Any, *tags: int) -> None:
    old = prov.read(ZONE, [A]).get(A)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, old, TlsaRRset.of(300, [rd(t) for t in tags])),)))


def failing_runner(argv: Any) -> Any:
    import subprocess

    return subprocess.CompletedProcess(list(argv), 1, "", "rndc: connect failed\n")


def test_zonefile_write_and_restore_keep_owner_group_and_mode(tmp_path: Path) -> None:
    path = zone_file(tmp_path)
    os_ids = (65534, 65534)  # nobody:nogroup, as BIND's own user would own it
    import os

    os.chown(path, *os_ids)
    os.chmod(path, 0o640)
    add_a(zf(path), 1)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*os_ids, 0o640)
    assert zf(path).read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    before = path.read_bytes()
    with pytest.raises(ProviderError) as ei:
        add_a(zf(path, failing_runner, reload=["rndc", "reload"]), 1, 2)
    assert_one_line(ei.value, "rndc: connect failed", "previous zone file was restored")
    st = path.stat()
    assert path.read_bytes() == before
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*os_ids, 0o640)


def test_zonefile_owner_not_keepable_is_one_line_nothing_written() -> None:
    """A non-root run cannot give the new file root's ownership: one line, old file intact."""
    import os
    import shutil

    d = Path(tempfile.mkdtemp(prefix="tlsarotate-zf-"))
    try:
        os.chmod(d, 0o777)
        path = zone_file(d)
        os.chmod(path, 0o666)  # root-owned, writable by anyone: only the chown can fail
        before = path.read_bytes()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 3
            try:
                os.close(r)
                os.setgid(65534)
                os.setuid(65534)
                try:
                    add_a(zf(path), 1)
                    os.write(w, b"OK no error")
                except ProviderError as e:
                    os.write(w, f"PE {e}".encode())
                except BaseException as e:
                    os.write(w, f"XX {type(e).__name__}: {e}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            out = fh.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert out.startswith("PE "), out
        text = out[3:]
        assert "\n" not in text and str(path) in text and "owner 0:0" in text, text
        assert "nothing was written" in text
        assert path.read_bytes() == before
        assert path.stat().st_uid == 0
    finally:
        shutil.rmtree(d)


def test_zonefile_restore_failure_is_one_line(tmp_path: Path) -> None:
    import os
    import subprocess

    d = tmp_path / "zones"
    d.mkdir()
    path = zone_file(d)
    moved = tmp_path / "zones-moved"

    def runner(argv: Any) -> Any:  # the reload fails, and the directory goes away meanwhile
        os.rename(d, moved)
        return subprocess.CompletedProcess(list(argv), 1, "", "reload failed\n")

    with pytest.raises(ProviderError) as ei:
        add_a(zf(path, runner, reload=["rndc", "reload"]), 1)
    assert_one_line(ei.value, str(path), "reload failed", "NEW file stays")


def test_zonefile_not_utf8_or_not_a_file_is_one_line(tmp_path: Path) -> None:
    from tlsarotate.providers.zonefile import ZoneFileProvider

    path = zone_file(tmp_path)
    path.write_bytes(ZONE_TEXT.encode() + b"; caf\xe9 in latin-1\n")
    with pytest.raises(ProviderError) as ei:
        zf(path).read(ZONE, [A])
    assert_one_line(ei.value, str(path), "not UTF-8")
    with pytest.raises(ConfigError) as ce:
        ZoneFileProvider.check_files("zf", {"path": path})
    assert str(ce.value).startswith(f"path: zone file {path} is not UTF-8")
    d = tmp_path / "a-directory"
    d.mkdir()
    with pytest.raises(ConfigError) as ce:
        ZoneFileProvider.check_files("zf", {"path": d})
    assert assert_one_line(ce.value) == f"path: {d} is not a regular file"


def test_zonefile_parse_error_names_file_and_line(tmp_path: Path) -> None:
    path = zone_file(tmp_path, ZONE_TEXT + "bad IN A 1.2.3\n")
    with pytest.raises(ProviderError) as ei:
        zf(path).read(ZONE, [A])
    import re

    assert re.search(rf"{re.escape(str(path))}:\d+: ", assert_one_line(ei.value)), str(ei.value)


def test_zonefile_crlf_file_gets_crlf_lines(tmp_path: Path) -> None:
    path = zone_file(tmp_path, ZONE_TEXT.replace("\n", "\r\n"))
    prov = zf(path)
    add_a(prov, 1, 2)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and data.endswith(b"\r\n")
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1), rd(2)])}
    add_a(prov, 2)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(2)])}


def test_zonefile_verify_tells_rrsigs_of_different_types_apart(tmp_path: Path) -> None:
    """RRSIGs over A and over NS at one name are different RRsets: a change to either is
    refused (keyed by type alone, the later one hid the earlier)."""
    import dns.zone

    sig = "{t} 13 2 300 20300101000000 20260101000000 12345 example.test. {b}"
    base = ZONE_TEXT + (
        "ns1 RRSIG " + sig.format(t="A", b="AAAA") + "\n"
        "ns1 RRSIG " + sig.format(t="NS", b="BBBB") + "\n"
    )
    changed = base.replace("AAAA", "CCCC")
    from tlsarotate.providers import zonetext

    def parse(text: str) -> dns.zone.Zone:
        return dns.zone.from_text(text, origin=ZONE, relativize=False)

    with pytest.raises(ProviderError, match="would change other records"):
        zonetext.verify(parse(base), parse(changed), ZoneChange(ZONE, ()), 2026010100, "zone file")
    zonetext.verify(parse(base), parse(base), ZoneChange(ZONE, ()), 2026010100, "zone file")


def test_zonefile_reload_timeout_is_gone(tmp_path: Path) -> None:
    from tlsarotate import config

    path = zone_file(tmp_path)
    cfg = write_config(tmp_path, f"    type: zonefile\n    path: {path}\n    reload_timeout: 60\n")
    with pytest.raises(ConfigError) as ei:
        config.load(cfg)
    assert_one_line(ei.value, "reload_timeout")
