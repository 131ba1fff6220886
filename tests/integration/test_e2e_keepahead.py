"""Keep-ahead next keys end to end, real parts only: pebble + ``certbot certonly --csr``,
tlsarotate (a subprocess of this checkout) publishing through RFC 2136 to a BIND pair (signed
zone, NOTIFY to a secondary), a private Postfix reading ``smtpd_tls_chain_files``, the
post-swap ``verify:`` probe against that Postfix, and ``openssl s_client -starttls smtp
-dane_tlsa_rrdata`` as the independent DANE oracle at every phase (tests/support/e2e_world.py).

The renewal follows hooks/README.md ("Keep-ahead keys with certbot certonly --csr"): the next
certificate lives in a directory reached through one symlink (``next/mx``), holding a COPY of
the next key taken when the CSR was made plus certbot's ``fullchain.pem``; switching the
symlink changes certificate and key in one rename.
"""

# ruff: noqa: F811
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.acme_servers import Certbot, Pebble, postfix_running, served_leaf
from tests.support.e2e_world import CONFIG_HEAD, NAME, AcmeWorld, pebble  # noqa: F401
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles, nextkey

pytestmark = [pytest.mark.servers, pytest.mark.slow]

TTL = 2

CONFIG = (
    CONFIG_HEAD
    + """\
    certificate:
      deployed: {{combined: {chain}}}
      next: {{cert: {next}/fullchain.pem, key: {next}/privkey.pem}}
      next_key: {{path: {next_key}, type: ecdsa-p256}}
      reload: [postfix, -c, {pfdir}, reload]
      verify: {{starttls: smtp, host: 127.0.0.1, port: {pfport}, timeout: 5}}
"""
)


@dataclass
class KeepAhead:
    w: AcmeWorld
    tmp: Path
    next_dir: Path  # the symlink the config's next cert/key paths go through
    next_key: Path
    state: Path

    def key_record(self, path: Path) -> str:
        return f"3 1 1 {certfiles.load(path).spki_sha256}"

    def state_doc(self) -> dict[str, object]:
        doc: dict[str, object] = json.loads((self.state / "mx.json").read_text())
        return doc

    def wait_out(self) -> None:
        """Sleep until the published RRset has been visible on every server for its TTL (the
        planner's safe point, safety_margin 0), as a timer run would find it long after."""
        st = self.state_doc()
        since, hold = st["visible_since"], st["hold_ttl"]
        assert isinstance(since, float) and isinstance(hold, int) and hold >= TTL, st
        delay = since + hold - time.time() + 0.2
        if delay > 0:
            time.sleep(delay)

    def switch_next(self, key: bytes, fullchain: bytes | None = None, csr: bool = False) -> Path:
        """The README recipe: a fresh directory next to ``next/mx`` with a copy of the key
        (0600) and, with ``csr``, the certificate ``certbot certonly --csr`` issues for a CSR
        signed by that copy; then one atomic symlink switch. Returns the new directory."""
        parent = self.next_dir.parent
        new = Path(tempfile.mkdtemp(prefix=".mx.", dir=parent))
        (new / "privkey.pem").write_bytes(key)
        (new / "privkey.pem").chmod(0o600)
        if csr:
            (new / "csr.pem").write_bytes(nextkey.csr_for(new / "privkey.pem", [NAME]))
            self.w.certbot.issue_csr(new / "csr.pem", [NAME], new)
        else:
            assert fullchain is not None
            (new / "fullchain.pem").write_bytes(fullchain)
        tmp_link = parent / "mx.switch"
        os.symlink(new.name, tmp_link)
        os.replace(tmp_link, self.next_dir)  # mv -T: one rename switches cert and key together
        return new


