"""The end-to-end harness shared by the ACME tests: pebble (module fixture), and a AcmeWorld holding
a BIND pair, certbot and a private Postfix, with the DANE invariant as an oracle.

:meth:`AcmeWorld.check` asserts that what Postfix serves verifies -- with ``openssl s_client
-starttls smtp -dane_tlsa_rrdata`` as an independent DANE verifier -- against what EVERY
authoritative server publishes now, and that its ``3 1 1`` record is in every RRset a cache may
still hold (seen within the last TTL). ``E2E_SHOW=1 pytest -s`` prints every apply's output.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.rdatatype
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.acme_servers import (
    Certbot,
    Postfix,
    served_leaf,
)
from tests.support.acme_servers import (
    pebble as pebble,  # re-exported: the end-to-end tests import the fixture from here
)
from tests.support.helpers import cli_env, run_cli
from tests.support.servers import BindServers, query
from tests.support.tls_servers import openssl_dane

OWNER = "_25._tcp.mx.example.test."
NAME = "mx.example.test"


def spki_record(der_or_spki: bytes, *, is_cert: bool = True) -> str:
    """``3 1 1 <hex>`` for a DER certificate (or a DER SubjectPublicKeyInfo)."""
    spki = der_or_spki
    if is_cert:
        spki = (
            x509.load_der_x509_certificate(der_or_spki)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return f"3 1 1 {hashlib.sha256(spki).hexdigest()}"


@dataclass
class AcmeWorld:
    bind: BindServers
    certbot: Certbot
    postfix: Postfix
    config: Path
    ttl: int
    lineage: Path | None = None
    hook_log: Path | None = None
    history: list[tuple[float, dict[str, frozenset[str]]]] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m tlsarotate ARGS`` of this checkout, as a real subprocess (the config
        from ``TLSAROTATE_CONFIG``); never a traceback."""
        r = run_cli(*args, env=cli_env(TLSAROTATE_CONFIG=str(self.config)), timeout=120)
        assert "Traceback" not in r.stderr, r.stderr
        return r

    def tlsarotate(self, *args: str) -> tuple[int, str]:
        r = self.run(*args)
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
        want = spki_record(leaf)
        for t, snap in self.history:
            if now - t > self.ttl + 1:
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
            r = openssl_dane("127.0.0.1", self.postfix.port, NAME, sorted(rrs))
            assert r.ok, (
                f"{phase}: openssl rejects Postfix against {server} {sorted(rrs)}:\n{r.output}"
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
            if os.environ.get("E2E_SHOW"):
                print(f"--- {phase} apply -> {rc}\n{out}")
            assert rc in (0, 2), out
            codes.append(rc)
            self.check(f"{phase} (after apply #{len(codes)})", bootstrap)
            if rc == 0:
                return codes
            assert time.monotonic() < deadline, f"{phase}: not idle after {limit}s: {out}"
            time.sleep(0.3)


# The config head both end-to-end tests share (rfc2136 to the BIND pair, both servers observed);
# each test appends its ``certificate:`` block. Fields: state, port, keyfile, name, ttl.
CONFIG_HEAD = """\
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
    hosts: [{name}]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1"]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
"""
