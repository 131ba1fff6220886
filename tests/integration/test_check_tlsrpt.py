"""``check`` with a TLSRPT reports directory (``tlsrpt`` in the config), as the CLI: the failed
sessions of the window are WARNING or CRITICAL by the configured thresholds, in every output
format and in the Prometheus textfile."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.support.helpers import run_cli
from tests.support.tlsrpt_reports import report
from tests.support.tlsrpt_world import world_config
from tests.support.world import SimWorld

MX = "mx1.example.test"


@pytest.fixture
def world(tmp_path: Path) -> SimWorld:
    w = SimWorld(tmp_path, ttl=300)
    w.apply()
    (tmp_path / "reports").mkdir()
    return w


def put(w: SimWorld, name: str, *failures: tuple[str, int], ago: float = 3600) -> None:
    end = time.time() - ago
    doc = report(
        "example.test",
        end - 86399,
        end,
        [(rt, "209.85.220.41", MX, n) for rt, n in failures],
        report_id=name,
    )
    (w.tmp / "reports" / f"{name}.json").write_text(json.dumps(doc))


def check(w: SimWorld, *args: str, thresholds: str = "") -> tuple[int, str, str]:
    cfg = world_config(w, w.tmp / "reports", thresholds)
    proc = run_cli("-c", cfg, "check", "--no-live", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def test_no_failures_is_ok_and_counted(world: SimWorld) -> None:
    put(world, "clean")
    code, out, _ = check(world, "--output", "nagios")
    assert code == 0, out
    assert "tlsrpt_failed=0;0;99" in out


def test_failures_warn_then_go_critical_in_every_format(world: SimWorld) -> None:
    put(world, "google", ("tlsa-invalid", 5), ("certificate-expired", 1))
    prom = world.tmp / "tlsarotate.prom"
    code, out, _ = check(
        world, "--output", "json", "--prometheus", str(prom), thresholds="  warn: 3\n  crit: 10\n"
    )
    assert code == 1, out
    doc = json.loads(out)
    assert doc["status"] == "WARNING"
    assert doc["tlsrpt"] == {
        "window_seconds": 7 * 86400,
        "reports": 1,
        "failed_sessions": 6,
        "warn": 3,
        "crit": 10,
        "failed": [
            {
                "policy_domain": "example.test",
                "mx": MX,
                "result_type": "certificate-expired",
                "sessions": 1,
            },
            {
                "policy_domain": "example.test",
                "mx": MX,
                "result_type": "tlsa-invalid",
                "sessions": 5,
            },
        ],
    }
    assert doc["perfdata"]["tlsrpt_failed"] == 6
    (f,) = [f for f in doc["findings"] if f["service"] == "tlsrpt"]
    assert f["severity"] == "WARNING" and f["message"].startswith(
        "TLSRPT: 6 failed session(s) in the last 7d0h (warn 3): 5 tlsa-invalid on "
        f"{MX} (example.test); 1 certificate-expired"
    )
    text = prom.read_text()
    assert "tlsarotate_check_status 1" in text
    assert (
        'tlsarotate_tlsrpt_failed_sessions{policy_domain="example.test",mx="mx1.example.test",'
        'result_type="tlsa-invalid"} 5'
    ) in text
    assert "tlsarotate_tlsrpt_reports 1" in text
    put(world, "google2", ("tlsa-invalid", 4))
    code, out, _ = check(world, thresholds="  warn: 3\n  crit: 10\n")
    assert code == 2, out
    assert "CRITICAL: TLSRPT: 10 failed session(s) in the last 7d0h (crit 10)" in out
    assert "TLSRPT: 2 report(s) in the last 7d0h, 10 failed session(s)" in out
    code, out, _ = check(world, "--output", "nagios", thresholds="  warn: 3\n  crit: 10\n")
    assert code == 2 and out.startswith("TLSAROTATE CRITICAL - TLSRPT: 10 failed")
    assert re.search(r"\btlsrpt_failed=10;2;9\b", out), out


def test_old_reports_and_bad_files(world: SimWorld) -> None:
    put(world, "old", ("tlsa-invalid", 50), ago=30 * 86400)  # outside the window: not counted
    code, out, _ = check(world, "--output", "json", thresholds="  window: 14d\n")
    assert code == 0 and json.loads(out)["tlsrpt"]["reports"] == 0, out
    (world.tmp / "reports" / "junk.json.gz").write_bytes(b"\x1f\x8bjunk")
    code, out, _ = check(world)
    assert code == 1, out
    assert re.search(r"WARNING: TLSRPT report skipped: \S+junk.json.gz: not valid gzip data", out)


def test_the_thresholds_are_checked_in_the_config(world: SimWorld) -> None:
    cfg = world_config(world, world.tmp / "reports", "  warn: 5\n  crit: 2\n")
    proc = run_cli("-c", cfg, "validate")
    assert proc.returncode == 1 and "tlsrpt.crit: crit 2 is below warn 5" in proc.stderr
    cfg = world_config(world, world.tmp / "reports", "  window: soon\n")
    proc = run_cli("-c", cfg, "validate")
    assert "tlsrpt.window: expected seconds or a duration like 7d" in proc.stderr
