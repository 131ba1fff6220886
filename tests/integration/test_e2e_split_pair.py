"""Separate certificate and key files end to end, real parts only: a private Postfix reading
``smtpd_tls_cert_file`` + ``smtpd_tls_key_file`` at tlsarotate's ``deployed: {cert, key}``
paths, tlsarotate (a subprocess of this checkout, ``apply --wait``) publishing through RFC 2136
to a BIND pair (signed zone, NOTIFY to a secondary), the post-swap ``verify:`` probe, and
``openssl s_client -starttls smtp -dane_tlsa_rrdata`` as the independent DANE oracle, polled
the whole time the rollover runs.

What an operator of the README's "Point the server at the deployed copy" gets: the first swap
turns the two regular files into links into ``<keydir>/.tlsarotate/<keyname>/<N>/`` with
``current -> N``; Postfix serves the new certificate after the reload through those links; the
key keeps ``root:ssl-cert 0640``, the certificate its owner and mode; a second rollover switches
``current`` again and prunes what is older than the version before. Both with the certificate
beside the key and in another directory.
"""

# ruff: noqa: F811
from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.rdatatype
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.acme_servers import MAIN_CF, MASTER_CF, Postfix, require, served_leaf
from tests.support.e2e_world import CONFIG_HEAD, NAME, OWNER, spki_record
from tests.support.helpers import ROOT, cli_env
from tests.support.servers import BindServers, bind, bind_servers, free_port, query  # noqa: F401
from tests.support.tls_servers import openssl_dane
from tlsarotate import pki

pytestmark = [pytest.mark.servers, pytest.mark.slow]

TTL = 2

CONFIG = (
    CONFIG_HEAD
    + """\
    certificate:
      deployed: {{cert: {cert}, key: {key}}}
{next}      reload: {reload}
      verify: {{starttls: smtp, host: 127.0.0.1, port: {pfport}, timeout: 5}}
"""
)
NEXT = "      next: {{cert: {dir}/fullchain.pem, key: {dir}/privkey.pem}}\n"


def _ssl_cert_gid() -> int:
    try:
        return grp.getgrnam("ssl-cert").gr_gid
    except KeyError:
        pytest.fail("group ssl-cert missing: apt-get install ssl-cert")


@dataclass
class Split:
    bind: BindServers
    pf: Postfix
    tmp: Path
    cert: Path  # deployed: cert (what smtpd_tls_cert_file names)
    key: Path  # deployed: key (what smtpd_tls_key_file names)
    ca: pki.Issued
    history: list[tuple[float, dict[str, frozenset[str]]]] = field(default_factory=list)
    checks: int = 0

    @property
    def config(self) -> Path:
        return self.tmp / "tlsarotate.yaml"

    @property
    def store(self) -> Path:
        return self.key.parent / ".tlsarotate" / self.key.name

    def write_config(self, next_dir: Path | None, reload: str | None = None) -> None:
        self.config.write_text(
            CONFIG.format(
                state=self.tmp / "state",
                port=self.bind.port,
                keyfile=self.bind.key_file,
                name=NAME,
                ttl=TTL,
                cert=self.cert,
                key=self.key,
                next=NEXT.format(dir=next_dir) if next_dir else "",
                reload=reload or f"[postfix, -c, {self.pf.dir}, reload]",
                pfport=self.pf.port,
            )
        )

    def next_pair(self, name: str) -> tuple[Path, pki.Issued]:
        """A renewal with a new key, written where an ACME client would (not what Postfix reads)."""
        leaf = pki.make_leaf(self.ca, [NAME])
        d = self.tmp / name
        d.mkdir(mode=0o700)
        (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, self.ca))
        (d / "privkey.pem").write_bytes(leaf.key_pem)
        (d / "privkey.pem").chmod(0o600)
        return d, leaf

    def published(self) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        for addr, port in self.bind.addresses:
            msg = query(addr, port, OWNER, "TLSA", dnssec=False)
            texts = {
                " ".join(rd.to_text().lower().split())
                for rrset in msg.answer
                if rrset.rdtype == dns.rdatatype.TLSA
                for rd in rrset
            }
            out[f"{addr}#{port}"] = frozenset(texts)
        return out

    def check(self, phase: str, bootstrap: bool = False) -> bytes:
        """The DANE invariant: what Postfix serves now verifies (openssl) against every server's
        RRset, and its 3 1 1 is in every RRset seen within the last TTL (a cache may hold it).
        Returns the served leaf (DER)."""
        pub = self.published()
        self.history.append((time.monotonic(), pub))  # taken after the answers arrived
        leaf = served_leaf("127.0.0.1", self.pf.port)
        now = time.monotonic()  # after: the leaf was served at this moment or before
        assert leaf is not None, f"{phase}: Postfix does not offer STARTTLS{_log_tail(self.pf)}"
        want = spki_record(leaf)
        for t, snap in self.history:
            if now - t > TTL:  # safety_margin 0: a cache holds an RRset for its TTL
                continue
            for server, rrs in snap.items():
                if rrs or not bootstrap:
                    assert want in rrs, (
                        f"{phase}: {want[:24]}… not in {server}'s {sorted(rrs)} "
                        f"seen {now - t:.2f}s ago"
                    )
        for server, rrs in pub.items():
            if rrs or not bootstrap:
                r = openssl_dane("127.0.0.1", self.pf.port, NAME, sorted(rrs))
                assert r.ok, f"{phase}: openssl rejects Postfix against {server}:\n{r.output}"
        self.checks += 1
        return leaf

    def apply_wait(self, phase: str, bootstrap: bool = False, expect: int = 0) -> str:
        """``tlsarotate apply --wait`` as a subprocess, checking DANE all the while it runs;
        ``expect``: its exit status (-9: killed by SIGKILL)."""
        env = cli_env(TLSAROTATE_CONFIG=str(self.config))
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tlsarotate", "apply", "--wait", "--lock-timeout", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 120
        try:
            while proc.poll() is None:
                assert time.monotonic() < deadline, f"{phase}: apply --wait still running"
                self.check(f"{phase} (while apply --wait runs)", bootstrap)
                time.sleep(0.2)
            out, err = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert "Traceback" not in err, err
        assert proc.returncode == expect, (
            f"{phase}: apply --wait exited {proc.returncode}\n{out}{err}"
        )
        self.check(f"{phase} (after apply --wait)", bootstrap)
        return out + err


