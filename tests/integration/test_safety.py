"""The safety thresholds through the CLI, on the zone-file backend (the demo's layout): stale
records over ``max_stale_removals``/``max_stale_share`` are shown by ``plan`` ("needs --force"),
refused by ``apply`` (one line, nothing written) and removed by ``apply --force``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tlsarotate import demo, records

OWNER = "_25._tcp.mx.example.test."
NEEDS = (
    f"needs --force: {OWNER}: removes 2 of 4 records that no certificate accounts for "
    "(stale; 50% of the RRset, more than max_stale_share 40%)"
)


def zone_text(cfg: Path) -> str:
    return (cfg.parent / "example.test.zone").read_text()


def tlsa_count(cfg: Path) -> int:
    return zone_text(cfg).count(" IN TLSA ")


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """The demo's layout with nothing to roll over (next = deployed), ``owners: exclusive``
    and two records at the owner that no certificate accounts for: stale, 2 of 4."""
    cfg = demo.setup(tmp_path, ttl=2)
    lineage = tmp_path / "live/mx.example.test"
    shutil.copy(tmp_path / "deployed/fullchain.pem", lineage / "fullchain.pem")
    shutil.copy(tmp_path / "deployed/privkey.pem", lineage / "privkey.pem")
    cfg.write_text(cfg.read_text().replace("    ttl: 2\n", "    ttl: 2\n    owners: exclusive\n"))
    owner = records.owner_name("mx.example.test.", 25)
    stale = [records.from_text(f"3 1 1 {c * 64}") for c in "ab"]
    zone = cfg.parent / "example.test.zone"
    zone.write_text(
        zone.read_text() + "".join(records.zone_line(owner, 2, r) + "\n" for r in stale)
    )
    return cfg


def set_keys(cfg: Path, text: str) -> None:
    cfg.write_text(
        cfg.read_text().replace("    owners: exclusive\n", "    owners: exclusive\n" + text)
    )


def test_plan_shows_which_records_why_and_that_it_needs_force(setup: Path) -> None:
    before = zone_text(setup)
    proc = run_cli("-c", setup, "plan")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout
    assert "mail: cleanup - remove stale records that match no certificate in use" in out
    assert out.count(f"\n  - {OWNER} 2 IN TLSA 3 1 1 ") == 2 and out.count("    (stale)") == 2
    assert f"  {NEEDS}\n" in out
    doc = json.loads(run_cli("-c", setup, "plan", "--output", "json").stdout)
    svc = doc["services"][0]
    assert [(c["op"], c["why"]) for c in svc["changes"]] == [("remove", "stale")] * 2
    assert svc["needs_force"] == [
        {"owner": OWNER, "stale": 2, "size": 4, "whole": False, "reason": NEEDS[15:]}
    ]
    assert zone_text(setup) == before  # plan never writes


def test_apply_refuses_then_apply_force_removes(setup: Path) -> None:
    before = zone_text(setup)
    refused = run_cli("-c", setup, "apply")
    assert refused.returncode == 1
    assert_one_line_error(
        refused, "service 'mail'", OWNER, "removes 2 of 4 records", "apply --force"
    )
    assert zone_text(setup) == before  # nothing written for the service
    both = run_cli("-c", setup, "apply", "--force", "--wait")
    assert_one_line_error(both, "--force", "cannot be combined with --wait")
    assert zone_text(setup) == before
    forced = run_cli("-c", setup, "apply", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"==> mail: --force: {OWNER}: removes 2 of 4 records" in forced.stdout
    assert tlsa_count(setup) == 2 and "abab" not in zone_text(setup)
    again = run_cli("-c", setup, "apply")  # nothing unsafe left: a plain run is idle
    assert again.returncode == 0 and "needs --force" not in again.stdout


def test_thresholds_are_per_service_config(setup: Path) -> None:
    set_keys(setup, "    max_stale_share: 0.5\n")  # 2 of 4 is not more than 50%, nor 2 > 2
    plan = run_cli("-c", setup, "plan")
    assert plan.returncode == 2 and "needs --force" not in plan.stdout
    done = run_cli("-c", setup, "apply")
    assert done.returncode == 0, done.stdout + done.stderr
    assert tlsa_count(setup) == 2


def test_max_stale_removals_zero_holds_back_any(setup: Path) -> None:
    set_keys(setup, "    max_stale_removals: 0\n    max_stale_share: 1\n")
    refused = run_cli("-c", setup, "apply")
    assert_one_line_error(refused, "removes 2 of 4 records", "more than max_stale_removals 0")
    assert tlsa_count(setup) == 4


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ("    max_stale_share: 1.5\n", "services[0].max_stale_share: share 1.5 out of range 0-1"),
        ("    max_stale_removals: -1\n", "services[0].max_stale_removals: count -1 out of"),
        ("    max_stale_removals: many\n", "services[0].max_stale_removals: expected a whole"),
    ],
)
def test_bad_threshold_is_one_line_at_its_key(setup: Path, keys: str, needle: str) -> None:
    set_keys(setup, keys)
    assert_one_line_error(run_cli("-c", setup, "validate"), needle)
