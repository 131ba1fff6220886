"""``plan`` tells a step to take now (2) from only waiting (4), ``apply`` exits 2 while a
rollover waits (the hooks and units count that as success), both 0 when idle."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.helpers import run_cli
from tlsarotate import demo


def test_plan_2_now_4_waiting_apply_2_waiting(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=3600)  # the wait outlasts the test
    now = run_cli("-c", cfg, "plan")
    assert now.returncode == 2 and "mail: publish" in now.stdout, now.stderr
    assert json.loads(run_cli("-c", cfg, "plan", "--output", "json").stdout)["exit"] == 2

    applied = run_cli("-c", cfg, "apply")
    assert applied.returncode == 2, applied.stderr  # published; the rollover waits

    waiting = run_cli("-c", cfg, "plan")
    assert waiting.returncode == 4 and "wait-ttl" in waiting.stdout, waiting.stderr
    doc = json.loads(run_cli("-c", cfg, "plan", "--output", "json").stdout)
    assert doc["exit"] == 4 and doc["services"][0]["phase"] == "wait-ttl"

    again = run_cli("-c", cfg, "apply", "--output", "json")
    assert again.returncode == 2 and json.loads(again.stdout)["exit"] == 2


def test_plan_and_apply_0_when_idle(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=1)
    done = run_cli("-c", cfg, "apply", "--wait", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_cli("-c", cfg, "plan").returncode == 0
    assert run_cli("-c", cfg, "apply").returncode == 0