@pytest.fixture
def keepahead(bind: BindServers, pebble: Pebble, tmp_path: Path) -> Iterator[KeepAhead]:
    certbot = Certbot(pebble, tmp_path / "certbot")
    # the first certificate: an ordinary certbot lineage, deployed by hand
    lineage = certbot.issue([NAME])
    key = (lineage / "privkey.pem").read_bytes()
    full = (lineage / "fullchain.pem").read_bytes()
    with postfix_running(key, full) as pf:
        nxt = tmp_path / "next"
        nxt.mkdir(mode=0o700)
        cfg = tmp_path / "tlsarotate.yaml"
        next_key = tmp_path / "keys" / "mx.next.key"  # tlsarotate creates it on the first apply
        cfg.write_text(
            CONFIG.format(
                state=tmp_path / "state",
                port=bind.port,
                keyfile=bind.key_file,
                name=NAME,
                ttl=TTL,
                chain=pf.chain_file,
                next=nxt / "mx",
                next_key=next_key,
                pfdir=pf.dir,
                pfport=pf.port,
            )
        )
        ka = KeepAhead(
            AcmeWorld(bind, certbot, pf, cfg, TTL),
            tmp_path,
            nxt / "mx",
            next_key,
            tmp_path / "state",
        )
        # until the first keep-ahead renewal, "next" is the deployed certificate itself
        ka.switch_next(key, full)
        yield ka


def _plan_lines(out: str) -> list[str]:
    """The plan headlines ("mx: PHASE - summary") of an apply's text output, in order."""
    return [ln for ln in out.splitlines() if ln.startswith("mx: ")]


def _diff(text: str) -> list[str]:
    """The record lines an apply printed for its writes ("+ owner ttl IN TLSA ...", "- ...")."""
    return [ln.strip() for ln in text.splitlines() if ln.startswith(("  + ", "  - "))]


def _bootstrap(ka: KeepAhead) -> tuple[str, str]:
    """First applies until idle: the deployed key's and the generated next key's records are
    published and visible everywhere; then their TTL runs out. Returns (deployed, next) records."""
    w = ka.w
    assert not ka.next_key.exists()
    codes = w.drive("bootstrap", bootstrap=True)
    assert codes[-1] == 0, codes
    w.history.clear()  # the empty RRsets of before the bootstrap are no DANE to break
    assert stat.S_IMODE(ka.next_key.stat().st_mode) == 0o600
    deployed = f"3 1 1 {certfiles.load_combined(w.postfix.chain_file).spki_sha256}"
    ahead = ka.key_record(ka.next_key)
    assert ahead != deployed
    pub = w.check("bootstrapped")
    assert all(rrs == {deployed, ahead} for rrs in pub.values()), pub
    ka.wait_out()
    return deployed, ahead


def test_keep_ahead_renewal_swaps_in_the_first_apply_without_waiting(
    keepahead: KeepAhead,
) -> None:
    ka, w = keepahead, keepahead.w
    first, ahead = _bootstrap(ka)
    used_spki = certfiles.load(ka.next_key).spki_sha256

    # the renewal: certbot certonly --csr for a CSR signed by (a copy of) the next key
    new = ka.switch_next(ka.next_key.read_bytes(), csr=True)
    issued = certfiles.load_pair(new / "fullchain.pem", new / "privkey.pem")
    assert f"3 1 1 {issued.spki_sha256}" == ahead  # pebble certified the keep-ahead key
    w.check("after certbot --csr, before apply")

    # the apply the renewal script runs right away: the records for the new key have been
    # visible for longer than their TTL, so its very first plan is the swap
    r = w.run("apply", "--service", "mx", "--lock-timeout", "30")
    out = r.stdout + r.stderr
    heads = _plan_lines(r.stdout)
    assert heads[0] == "mx: swap - install the next certificate (default)", out
    assert not any(" wait-ttl " in h for h in heads), out  # no TTL wait in this run at all
    swapped = out.index("==> mx: certificate 'default' swapped")
    rotated = out.index("==> mx: the next key was used; generated a fresh one")
    assert swapped < rotated
    # DNS writes of this run: none before the swap; after it, the fresh next key's record is
    # added, and -- if the secondary already serves that by the next look, which depends on
    # BIND's NOTIFY timing -- the old key's record retired in a second write
    fresh = ka.key_record(ka.next_key)
    before, after = r.stdout[:swapped], r.stdout[swapped:]
    assert not _diff(before), out
    added = [ln for ln in _diff(after) if ln.startswith("+ ")]
    removed = [ln for ln in _diff(after) if ln.startswith("- ")]
    assert len(added) == 1 and added[0].endswith(fresh), out
    assert all(ln.endswith(f"{first}    (old certificate)") for ln in removed), out
    assert out.index(fresh) > rotated
    # exit 2: a write is still propagating (and the old record may still be there to retire);
    # the deploy hook and the timer count 2 as success
    assert r.returncode == 2, out
    assert w.postfix.served() == issued.chain_der[0]
    assert certfiles.load_combined(w.postfix.chain_file).fingerprint == issued.fingerprint

    # the key rotation: the used key kept as *.used, a fresh one (0600, new SPKI) took its place
    used = ka.next_key.with_name(ka.next_key.name + ".used")
    assert certfiles.load(used).spki_sha256 == used_spki == issued.spki_sha256
    assert stat.S_IMODE(used.stat().st_mode) == 0o600
    assert stat.S_IMODE(ka.next_key.stat().st_mode) == 0o600
    assert fresh not in (first, ahead)
    pub = w.check("right after the keep-ahead swap")
    w.bind.wait_synced("example.test.")
    pub = w.check("after the keep-ahead swap, servers in sync")
    want = {ahead, fresh} if removed else {first, ahead, fresh}
    assert all(rrs == want for rrs in pub.values()), pub

    # the timer finishes: the old key's record goes once the fresh record is visible
    w.drive("retire the old key")
    pub = w.check("done")
    assert all(rrs == {ahead, fresh} for rrs in pub.values()), pub
    assert w.postfix.served() == issued.chain_der[0]
    st = ka.state_doc()
    assert st["retiring"] == [] and st["swap"] is None, st


