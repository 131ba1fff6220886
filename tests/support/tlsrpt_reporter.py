"""sys4's tlsrpt-reporter (PyPI ``tlsrpt-reporter``), run for real: ``tlsrpt-collectd`` takes
the datagrams an MTA sends on a Unix socket, ``tlsrpt-reportd`` fetches the finished day
through ``tlsrpt-fetcher``, renders the RFC 8460 report and mails it through a sendmail-
compatible script, here one that delivers into a Maildir.

The datagram is the one the collectd reads (``tlsrpt_reporter/tlsrpt.py``:
``_add_policies_from_datagram``/``_add_policy``), what libtlsrpt sends for one SMTP session:
``d`` the policy domain, ``pr`` its TLSRPT record, one entry per policy with ``f`` (the
session failed), ``t`` (failure count), ``failure-details`` (``c`` the result-type code, 304
tlsa-invalid, ``n`` the receiving MX, ``r`` its IP, ``s`` the sending MTA's IP) and the
RFC 8460 policy fields the report carries as they are (``policy-type`` 1 = tlsa).

A report covers a whole UTC day, "yesterday" for the reportd; the collectd's development day
roll-over (SIGUSR2: today's data is moved to yesterday) makes one in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import stop_process, wait_until

# a sendmail -i -t stand-in: the message on stdin, delivered into the Maildir named first
SENDMAIL = """\
import os, sys, time
md = sys.argv[1]
name = f"{time.time_ns()}.{os.getpid()}.tlsrpt"
with open(os.path.join(md, "tmp", name), "wb") as f:
    f.write(sys.stdin.buffer.read())
os.rename(os.path.join(md, "tmp", name), os.path.join(md, "new", name))
"""

TLSA_INVALID = 304


def need_reporter() -> None:
    """``pytest.fail`` (never skip) without the package: it is in the ``test`` extra."""
    if importlib.util.find_spec("tlsrpt_reporter") is None:
        pytest.fail("tlsrpt-reporter not installed: pip install -e '.[test]'", pytrace=False)


def datagram(
    domain: str,
    record: str,
    tlsa: Sequence[str],
    mx: str,
    failure: tuple[int, str, str] | None = None,
) -> bytes:
    """One session's datagram: DANE policy ``tlsa`` for ``domain`` at ``mx``; ``failure`` is
    (result-type code, receiving IP, sending IP)."""
    details = [{"c": failure[0], "n": mx, "r": failure[1], "s": failure[2]}] if failure else []
    policy: dict[str, Any] = {
        "policy-type": 1,
        "policy-string": list(tlsa),
        "policy-domain": domain,
        "mx-host": [mx],
        "f": 1 if failure else 0,
        "t": len(details),
        "failure-details": details,
    }
    return json.dumps({"dpv": "1", "d": domain, "pr": record, "policies": [policy]}).encode()


@dataclass
class Reporter:
    """A running collectd, and (after :meth:`report`) a reportd, under ``d``."""

    d: Path
    maildir: Path
    collectd: subprocess.Popen[bytes]
    reportd: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.d / "collectd.socket"

    @property
    def db(self) -> Path:
        return self.d / "collectd.sqlite"

    def send(self, *grams: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            for g in grams:
                s.sendto(g, str(self.socket))

    def stored(self, day: str = "") -> int:
        """Sessions the collectd has committed to its database (``day="yesterday"``: those
        moved there by the day roll-over)."""
        db = f"{self.db}.{day}" if day else self.db
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT COALESCE(SUM(cntrtotal), 0) FROM finalresults").fetchone()
            return int(row[0])
        finally:
            con.close()

    def report(self, sessions: int, timeout: float = 30) -> list[Path]:
        """Roll the collectd's day over once it has ``sessions`` stored, run the reportd until
        the report is in the Maildir."""
        wait_until(lambda: self.stored() == sessions, 10, f"{sessions} sessions committed")
        self.collectd.send_signal(signal.SIGUSR2)
        wait_until(lambda: self.stored("yesterday") == sessions, 10, "the day roll-over")
        fetcher = f"{sys.executable} -m tlsrpt_reporter.tlsrpt_fetcher --storage sqlite://{self.db}"
        conf = self.d / "reportd.cfg"
        conf.write_text(
            "[tlsrpt_reportd]\n"
            f"dbname = {self.d / 'reportd.sqlite'}\n"
            f"logfilename = {self.d / 'reportd.log'}\n"
            "log_level = debug\n"
            f"fetchers = {fetcher}\n"
            "organization_name = Reporter Test Org\n"
            "contact_info = tlsrpt-noreply@reporter.example\n"
            "sender_address = tlsrpt-noreply@reporter.example\n"
            f"sendmail_script = {sys.executable} {self.d / 'sendmail.py'} {self.maildir}\n"
            "interval_main_loop = 1\n"
            "spread_out_delivery = 1\n"
            "min_wait_domainlist = 0\nmax_wait_domainlist = 1\n"
            "min_wait_domaindetails = 0\nmax_wait_domaindetails = 1\n"
            "min_wait_delivery = 0\nmax_wait_delivery = 1\n"
        )
        self.reportd = subprocess.Popen(
            [sys.executable, "-m", "tlsrpt_reporter.tlsrpt_reportd", "--config_file", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def mails() -> list[Path]:
            assert self.reportd is not None and self.reportd.poll() is None, self.log("reportd")
            return sorted((self.maildir / "new").iterdir())

        return wait_until(mails, timeout, "the reportd's report mail")

    def log(self, which: str) -> str:
        p = self.d / f"{which}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        for p in (self.reportd, self.collectd):
            if p is not None:
                stop_process(p)


def start(d: Path) -> Reporter:
    """A collectd listening on ``d/collectd.socket``, committing every second."""
    need_reporter()
    maildir = d / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (d / "sendmail.py").write_text(SENDMAIL)
    conf = d / "collectd.cfg"
    conf.write_text(
        "[tlsrpt_collectd]\n"
        f"storage = sqlite://{d / 'collectd.sqlite'}\n"
        f"socketname = {d / 'collectd.socket'}\n"
        f"logfilename = {d / 'collectd.log'}\n"
        "log_level = debug\n"
        "sockettimeout = 1\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-m", "tlsrpt_reporter.tlsrpt_collectd", "--config_file", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    r = Reporter(d, maildir, p)
    try:
        wait_until(lambda: r.socket.exists() and r.db.exists(), 10, "the collectd's socket")
    except BaseException:
        r.stop()
        raise
    return r


def running(d: Path) -> Iterator[Reporter]:
    """:func:`start`, stopped afterwards (for a fixture)."""
    r = start(d)
    try:
        yield r
    finally:
        r.stop()
