"""The first issuance from the command line, on the zone-file backend (the demo's layout with
nothing deployed yet): ``status`` says so, ``apply`` installs at once when no TLSA records exist
and waits first when some do."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.support.helpers import run_cli
from tlsarotate import certfiles, demo
from tlsarotate.material import Material


def _first_issuance(tmp_path: Path, keep_records: bool) -> Path:
    cfg = demo.setup(tmp_path, ttl=2)
    shutil.rmtree(tmp_path / "deployed")
    if not keep_records:
        zone = tmp_path / "example.test.zone"
        zone.write_text(re.sub(r"(?m)^.* IN TLSA .*\n", "", zone.read_text()))
    return cfg


def _deployed(tmp_path: Path) -> Material | None:
    if not (tmp_path / "deployed/fullchain.pem").exists():
        return None
    return certfiles.load_pair(
        tmp_path / "deployed/fullchain.pem", tmp_path / "deployed/privkey.pem"
    )


def test_status_says_nothing_is_deployed_yet(tmp_path: Path) -> None:
    cfg = _first_issuance(tmp_path, keep_records=False)
    text = run_cli("-c", cfg, "status")
    assert text.returncode == 0, text.stderr
    assert "default deployed: none yet (a first issuance)" in text.stdout
    doc = json.loads(run_cli("-c", cfg, "status", "--output", "json").stdout)
    (c,) = doc["services"][0]["certificates"]
    assert c["deployed"] is None and c["next"]["spki_sha256"]


def test_apply_without_records_installs_at_once_then_publishes(tmp_path: Path) -> None:
    cfg = _first_issuance(tmp_path, keep_records=False)
    lineage = tmp_path / "live/mx.example.test"
    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # observe: provider -> visible at once
    assert "installing the first certificate 'default'" in proc.stdout
    deployed = _deployed(tmp_path)
    assert deployed is not None and deployed.same_as(certfiles.load_lineage(lineage))
    zone = (tmp_path / "example.test.zone").read_text()
    assert zone.count(" IN TLSA ") == 2 and deployed.spki_sha256 in zone


def test_apply_with_records_published_waits_before_installing(tmp_path: Path) -> None:
    cfg = _first_issuance(tmp_path, keep_records=True)
    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "mail: wait-ttl" in proc.stdout and _deployed(tmp_path) is None
    assert (tmp_path / "example.test.zone").read_text().count(" IN TLSA ") == 4  # added beside
    proc = run_cli("-c", cfg, "apply", "--wait", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _deployed(tmp_path) is not None