def _log_tail(pf: Postfix) -> str:
    try:
        return "\n" + "\n".join(pf.log.read_text().splitlines()[-20:])
    except FileNotFoundError:
        return ""


def _meta(p: Path) -> tuple[int, int, int]:
    st = os.stat(p)  # through the links: what Postfix opens
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _as_nobody_can_read(p: Path) -> bool:
    r = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(p)],
        capture_output=True,
    )
    return r.returncode == 0


@pytest.fixture(params=["same-dir", "split-dirs"])
def split(request: pytest.FixtureRequest, bind: BindServers) -> Iterator[Split]:
    """Postfix reading a separate cert and key. ``same-dir``: both in ``tls/`` (0750
    root:ssl-cert); ``split-dirs``: the certificate in ``certs/`` (0755), the key in
    ``private/`` (0710 root:ssl-cert, as Debian's /etc/ssl/private). The key is root:ssl-cert
    0640 in both, the certificate root:root 0644."""
    require("postfix", "apt-get install postfix (preseed main_mailer_type)")
    gid = _ssl_cert_gid()
    # not under pytest's tmp_path: the postfix user cannot traverse that 0700 directory
    d = Path(tempfile.mkdtemp(prefix="tlsarotate-split-")).resolve()
    d.chmod(0o755)
    pf: Postfix | None = None
    try:
        for sub in ("queue", "data", "log"):
            (d / sub).mkdir()
        shutil.chown(d / "data", "postfix")
        if request.param == "same-dir":
            kdir = cdir = d / "tls"
            kdir.mkdir()
            os.chown(kdir, 0, gid)
            kdir.chmod(0o750)
        else:
            cdir, kdir = d / "certs", d / "private"
            cdir.mkdir()
            cdir.chmod(0o755)
            kdir.mkdir()
            os.chown(kdir, 0, gid)
            kdir.chmod(0o710)
        cert, key = cdir / "mx.crt", kdir / "mx.key"
        ca = pki.make_ca()
        first = pki.make_leaf(ca, [NAME])
        cert.write_bytes(pki.fullchain_pem(first, ca))
        cert.chmod(0o644)
        key.write_bytes(first.key_pem)
        os.chown(key, 0, gid)
        key.chmod(0o640)
        port = free_port()
        pf = Postfix(d, port, cert, NAME)
        main = MAIN_CF.format(dir=d, hostname=NAME, chain=cert).replace(
            f"smtpd_tls_chain_files = {cert}\n",
            f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n",
        )
        assert "smtpd_tls_key_file" in main
        (d / "main.cf").write_text(main)
        (d / "master.cf").write_text(MASTER_CF.format(port=port))
        pf.start()
        tmp = d / "work"
        tmp.mkdir(mode=0o700)
        yield Split(bind, pf, tmp, cert, key, ca)
    finally:
        try:
            if pf is not None:
                pf.stop()
        finally:
            shutil.rmtree(d, ignore_errors=True)


