"""The engine's run loop takes the service lock per step and sleeps without it: a real
``apply --wait`` is mid-wait when certbot's deploy hook runs for a renewal; the hook returns
within seconds, and the waiter finishes the rollover with the newest certificate."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tests.support.helpers import cli_env, run_cli
from tlsarotate import certfiles, demo, pki, records

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "hooks" / "certbot-deploy"
TTL = 10  # the waiter's wait: longer than the hook may ever take


def _wrapper(d: Path) -> Path:
    """A ``tlsarotate`` command running this checkout (what TLSAROTATE_BIN names)."""
    p = d / "tlsarotate"
    p.write_text(f'#!/bin/sh\nexec {sys.executable} -m tlsarotate "$@"\n')
    p.chmod(0o755)
    return p


def _renew(lineage: Path) -> None:
    """certbot renewed the lineage: a new certificate and key (DANE-EE records do not care
    which CA signed it)."""
    ca = pki.make_ca("renewal CA")
    leaf = pki.make_leaf(ca, [demo.HOST.rstrip(".")])
    (lineage / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (lineage / "privkey.pem").write_bytes(leaf.key_pem)


def test_a_deploy_hook_during_apply_wait_returns_within_seconds(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=TTL)
    lineage = tmp_path / "live/mx.example.test"
    env = cli_env()
    waiter = subprocess.Popen(
        [sys.executable, "-m", "tlsarotate", "-c", str(cfg), "apply", "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert waiter.stdout is not None and waiter.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    out: list[str] = []
    err: list[str] = []

    def pump(f: IO[str]) -> None:
        for line in f:
            lines.put(line)
        lines.put(None)

    readers = [
        threading.Thread(target=pump, args=(waiter.stdout,), daemon=True),
        threading.Thread(target=lambda f: err.append(f.read()), args=(waiter.stderr,), daemon=True),
    ]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while "mail: wait-ttl" not in "".join(out):  # published; now it waits for the TTL
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(out) + "".join(err)
            out.append(line)
        _renew(lineage)
        newest = certfiles.load_pair(lineage / "fullchain.pem", lineage / "privkey.pem")
        started = time.monotonic()
        hook = subprocess.run(
            [str(HOOK)],
            env={
                **env,
                "RENEWED_LINEAGE": str(lineage),
                "RENEWED_DOMAINS": "mx.example.test",
                "TLSAROTATE_BIN": str(_wrapper(tmp_path)),
                "TLSAROTATE_CONFIG": str(cfg),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
        assert waiter.poll() is None, "the waiter should still be waiting"
        assert hook.returncode == 0, hook.stdout + hook.stderr
        assert took < 5, f"the hook blocked certbot for {took:.1f}s: {hook.stdout}{hook.stderr}"
        assert "rc=2 waiting" in hook.stdout and hook.stderr == ""
        # the hook published the newest certificate's records beside the deployed ones
        zone = (tmp_path / "example.test.zone").read_text()
        want = {records.to_text(r) for r in records.build_all(newest, demo_params())}
        assert all(t in zone for t in want)
        assert waiter.wait(timeout=120) == 0, "".join(out) + "".join(err)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        for t in readers:
            t.join(timeout=5)
    while (line := lines.get(timeout=5)) is not None:
        out.append(line)
    text = "".join(out)
    assert "re-" not in "".join(err)  # no concurrent-change retries were needed
    # the waiter re-planned after the hook's step and installed the NEWEST certificate
    deployed = certfiles.load_pair(
        tmp_path / "deployed/fullchain.pem", tmp_path / "deployed/privkey.pem"
    )
    assert deployed.same_as(newest), text
    zone = (tmp_path / "example.test.zone").read_text()
    assert zone.count(" IN TLSA ") == 2 and all(t in zone for t in want), zone
    status = run_cli("-c", cfg, "plan")
    assert status.returncode == 0 and "mail: idle" in status.stdout, status.stdout


def demo_params() -> list[records.Params]:
    return [records.parse_params(p) for p in ("3 1 1", "3 0 1")]