def test_verify_rolls_back_when_postfix_reads_another_file(keepahead: KeepAhead) -> None:
    """The operator error this catches: Postfix's main.cf was changed to read another chain
    file (say, a hand-made /etc/postfix/tls/mx-2026.pem) while tlsarotate's ``deployed:`` still
    names the old one. tlsarotate's install and ``postfix reload`` both succeed, but Postfix
    keeps serving the old certificate -- which the DNS will stop vouching for once the old
    records are retired. Only the post-reload probe sees it: the swap is rolled back, apply
    exits 1 with one line, no record is retired and the next key is not rotated. Once main.cf
    is fixed, the next apply swaps."""
    ka, w = keepahead, keepahead.w
    first, ahead = _bootstrap(ka)
    pf = w.postfix
    original = pf.chain_file.read_bytes()
    main_cf = pf.dir / "main.cf"
    good_cf = main_cf.read_text()
    other = pf.dir / "chain-by-hand.pem"
    shutil.copy(pf.chain_file, other)
    other.chmod(0o600)
    main_cf.write_text(good_cf.replace(f"= {pf.chain_file}\n", f"= {other}\n"))
    assert main_cf.read_text() != good_cf
    pf.reload()
    w.check("after the operator's main.cf change")

    new = ka.switch_next(ka.next_key.read_bytes(), csr=True)
    issued = certfiles.load_pair(new / "fullchain.pem", new / "privkey.pem")
    r = w.run("apply", "--service", "mx", "--lock-timeout", "30")
    err = r.stderr.strip()
    assert r.returncode == 1, r.stdout + r.stderr
    assert len(err.splitlines()) == 1, err
    for needle in (
        "swap to the next certificate failed",
        "still serves another certificate",
        "127.0.0.1:",
        "Records were NOT retired",
    ):
        assert needle in err, err
    assert "==> mx: certificate 'default' swapped" not in r.stdout
    # rolled back: the deployed file is the old one again, Postfix serves the old certificate
    assert pf.chain_file.read_bytes() == original
    assert served_leaf("127.0.0.1", pf.port) == certfiles.load_combined(other).chain_der[0]
    # nothing retired, nothing rotated
    pub = w.check("after the rolled-back swap")
    assert all(rrs == {first, ahead} for rrs in pub.values()), pub
    assert f"3 1 1 {certfiles.load(ka.next_key).spki_sha256}" == ahead
    assert not ka.next_key.with_name(ka.next_key.name + ".used").exists()
    st = ka.state_doc()
    assert st["retiring"] == [] and st["swap"] is None, st

    # the operator points Postfix back at tlsarotate's deployed file: the swap goes through
    main_cf.write_text(good_cf)
    pf.reload()
    r = w.run("apply", "--service", "mx", "--lock-timeout", "30")
    assert r.returncode == 2 and "==> mx: certificate 'default' swapped" in r.stdout, r.stdout
    assert pf.served() == issued.chain_der[0]
    w.bind.wait_synced("example.test.")
    pub = w.check("after the fixed swap")
    fresh = ka.key_record(ka.next_key)
    assert fresh not in (first, ahead)
    assert all(ahead in rrs and fresh in rrs for rrs in pub.values()), pub
