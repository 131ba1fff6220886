"""The first issuance end to end, with real parts only: Postfix is configured for the deployed
file, which does not exist yet; the first ``certbot certonly`` against pebble runs
hooks/certbot-deploy from ``renewal-hooks/deploy/``, whose ``tlsarotate apply --lineage`` finds
nothing deployed and no TLSA records published (no DANE client relies on any), installs the
certificate, reloads Postfix and publishes its record through RFC 2136 to the BIND pair. The
hook exits 0 (certbot reports no hook error); the timer's runs end idle, and openssl's DANE
verifier accepts what Postfix serves against every server's RRset."""

# ruff: noqa: F811
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support.acme_servers import HOOKS, ROOT, Certbot, Pebble, postfix_running
from tests.support.e2e_world import CONFIG_HEAD, AcmeWorld, pebble, spki_record  # noqa: F401
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles, pki

pytestmark = [pytest.mark.servers, pytest.mark.slow]

TTL = 2
NAME = "mx.example.test"

CONFIG = (
    CONFIG_HEAD
    + """\
    certificate:
      deployed: {{combined: {chain}}}
      next: {{lineage: {lineage}}}
      reload: [postfix, -c, {pfdir}, reload]
"""
)


def test_first_certonly_through_the_deploy_hook(
    bind: BindServers, pebble: Pebble, tmp_path: Path
) -> None:
    certbot = Certbot(pebble, tmp_path / "certbot")
    # Postfix starts with a throwaway certificate, then its chain file goes: main.cf names the
    # path tlsarotate deploys to, and nothing is there before the first issuance
    ca = pki.make_ca("snakeoil")
    snakeoil = pki.make_leaf(ca, [NAME])
    with postfix_running(snakeoil.key_pem, pki.fullchain_pem(snakeoil, ca)) as pf:
        pf.chain_file.unlink()
        lineage = certbot.lineage(NAME)
        cfg = tmp_path / "tlsarotate.yaml"
        cfg.write_text(
            CONFIG.format(
                state=tmp_path / "state",
                port=bind.port,
                keyfile=bind.key_file,
                name=NAME,
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
        # the hook installed as hooks/README.md says, BEFORE the first certonly
        hooks_dir = certbot.config_dir / "renewal-hooks" / "deploy"
        hooks_dir.mkdir(parents=True)
        shutil.copy(HOOKS / "certbot-deploy", hooks_dir / "tlsarotate")
        hook_log = tmp_path / "hook.log"
        certbot.env.update(
            PYTHONPATH=str(ROOT),
            TLSAROTATE_BIN=str(wrapper),
            TLSAROTATE_CONFIG=str(cfg),
            TLSAROTATE_HOOK_LOG=str(hook_log),
        )
        w = AcmeWorld(bind, certbot, pf, cfg, TTL, lineage, hook_log)
        assert all(rrs == frozenset() for rrs in w.published().values())

        r = certbot.run(
            "certonly",
            "--server",
            pebble.url,
            "--agree-tos",
            "--register-unsafely-without-email",
            "--manual",
            "--preferred-challenges",
            "http",
            "--manual-auth-hook",
            "/bin/true",
            "--key-type",
            "ecdsa",
            "-d",
            NAME,
            "--cert-name",
            NAME,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "reported error" not in r.stderr and "error output" not in r.stderr, r.stderr
        hook_lines = hook_log.read_text().splitlines()
        assert len(hook_lines) == 1, hook_lines
        assert "rc=0 done" in hook_lines[0] or "rc=2 waiting" in hook_lines[0], hook_lines

        # installed at the deployed path, Postfix reloaded and serving it
        issued = certfiles.load_lineage(lineage)
        assert certfiles.load_combined(pf.chain_file).same_as(issued)
        assert pf.served() == issued.chain_der[0]
        # the timer's runs finish (propagation to the secondary) and end idle
        w.drive("first issuance", bootstrap=True)
        want = spki_record(issued.chain_der[0])
        assert all(rrs == {want} for rrs in w.published().values()), w.published()
        w.check("after the first issuance")  # openssl DANE-verifies against every server
        rc, out = w.tlsarotate("plan")
        assert rc == 0 and "idle" in out, out
