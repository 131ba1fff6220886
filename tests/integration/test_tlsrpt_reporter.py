"""A report written by a real reporter, sys4's tlsrpt-reporter: its collectd takes the
datagrams of five sessions to mx1 (three good, two tlsa-invalid) as an MTA sends them, its
reportd mails the day's report through a sendmail script into a Maildir, and
``tlsarotate reports --maildir`` reads it and matches the failures with the rollover history
the simulated world wrote during the reported day."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.support import tlsrpt_reporter, world
from tests.support.helpers import run_cli
from tests.support.tlsrpt_world import world_config
from tlsarotate import timefmt
from tlsarotate.clock import FakeClock

MX = "mx1.example.test"
RECORD = "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"
SENDER_IP, MX_IP = "192.0.2.25", "198.51.100.7"


@pytest.fixture
def reporter(tmp_path: Path) -> Iterator[tlsrpt_reporter.Reporter]:
    d = tmp_path / "reporter"
    d.mkdir()
    yield from tlsrpt_reporter.running(d)


def test_a_real_reporters_mail_is_read_and_correlated(
    tmp_path: Path, reporter: tlsrpt_reporter.Reporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the reportd reports on yesterday (UTC): the world's rollover happens yesterday morning
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = (today - dt.timedelta(hours=18)).timestamp()
    monkeypatch.setattr(world, "FakeClock", lambda: FakeClock(start))
    (tmp_path / "world").mkdir()
    w = world.SimWorld(tmp_path / "world", ttl=300, margin=60)
    w.apply()
    w.clock.advance(3600)
    w.new_next()
    w.apply()
    w.clock.advance(360)
    w.apply()
    swapped = w.clock.now()
    w.clock.advance(3600)
    w.apply()

    tlsa = sorted(w.published_texts())
    good = tlsrpt_reporter.datagram("example.test", RECORD, tlsa, MX)
    bad = tlsrpt_reporter.datagram(
        "example.test", RECORD, tlsa, MX, (tlsrpt_reporter.TLSA_INVALID, MX_IP, SENDER_IP)
    )
    reporter.send(good, good, bad, good, bad)
    mails = reporter.report(sessions=5)
    assert len(mails) == 1, mails
    msg = message_from_bytes(mails[0].read_bytes())
    assert msg["TLS-Report-Domain"] == "example.test" and msg["To"] == "tlsrpt@example.test"

    proc = run_cli(
        "-c", world_config(w), "reports", "--maildir", reporter.maildir, "--output", "json"
    )
    assert proc.returncode == 2, proc.stderr  # failed sessions reported, the input read
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    (r,) = doc["reports"]
    assert r["organization"] == "Reporter Test Org"
    assert r["contact_info"] == "tlsrpt-noreply@reporter.example"
    assert r["policies"] == [
        {
            "policy_type": "tlsa",
            "policy_domain": "example.test",
            "mx_hosts": [MX],
            "successful": 3,
            "failed": 2,
        }
    ]
    assert doc["failed_sessions"] == [
        {"policy_domain": "example.test", "mx": MX, "result_type": "tlsa-invalid", "sessions": 2}
    ]
    f = doc["failures"][0]
    assert f["rollover"] == {"at": timefmt.iso(swapped), "event": "swap"}
    assert f["service"] == "mail" and f["sender"] == f"Reporter Test Org ({SENDER_IP})"
    assert doc["problems"] == []

    proc = run_cli("-c", world_config(w), "reports", "--maildir", reporter.maildir)
    assert proc.returncode == 2, proc.stderr
    day = today - dt.timedelta(days=1)
    assert (
        f"2 sessions from Reporter Test Org ({SENDER_IP}) failed tlsa-invalid on {MX} between "
        f"{timefmt.iso(day.timestamp())} and "
    ) in proc.stdout, proc.stdout
    assert f"this matches the rollover at {timefmt.iso(swapped)} (certificate swap)" in proc.stdout
    assert "1 report(s), 2 failed session(s)" in proc.stdout, proc.stdout
