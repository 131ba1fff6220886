"""End to end with real parts only: pebble issues, certbot renews and runs hooks/certbot-deploy,
which runs the real ``tlsarotate apply --lineage``; tlsarotate publishes through RFC 2136 to a
BIND primary (signed zone, NOTIFY to a secondary), waits out propagation + TTL, swaps the new
certificate into Postfix's ``smtpd_tls_chain_files`` file, reloads Postfix and retires the old
records. At every observation ``openssl s_client -starttls smtp -dane_tlsa_rrdata`` (an
independent DANE verifier) must accept what Postfix serves against what EVERY authoritative
server publishes, and against every RRset a cache may still hold (published within the TTL).
"""

# ruff: noqa: F811
from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.acme_servers import HOOKS, ROOT, Certbot, Pebble, postfix_running
from tests.support.e2e_world import CONFIG_HEAD, AcmeWorld, pebble  # noqa: F401
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles

pytestmark = [pytest.mark.servers, pytest.mark.slow]

TTL = 2


CONFIG = (
    CONFIG_HEAD
    + """\
    certificate:
      deployed: {{combined: {chain}}}
      next: {{lineage: {lineage}}}
      reload: [postfix, -c, {pfdir}, reload]
"""
)


@pytest.fixture
def world(bind: BindServers, pebble: Pebble, tmp_path: Path) -> Iterator[AcmeWorld]:
    certbot = Certbot(pebble, tmp_path / "certbot")
    # the initial certificate, deployed by hand the first time (no hook yet)
    lineage = certbot.issue(["mx.example.test"])
    key = (lineage / "privkey.pem").read_bytes()
    full = (lineage / "fullchain.pem").read_bytes()
    with postfix_running(key, full) as pf:
        cfg = tmp_path / "tlsarotate.yaml"
        cfg.write_text(
            CONFIG.format(
                state=tmp_path / "state",
                port=bind.port,
                keyfile=bind.key_file,
                name="mx.example.test",
                ttl=TTL,
                chain=pf.chain_file,
                lineage=lineage,
                pfdir=pf.dir,
            )
        )
        wrapper = tmp_path / "bin" / "tlsarotate"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m tlsarotate "$@"\n')
        wrapper.chmod(0o755)
        # the admin installs the hook in certbot's directory hooks, run after every renewal
        hooks_dir = certbot.config_dir / "renewal-hooks" / "deploy"
        hooks_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(HOOKS / "certbot-deploy", hooks_dir / "tlsarotate")
        hook_log = tmp_path / "hook.log"
        certbot.env.update(
            PYTHONPATH=str(ROOT),
            TLSAROTATE_BIN=str(wrapper),
            TLSAROTATE_CONFIG=str(cfg),
            TLSAROTATE_HOOK_LOG=str(hook_log),
        )
        yield AcmeWorld(bind, certbot, pf, cfg, TTL, lineage, hook_log)


def _rec(lineage: Path) -> str:
    return f"3 1 1 {certfiles.load_lineage(lineage).spki_sha256}"


def test_full_rollover_then_reuse_key_fast_path(world: AcmeWorld) -> None:
    w = world
    lineage, hook_log = w.lineage, w.hook_log
    assert lineage is not None and hook_log is not None
    # 0. bootstrap: tlsarotate publishes the deployed certificate's record
    w.drive("bootstrap", bootstrap=True)
    w.history.clear()
    first = _rec(lineage)
    # the old-only RRset as caches hold it right before the renewal
    assert all(p == {first} for p in w.check("before the renewal").values())

    # 1. certbot renews with a NEW key; the deploy hook publishes the new record beside the old
    #    one and returns at once (exit 2 -> success for certbot)
    renewed_at = time.time()  # the hook publishes after this: the new RRset is visible later
    r = w.certbot.renew(reuse_key=False)
    assert r.returncode == 0 and "reported error" not in r.stderr, r.stderr
    hook_lines = hook_log.read_text().splitlines()
    assert len(hook_lines) == 1 and "rc=2 waiting" in hook_lines[0], hook_lines
    second = _rec(lineage)
    assert second != first
    w.bind.wait_synced("example.test.")
    pub = w.check("after the deploy hook")
    assert all(rrs == {first, second} for rrs in pub.values()), pub
    assert w.postfix.served() == certfiles.load(w.postfix.chain_file).chain_der[0]  # still old

    # 2. the timer finishes: wait for propagation + TTL, swap, reload, retire
    w.drive("full rollover")
    # The swap waited at least the TTL after the new RRset could first have been visible (the
    # hook ran after renewed_at). On a loaded machine the wait may already have run out before
    # the first timer run, so whether that run still waited (exit 2) is not asserted; what
    # caches may hold is checked by w.check at every step.
    swapped_at = w.postfix.chain_file.stat().st_mtime
    assert swapped_at - renewed_at >= TTL, (swapped_at - renewed_at, TTL)
    assert all(p == {second} for p in w.published().values())
    assert w.postfix.served() == certfiles.load_lineage(lineage).chain_der[0]
    assert certfiles.load_combined(w.postfix.chain_file).spki_sha256 == second[6:]

    # 3. renewal with the SAME key and only "3 1 1": nothing to publish or wait for; the hook's
    #    apply swaps right away
    before = certfiles.load_lineage(lineage).fingerprint
    r = w.certbot.renew(reuse_key=True)
    assert r.returncode == 0 and "reported error" not in r.stderr, r.stderr
    after = certfiles.load_lineage(lineage)
    assert after.fingerprint != before and f"3 1 1 {after.spki_sha256}" == second
    hook_lines = hook_log.read_text().splitlines()
    assert len(hook_lines) == 2 and "rc=0 done" in hook_lines[1], hook_lines
    pub = w.check("after the reuse-key renewal")
    assert all(rrs == {second} for rrs in pub.values())
    assert w.postfix.served() == after.chain_der[0]  # already swapped, no wait
    rc, out = w.tlsarotate("apply")
    assert rc == 0, out
