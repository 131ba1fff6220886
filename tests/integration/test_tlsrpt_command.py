"""``tlsarotate reports`` as the CLI (a subprocess): report files, a Maildir, an mbox and stdin,
against the rollover history the simulated world wrote; hostile inputs are one line each."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.tlsrpt_reports import (
    google_mail,
    mbox,
    microsoft_mail,
    report,
    rfc_example,
    zip_bomb,
)
from tests.support.tlsrpt_world import world_config
from tests.support.world import SimWorld
from tlsarotate import timefmt

IP = "209.85.220.41"
MX = "mx1.example.test"


@pytest.fixture
def rolled(tmp_path: Path) -> tuple[SimWorld, float]:
    w = SimWorld(tmp_path, ttl=300, margin=60)
    w.apply()
    w.clock.advance(3600)
    w.new_next()
    w.apply()
    w.clock.advance(360)
    w.apply()
    swapped = w.clock.now()
    w.clock.advance(3600)
    w.apply()
    return w, swapped


def failing(swapped: float, n: int = 12, **kw: object) -> dict[str, object]:
    return report(
        "example.test",
        swapped - 1800,
        swapped + 84600,
        [("tlsa-invalid", IP, MX, n)],
        **kw,  # type: ignore[arg-type]
    )


def test_a_directory_with_good_foreign_and_hostile_reports(
    rolled: tuple[SimWorld, float],
) -> None:
    w, swapped = rolled
    d = w.tmp / "reports"
    d.mkdir()
    (d / "google.com!example.test!1!2.json.gz").write_bytes(
        gzip.compress(json.dumps(failing(swapped)).encode())
    )
    (d / "rfc.json").write_text(json.dumps(rfc_example()))  # company-y.example: not ours
    (d / "bomb.json.gz").write_bytes(zip_bomb())
    (d / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (d / "latin1.json").write_bytes(b'{"organization-name": "Soci\xe9t\xe9"}')
    (d / "schema.json").write_text(json.dumps({"policies": []}))
    proc = run_cli("-c", world_config(w), "reports", "--dir", d)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr and len(err) == 5, proc.stderr
    assert all(line.startswith("tlsarotate: skipped: ") for line in err)
    joined = "\n".join(err)
    for needle in (
        "bomb.json.gz: larger than 20971520 bytes when decompressed",
        "deep.json: JSON nested more than 32 levels deep",
        "latin1.json: not UTF-8 text",
        "schema.json: not an RFC 8460 report: 'date-range' is missing",
        "rfc.json: policy domain 'company-y.example' is not served",
    ):
        assert needle in joined, joined
    assert (
        f"12 sessions from Google Inc. ({IP}) failed tlsa-invalid on {MX} between "
        f"{timefmt.iso(swapped - 1800)} and {timefmt.iso(swapped + 84600)}, while RRsets "
    ) in proc.stdout
    assert f"this matches the rollover at {timefmt.iso(swapped)} (certificate swap)" in proc.stdout
    assert "1 report(s), 12 failed session(s), 5 input(s) or policies skipped" in proc.stdout


def test_a_maildir_as_json(rolled: tuple[SimWorld, float]) -> None:
    w, swapped = rolled
    md = w.tmp / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1").write_bytes(google_mail(failing(swapped)))
    ms = failing(swapped, 3, org="Microsoft Corporation", report_id="133")
    (md / "cur" / "2:2,S").write_bytes(microsoft_mail(ms))
    proc = run_cli("-c", world_config(w), "reports", "--maildir", md, "--output", "json")
    assert proc.returncode == 2, proc.stderr  # failed sessions reported, every input read
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert [r["organization"] for r in doc["reports"]] == ["Google Inc.", "Microsoft Corporation"]
    assert doc["failed_sessions"] == [
        {"policy_domain": "example.test", "mx": MX, "result_type": "tlsa-invalid", "sessions": 15}
    ]
    f = doc["failures"][0]
    assert f["rollover"] == {"at": timefmt.iso(swapped), "event": "swap"}
    assert f["service"] == "mail" and len(f["certificates"]) == 2 and doc["problems"] == []


def test_an_mbox_stdin_and_the_configured_directory(rolled: tuple[SimWorld, float]) -> None:
    w, swapped = rolled
    box = w.tmp / "tlsrpt.mbox"
    box.write_bytes(
        mbox(google_mail(failing(swapped)), microsoft_mail(failing(swapped, 1, report_id="x")))
    )
    cfg = world_config(w)
    proc = run_cli("-c", cfg, "reports", "--mbox", box)
    assert proc.returncode == 2 and "2 report(s), 13 failed session(s)" in proc.stdout, proc.stderr
    proc = run_cli("-c", cfg, "reports", "-", input=google_mail(failing(swapped)).decode())
    assert proc.returncode == 2 and "1 report(s), 12 failed session(s)" in proc.stdout, proc.stderr
    clean = w.tmp / "clean"
    clean.mkdir()
    (clean / "r.json").write_text(json.dumps(report("example.test", swapped, swapped + 10)))
    proc = run_cli("-c", world_config(w, clean), "reports")
    assert proc.returncode == 0 and "1 report(s), 0 failed session(s)" in proc.stdout, proc.stderr


def test_no_source_is_one_line(rolled: tuple[SimWorld, float]) -> None:
    w, _ = rolled
    proc = run_cli("-c", world_config(w), "reports")
    assert_one_line_error(proc, "no reports to read", "tlsrpt.dir")
    proc = run_cli("-c", world_config(w), "reports", "--dir", w.tmp, "--mbox", w.tmp / "x")
    assert_one_line_error(proc, "name one source")


def test_help_names_every_option() -> None:
    proc = run_cli("reports", "--help")
    assert proc.returncode == 0
    for opt in ("--dir DIR", "--maildir DIR", "--mbox FILE", "--output", "stdin"):
        assert opt in proc.stdout, proc.stdout
