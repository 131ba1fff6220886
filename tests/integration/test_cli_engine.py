"""plan / apply / status / demo from the command line, on the zone-file backend, and every bad
input the engine can meet: one clear line, exit 1, nothing written."""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from tests.support.helpers import assert_one_line_error, cli_env, run_cli
from tlsarotate import demo, pki
from tlsarotate.stores.file import FileStateStore


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """The demo's layout: a zone file with the deployed records, a next lineage, a config."""
    return demo.setup(tmp_path, ttl=2)


def zone_text(cfg: Path) -> str:
    return (cfg.parent / "example.test.zone").read_text()


def test_demo_command_runs_a_full_rollover(tmp_path: Path) -> None:
    proc = run_cli("demo", "--dir", tmp_path / "d", "--ttl", "1", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for phase in ("publish", "wait-ttl", "swap", "cleanup", "idle"):
        assert f"mail: {phase}" in out, phase
    assert "demo complete" in out


def test_plan_never_writes_and_exits_2(setup: Path) -> None:
    before = zone_text(setup)
    proc = run_cli("-c", setup, "plan")
    assert proc.returncode == 2, proc.stderr
    # the deployed certificate's records are there: only the next one's are added, and said
    assert "mail: publish - add the records of the next certificate\n" in proc.stdout
    assert proc.stdout.count("\n  + _25._tcp.mx.example.test. 2 IN TLSA") == 2
    assert zone_text(setup) == before
    assert not (setup.parent / "state" / "mail.json").exists()


def test_plan_json_schema(setup: Path) -> None:
    proc = run_cli("-c", setup, "plan", "--output", "json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["version"] == 1 and doc["exit"] == 2
    svc = doc["services"][0]
    assert svc["service"] == "mail" and svc["phase"] == "publish" and svc["pending"] is True
    assert [c["op"] for c in svc["changes"]] == ["add", "add"]
    assert all(c["owner"] == "_25._tcp.mx.example.test." and c["ttl"] == 2 for c in svc["changes"])


def test_apply_steps_then_idle_and_plan_exit_0(tmp_path: Path) -> None:
    # a TTL long enough that the status calls below still fall inside it on a loaded machine
    # (with 2 s, three CLI runs could outlast it and the cached RRsets be gone already)
    setup = demo.setup(tmp_path, ttl=8)
    first = run_cli("-c", setup, "apply")
    assert first.returncode == 2, first.stderr  # published; waiting for the TTL
    assert zone_text(setup).count(" IN TLSA ") == 4
    # caches may hold the first run's unknown RRset and the deployed-only one (2 records)
    waiting = json.loads(run_cli("-c", setup, "status", "--output", "json").stdout)
    cached = waiting["services"][0]["cached"]
    assert [c["records"] is None for c in cached] == [True, False]
    assert [len(v) for v in cached[1]["records"].values()] == [2]
    assert all(c["ttl"] == 8 and c["until"].endswith("Z") for c in cached)
    text = run_cli("-c", setup, "status").stdout
    assert (
        "caches may still hold an older RRset of 2 TLSA records at _25._tcp.mx.example.test., "
        "TTL 8s" in text
    )
    assert not re.search(r"\(\d+ at ", text), text  # never a bare "(2 at ...)"
    done = run_cli("-c", setup, "apply", "--wait", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert zone_text(setup).count(" IN TLSA ") == 2
    again = run_cli("-c", setup, "plan")
    assert again.returncode == 0 and "mail: idle" in again.stdout
    status = run_cli("-c", setup, "status", "--output", "json")
    doc = json.loads(status.stdout)
    assert doc["services"][0]["phase"] == "idle"
    state = json.loads((setup.parent / "state/mail.json").read_text())
    assert state["last_step"] == "cleanup" and state["swap"] is None


def test_deployed_file_missing(setup: Path) -> None:
    (setup.parent / "deployed/fullchain.pem").unlink()
    before = zone_text(setup)
    proc = run_cli("-c", setup, "apply")
    assert_one_line_error(proc, "deployed", "fullchain.pem", "not found")
    assert zone_text(setup) == before


def test_next_file_missing(setup: Path) -> None:
    shutil.rmtree(setup.parent / "live/mx.example.test")
    before = zone_text(setup)
    proc = run_cli("-c", setup, "apply")
    assert_one_line_error(proc, "next certificate", "mx.example.test")
    assert zone_text(setup) == before


def test_next_key_does_not_match_next_certificate(setup: Path) -> None:
    other = pki.new_key()
    (setup.parent / "live/mx.example.test/privkey.pem").write_bytes(pki.key_pem(other))
    before = zone_text(setup)
    proc = run_cli("-c", setup, "apply")
    assert_one_line_error(proc, "privkey.pem", "does not belong")
    assert zone_text(setup) == before


def test_next_equals_deployed_is_idle(setup: Path) -> None:
    lineage = setup.parent / "live/mx.example.test"
    shutil.copy(setup.parent / "deployed/fullchain.pem", lineage / "fullchain.pem")
    shutil.copy(setup.parent / "deployed/privkey.pem", lineage / "privkey.pem")
    before = zone_text(setup)
    proc = run_cli("-c", setup, "apply")
    assert proc.returncode == 0, proc.stderr
    assert zone_text(setup) == before  # nothing to roll over, nothing written
    plan = run_cli("-c", setup, "plan")
    assert plan.returncode == 0 and "mail: idle" in plan.stdout
    status = run_cli("-c", setup, "status")
    assert "default next: the deployed one; nothing to roll over" in status.stdout
    doc = json.loads(run_cli("-c", setup, "status", "--output", "json").stdout)
    cert = doc["services"][0]["certificates"][0]
    assert cert["next"] is None and cert["next_is_deployed"] is True
    valid = run_cli("-c", setup, "validate")
    assert "next: the deployed one; nothing to roll over" in valid.stdout, valid.stdout


def test_reload_failure_restores_and_stops(setup: Path) -> None:
    cfg = setup.read_text().replace('reload: ["true"]', 'reload: ["false"]')
    setup.write_text(cfg)
    deployed_before = (setup.parent / "deployed/fullchain.pem").read_bytes()
    proc = run_cli("-c", setup, "apply", "--wait", timeout=60)
    assert_one_line_error(
        proc, "swap to the next certificate failed", "'false' exited 1", "NOT retired"
    )
    assert (setup.parent / "deployed/fullchain.pem").read_bytes() == deployed_before
    assert zone_text(setup).count(" IN TLSA ") == 4  # old records still there
    state = json.loads((setup.parent / "state/mail.json").read_text())
    assert state["swap"] is None  # rolled back cleanly: the next run plans afresh
    # fixed: the next run finishes the job
    setup.write_text(cfg.replace('reload: ["false"]', 'reload: ["true"]'))
    ok = run_cli("-c", setup, "apply", "--wait", timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert zone_text(setup).count(" IN TLSA ") == 2


def test_corrupt_state_is_rebuilt_and_said(setup: Path) -> None:
    assert run_cli("-c", setup, "apply").returncode == 2
    (setup.parent / "state/mail.json").write_text("{garbage")
    proc = run_cli("-c", setup, "plan")
    assert proc.returncode == 4  # rebuilt: waiting again from now, nothing to do yet
    assert "corrupt" in proc.stdout and "visible from now" in proc.stdout


def test_lock_held_gives_up_with_a_clear_line(setup: Path) -> None:
    store = FileStateStore(setup.parent / "state")
    with store.lock("mail", timeout=1):
        proc = run_cli("-c", setup, "apply", "--lock-timeout", "0.5")
    assert_one_line_error(proc, "locked by another tlsarotate", "--lock-timeout")
    assert zone_text(setup).count(" IN TLSA ") == 2  # nothing written


def test_zone_file_reload_failure_restores_the_file(setup: Path) -> None:
    cfg = setup.read_text().replace(
        "    path: example.test.zone\n", "    path: example.test.zone\n    reload: [false]\n"
    )
    setup.write_text(cfg)
    before = zone_text(setup)
    proc = run_cli("-c", setup, "apply")
    assert_one_line_error(proc, "reload command", "previous zone file was restored")
    assert zone_text(setup) == before


def test_unknown_service(setup: Path) -> None:
    proc = run_cli("-c", setup, "plan", "--service", "nope")
    assert_one_line_error(proc, "no service named 'nope'", "mail")


def test_lineage_filter(setup: Path) -> None:
    # a deploy hook runs for every renewed certificate: one no service rolls is not an error
    proc = run_cli("-c", setup, "apply", "--lineage", setup.parent / "live/other")
    assert proc.returncode == 0 and "nothing to do" in proc.stderr
    assert zone_text(setup).count(" IN TLSA ") == 2
    ok = run_cli("-c", setup, "apply", "--lineage", setup.parent / "live/mx.example.test")
    assert ok.returncode == 2, ok.stderr


def test_ctrl_c_during_the_wait_leaves_a_resumable_state(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlsarotate", "-c", str(cfg), "apply", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    # read both pipes in threads so that no read can block past the deadline
    lines: queue.Queue[str | None] = queue.Queue()
    err_parts: list[str] = []

    def pump_stdout(f: IO[str]) -> None:
        for line in f:
            lines.put(line)
        lines.put(None)  # EOF: the process is gone

    readers = [
        threading.Thread(target=pump_stdout, args=(proc.stdout,), daemon=True),
        threading.Thread(
            target=lambda f: err_parts.append(f.read()), args=(proc.stderr,), daemon=True
        ),
    ]
    for t in readers:
        t.start()
    try:
        seen = ""
        deadline = time.monotonic() + 30
        while "wait-ttl" not in seen:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen += line
        assert "wait-ttl" in seen, seen
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in readers:
            t.join(10)
    err = "".join(err_parts)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert zone_text(cfg).count(" IN TLSA ") == 4  # published, nothing half-done
    state = json.loads((tmp_path / "state/mail.json").read_text())
    assert state["visible_since"] is not None
    plan = run_cli("-c", cfg, "plan")
    assert plan.returncode == 4 and "wait-ttl" in plan.stdout  # resumes where it was (waiting)


def test_check_says_when_the_swap_becomes_safe(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=3600)
    before = run_cli("-c", cfg, "check", "--no-live")
    assert "safe to swap now: no" in before.stdout  # nothing published for the next one yet
    assert run_cli("-c", cfg, "apply").returncode == 2  # published; the wait starts
    proc = run_cli("-c", cfg, "check", "--no-live")
    assert re.search(r"safe to swap now: no, in (59m\d\ds|1h00m)", proc.stdout), proc.stdout
