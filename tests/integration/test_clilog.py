"""``--log-to syslog|journald`` (and ``$TLSAROTATE_LOG``): the CLI's log lines arrive at the
local socket -- here a Unix datagram socket bound in a temporary directory and named by
``$TLSAROTATE_LOG_SOCKET`` -- with facility daemon and the priority of their level."""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line_error, cli_env, run_cli
from tlsarotate import demo

DAEMON = 3  # syslog facility daemon
ERR, INFO = 3, 6
# RFC 3164 as glibc's syslog(3) writes it to /dev/log: <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG
RFC3164 = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
    r"tlsarotate\[(?P<pid>\d+)\]: (?P<msg>.*)"
)


@pytest.fixture
def sock() -> Iterator[tuple[socket.socket, str]]:
    d = tempfile.mkdtemp(prefix="tlog")  # short: a socket path has at most 107 bytes
    path = os.path.join(d, "log")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0)
    try:
        yield s, path
    finally:
        s.close()
        shutil.rmtree(d)


def _received(s: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(65536))
        except BlockingIOError:
            return out


def _journal_fields(datagram: bytes) -> dict[str, str]:
    """Parse journald's native protocol (KEY=value lines, or KEY\\n<u64 le length><data>\\n)."""
    fields, i = {}, 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            (n,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            k, v = line, datagram[nl + 9 : nl + 9 + n]
            assert datagram[nl + 9 + n : nl + 10 + n] == b"\n"
            i = nl + 10 + n
        fields[k.decode()] = v.decode()
    return fields


def test_syslog_gets_info_and_error_lines_with_facility_daemon(
    tmp_path: Path, sock: tuple[socket.socket, str]
) -> None:
    s, path = sock
    cfg = demo.setup(tmp_path, ttl=60)
    env = cli_env(TLSAROTATE_LOG_SOCKET=path)
    proc = run_cli("-v", "--log-to", "syslog", "-c", cfg, "apply", env=env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ""  # the log lines went to syslog, not stderr
    lines = [RFC3164.fullmatch(d.decode()) for d in _received(s)]
    assert lines and all(lines), lines
    assert {int(m["pri"]) for m in lines if m} == {DAEMON * 8 + INFO}
    assert any(m["msg"].startswith("mail: ") for m in lines if m)

    # an error: one line on stderr as always, and the same line at priority err
    bad = run_cli(
        "-c", tmp_path / "missing.yaml", "validate", env={**env, "TLSAROTATE_LOG": "syslog"}
    )
    assert_one_line_error(bad, "missing.yaml")
    (got,) = [RFC3164.fullmatch(d.decode()) for d in _received(s)]
    assert got and int(got["pri"]) == DAEMON * 8 + ERR
    assert f"tlsarotate: {got['msg']}" == bad.stderr.strip()


def test_journald_native_protocol(tmp_path: Path, sock: tuple[socket.socket, str]) -> None:
    s, path = sock
    cfg = demo.setup(tmp_path, ttl=60)
    env = cli_env(TLSAROTATE_LOG_SOCKET=path, TLSAROTATE_LOG="journald")
    proc = run_cli("-v", "-c", cfg, "apply", env=env)
    assert proc.returncode == 2 and proc.stderr == "", proc.stderr
    entries = [_journal_fields(d) for d in _received(s)]
    assert entries
    for e in entries:
        assert e["PRIORITY"] == str(INFO) and e["SYSLOG_FACILITY"] == str(DAEMON)
        assert e["SYSLOG_IDENTIFIER"] == "tlsarotate" and e["SYSLOG_PID"].isdigit()
    assert any(e["MESSAGE"].startswith("mail: ") for e in entries)


def test_journald_multiline_values_are_length_prefixed() -> None:
    from tlsarotate.clilog import JournalHandler

    got = _journal_fields(JournalHandler.entry({"MESSAGE": "two\nlines", "PRIORITY": "3"}))
    assert got == {"MESSAGE": "two\nlines", "PRIORITY": "3"}


def test_unreachable_socket_and_unknown_destination_are_one_line(tmp_path: Path) -> None:
    env = cli_env(TLSAROTATE_LOG_SOCKET=str(tmp_path / "nobody-listens"))
    proc = run_cli("--log-to", "syslog", "man", env=env)
    assert_one_line_error(proc, "cannot log to syslog", "nobody-listens")
    assert proc.returncode == 1
    proc = run_cli("man", env=cli_env(TLSAROTATE_LOG="mail"))
    assert_one_line_error(proc, "TLSAROTATE_LOG='mail'", "stderr, syslog, journald")