def test_split_cert_and_key_roll_over_through_the_store_and_postfix_follows(
    split: Split,
) -> None:
    s = split
    gid = _ssl_cert_gid()
    cert_meta, key_meta = _meta(s.cert), _meta(s.key)
    assert key_meta == (0, gid, 0o640) and cert_meta == (0, 0, 0o644)
    cert_dir_meta, key_dir_meta = _meta(s.cert.parent), _meta(s.key.parent)
    first = s.pf.served()
    assert first is not None

    # bootstrap: the deployed certificate's records, nothing to swap
    s.write_config(None)
    s.apply_wait("bootstrap", bootstrap=True)
    assert not s.cert.is_symlink() and not s.key.is_symlink()  # nothing swapped, nothing moved
    assert all(rrs == {spki_record(first)} for rrs in s.published().values())
    time.sleep(TTL + 0.5)

    # the first rollover: regular files become links into the store; Postfix follows
    next_dir, second = s.next_pair("next1")
    s.write_config(next_dir)
    out = s.apply_wait("first rollover")
    assert "certificate 'default' swapped" in out, out
    served = s.pf.served()
    assert served == second.cert.public_bytes(Encoding.DER), out
    assert all(rrs == {spki_record(served)} for rrs in s.published().values())

    assert os.readlink(s.key) == ".tlsarotate/mx.key/current/key.pem"
    if s.cert.parent == s.key.parent:
        assert os.readlink(s.cert) == ".tlsarotate/mx.key/current/cert.pem"
    else:
        assert os.readlink(s.cert) == str(s.store / "current" / "cert.pem")
    assert os.readlink(s.store / "current") == "2"
    assert sorted(os.listdir(s.store)) == ["1", "2", "current"]
    assert (s.store / "1" / "key.pem").read_bytes() != second.key_pem
    assert (s.store / "2" / "key.pem").read_bytes() == second.key_pem
    # owner, group and mode: of the files replaced; the store's directories: of the key's
    assert _meta(s.key) == key_meta and _meta(s.cert) == cert_meta
    for v in ("1", "2"):
        assert _meta(s.store / v / "key.pem") == key_meta
        assert _meta(s.store / v / "cert.pem") == cert_meta
    for sub in (s.store.parent, s.store, s.store / "1", s.store / "2"):
        assert _meta(sub) == key_dir_meta, sub
    assert _meta(s.cert.parent) == cert_dir_meta and _meta(s.key.parent) == key_dir_meta
    assert not _as_nobody_can_read(s.key)  # the key is still not readable by others
    log = s.pf.log.read_text()
    assert "cannot load" not in log and "disabling TLS support" not in log, _log_tail(s.pf)
    leftovers = [p for p in s.tmp.parent.rglob("*.tmp")] + list(s.key.parent.glob("*.prev"))
    assert not leftovers, leftovers
    time.sleep(TTL + 0.5)

    # the second rollover: only `current` switches (2 -> 3); version 1 is pruned
    next_dir, third = s.next_pair("next2")
    s.write_config(next_dir)
    out = s.apply_wait("second rollover")
    assert "certificate 'default' swapped" in out, out
    served = s.pf.served()
    assert served == third.cert.public_bytes(Encoding.DER), out
    assert os.readlink(s.store / "current") == "3"
    assert sorted(os.listdir(s.store)) == ["2", "3", "current"]
    assert (s.store / "3" / "key.pem").read_bytes() == third.key_pem
    assert _meta(s.key) == key_meta and _meta(s.cert) == cert_meta
    assert all(rrs == {spki_record(served)} for rrs in s.published().values())
    assert s.checks > 6  # DANE was verified while each rollover ran, not only at the ends


def test_killed_at_the_reload_the_next_apply_finishes_the_swap(split: Split) -> None:
    """``apply --wait`` SIGKILLed right after the switch, before Postfix was reloaded (the
    reload command kills it): the new pair is in the store and ``current`` points at it, the
    journal is in the state, Postfix still serves the old certificate (both records are
    published, so DANE holds). The next ``apply --wait`` finishes: reload, verify, retire."""
    s = split
    first = s.pf.served()
    assert first is not None
    s.write_config(None)
    s.apply_wait("bootstrap", bootstrap=True)
    time.sleep(TTL + 0.5)

    next_dir, second = s.next_pair("next1")
    marker = s.tmp / "killed-once"
    script = (
        f"if [ -e {marker} ]; then exec postfix -c {s.pf.dir} reload; fi; "
        f"touch {marker}; kill -9 $PPID"
    )
    s.write_config(next_dir, reload=json.dumps(["sh", "-c", script]))
    s.apply_wait("killed at the reload", expect=-9)
    assert marker.exists()
    assert os.readlink(s.store / "current") == "2"
    assert (s.store / "2" / "key.pem").read_bytes() == second.key_pem
    assert s.pf.served() == first  # not reloaded
    journal = json.loads((s.tmp / "state" / "mx.json").read_text())["swap"]
    assert journal is not None and journal["installed"] == str(s.store / "2"), journal
    pub = s.published()
    assert all(rrs == {spki_record(first), spki_record(_der(second))} for rrs in pub.values())

    out = s.apply_wait("the run after the kill")
    assert "recovering the swap of 'default'" in out, out
    assert s.pf.served() == _der(second), out
    assert json.loads((s.tmp / "state" / "mx.json").read_text())["swap"] is None
    assert all(rrs == {spki_record(_der(second))} for rrs in s.published().values())
    assert sorted(os.listdir(s.store)) == ["1", "2", "current"]
    assert _meta(s.key)[1:] == (_ssl_cert_gid(), 0o640)


def _der(issued: pki.Issued) -> bytes:
    return issued.cert.public_bytes(Encoding.DER)
