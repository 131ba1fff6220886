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

import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.rdatatype
import pytest

from tests.acme_servers import (
    HOOKS,
    ROOT,
    Certbot,
    Pebble,
    Postfix,
    openssl_dane,
    served_leaf,
    start_pebble,
    start_postfix,
)
from tests.servers import BindServers, bind, bind_servers, query  # noqa: F401
from tlsarotate import material

pytestmark = [pytest.mark.servers, pytest.mark.slow]

OWNER = "_25._tcp.mx.example.test."
TTL = 2


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    pb = start_pebble(tmp_path_factory.mktemp("pebble"))
    try:
        yield pb
    finally:
        pb.stop()


@dataclass
class World:
    bind: BindServers
    certbot: Certbot
    postfix: Postfix
    config: Path
    lineage: Path
    hook_log: Path
    history: list[tuple[float, dict[str, frozenset[str]]]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "TLSAROTATE_CONFIG": str(self.config)}

    def tlsarotate(self, *args: str) -> tuple[int, str]:
        import subprocess

        r = subprocess.run(
            [sys.executable, "-m", "tlsarotate", *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=120,
        )
        assert "Traceback" not in r.stderr, r.stderr
        return r.returncode, r.stdout + r.stderr

    def published(self) -> dict[str, frozenset[str]]:
        """The TLSA RRset each authoritative server serves now ("3 1 1 <hex>" texts)."""
        out: dict[str, frozenset[str]] = {}
        for addr, port in self.bind.addresses:
            msg = query(addr, port, OWNER, "TLSA", dnssec=False)
            texts = {
                rd.to_text().lower()
                for rrset in msg.answer
                if rrset.rdtype == dns.rdatatype.TLSA
                for rd in rrset
            }
            # dnspython prints "3 1 1 HEX" already; normalise spacing/case
            out[f"{addr}#{port}"] = frozenset(" ".join(t.split()) for t in texts)
        return out

    def check(self, phase: str, bootstrap: bool = False) -> dict[str, frozenset[str]]:
        """The DANE invariant: what Postfix serves verifies against every server's RRset now
        and against every RRset seen within the last TTL (what a cache may still hold).
        Only while bootstrapping may an RRset be empty (no DANE yet: nothing to break)."""
        now = time.monotonic()
        pub = self.published()
        self.history.append((now, pub))
        leaf = served_leaf("127.0.0.1", self.postfix.port)
        assert leaf is not None, f"{phase}: Postfix does not offer STARTTLS"
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        spki = (
            x509.load_der_x509_certificate(leaf)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        import hashlib

        want = f"3 1 1 {hashlib.sha256(spki).hexdigest()}"
        for t, snap in self.history:
            if now - t > TTL + 1:
                continue
            for server, rrs in snap.items():
                if not rrs and bootstrap:
                    continue
                assert want in rrs, (
                    f"{phase}: served key {want[:24]}… not in {server}'s RRset {sorted(rrs)} "
                    f"seen {now - t:.1f}s ago"
                )
        for server, rrs in pub.items():
            if not rrs and bootstrap:
                continue
            r = openssl_dane(self.postfix.port, "mx.example.test", sorted(rrs))
            assert r.returncode == 0 and "Verification: OK" in r.stdout + r.stderr, (
                f"{phase}: openssl rejects Postfix against {server} {sorted(rrs)}:\n{r.stderr}"
            )
        return pub

    def drive(self, phase: str, limit: float = 90, bootstrap: bool = False) -> list[int]:
        """Run ``tlsarotate apply`` like the timer does, checking DANE before and after each
        run, until it exits 0 (idle). Returns the exit codes seen."""
        codes: list[int] = []
        deadline = time.monotonic() + limit
        while True:
            self.check(f"{phase} (before apply #{len(codes) + 1})", bootstrap)
            rc, out = self.tlsarotate("apply", "--lock-timeout", "30")
            assert rc in (0, 2), out
            codes.append(rc)
            self.check(f"{phase} (after apply #{len(codes)})", bootstrap)
            if rc == 0:
                return codes
            assert time.monotonic() < deadline, f"{phase}: not idle after {limit}s: {out}"
            time.sleep(0.3)


CONFIG = """\
state_dir: {state}
safety_margin: 0
lock_timeout: 30
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {port}
    tsig_key_file: {keyfile}
    timeout: 2
    retries: 2
services:
  - name: mx
    zone: example.test
    provider: bind
    hosts: [mx.example.test]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1"]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    certificate:
      deployed: {{combined: {chain}}}
      next: {{lineage: {lineage}}}
      reload: [postfix, -c, {pfdir}, reload]
"""


@pytest.fixture
def world(bind: BindServers, pebble: Pebble, tmp_path: Path) -> Iterator[World]:
    certbot = Certbot(pebble, tmp_path / "certbot")
    # the initial certificate, deployed by hand the first time (no hook yet)
    lineage = certbot.issue(["mx.example.test"])
    key = (lineage / "privkey.pem").read_bytes()
    full = (lineage / "fullchain.pem").read_bytes()
    pf = start_postfix(key, full)
    try:
        cfg = tmp_path / "tlsarotate.yaml"
        cfg.write_text(
            CONFIG.format(
                state=tmp_path / "state",
                port=bind.port,
                keyfile=bind.key_file,
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
        yield World(bind, certbot, pf, cfg, lineage, hook_log)
    finally:
        pf.stop()
        pf.remove()


def _rec(lineage: Path) -> str:
    return f"3 1 1 {material.load_lineage(lineage).spki_sha256}"


def test_full_rollover_then_reuse_key_fast_path(world: World) -> None:
    w = world
    # 0. bootstrap: tlsarotate publishes the deployed certificate's record
    w.drive("bootstrap", bootstrap=True)
    w.history.clear()
    first = _rec(w.lineage)
    # the old-only RRset as caches hold it right before the renewal
    assert all(p == {first} for p in w.check("before the renewal").values())

    # 1. certbot renews with a NEW key; the deploy hook publishes the new record beside the old
    #    one and returns at once (exit 2 -> success for certbot)
    r = w.certbot.renew(reuse_key=False)
    assert r.returncode == 0 and "reported error" not in r.stderr, r.stderr
    hook_lines = w.hook_log.read_text().splitlines()
    assert len(hook_lines) == 1 and "rc=2 waiting" in hook_lines[0], hook_lines
    second = _rec(w.lineage)
    assert second != first
    w.bind.wait_synced("example.test.")
    pub = w.check("after the deploy hook")
    assert all(rrs == {first, second} for rrs in pub.values()), pub
    assert w.postfix.served() == material.load(w.postfix.chain_file).chain_der[0]  # still old

    # 2. the timer finishes: wait for propagation + TTL, swap, reload, retire
    codes = w.drive("full rollover")
    assert codes[0] == 2  # it had to wait at least once
    assert all(p == {second} for p in w.published().values())
    assert w.postfix.served() == material.load_lineage(w.lineage).chain_der[0]
    assert material.load_combined(w.postfix.chain_file).spki_sha256 == second[6:]

    # 3. renewal with the SAME key and only "3 1 1": nothing to publish or wait for; the hook's
    #    apply swaps right away
    before = material.load_lineage(w.lineage).fingerprint
    r = w.certbot.renew(reuse_key=True)
    assert r.returncode == 0 and "reported error" not in r.stderr, r.stderr
    after = material.load_lineage(w.lineage)
    assert after.fingerprint != before and f"3 1 1 {after.spki_sha256}" == second
    hook_lines = w.hook_log.read_text().splitlines()
    assert len(hook_lines) == 2 and "rc=0 done" in hook_lines[1], hook_lines
    pub = w.check("after the reuse-key renewal")
    assert all(rrs == {second} for rrs in pub.values())
    assert w.postfix.served() == after.chain_der[0]  # already swapped, no wait
    rc, out = w.tlsarotate("apply")
    assert rc == 0, out
