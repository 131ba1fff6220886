"""The zone-file provider on a real NSD serving a pre-signed zone (tests/support/nsd.py): the
provider edits the unsigned master file, ``sign`` re-signs it with ``dnssec-signzone`` into the
file NSD loads, ``reload`` runs ``nsd-control reload ZONE``. Every check of what is served goes
through the DNS observer, RRSIGs validated against the zone's DNSKEY."""

# ruff: noqa: F811
from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import dns.name
import pytest

from tests.support.helpers import assert_one_line, rd
from tests.support.nsd import NsdServer, nsd  # noqa: F401
from tests.support.recorder import Recorder
from tests.support.servers import wait_until
from tlsarotate import certfiles, config, phases, pki, records
from tlsarotate.authoritative import DnsObserver
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.engine import Engine, make_providers
from tlsarotate.errors import ProviderError
from tlsarotate.observation import Observation
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.zonefile import ZoneFileProvider
from tlsarotate.runner import run_command
from tlsarotate.stores.file import FileStateStore

ZONE = dns.name.from_text("example.test.")
A = dns.name.from_text("_25._tcp.mx.example.test.")


def observe(srv: NsdServer, owners: Sequence[dns.name.Name] = (A,)) -> Observation:
    return DnsObserver(srv.nameservers, timeout=2).observe(ZONE, list(owners))


def serves_signed(srv: NsdServer, want: dict[dns.name.Name, TlsaRRset | None]) -> bool:
    obs = observe(srv, list(want))
    return obs.lagging(want, require_signed=True) == [] and all(
        obs.servers[0].signed[o] for o in want
    )


def provider(srv: NsdServer, tmp: Path, **opts: object) -> ZoneFileProvider:
    return ZoneFileProvider("nsd", srv.provider_options(**opts), ProviderContext(base_dir=tmp))


def test_a_write_is_served_signed_by_nsd(nsd: NsdServer, tmp_path: Path) -> None:
    prov = provider(nsd, tmp_path)
    serial = nsd.serial()
    new = TlsaRRset.of(300, [rd(1), rd(2)])
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, new),)))
    wait_until(lambda: serves_signed(nsd, {A: new}), 10, "nsd to serve the new RRset signed")
    assert nsd.serial() > serial  # the provider's serial, kept by dnssec-signzone -N keep
    # and removed again: the denial of existence (NSEC) is signed too
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, new, None),)))
    wait_until(lambda: serves_signed(nsd, {A: None}), 10, "nsd to serve its absence signed")


def test_without_sign_nsd_keeps_serving_the_old_signed_file(nsd: NsdServer, tmp_path: Path) -> None:
    """The reason ``sign`` exists: NSD loads the signed file; reloading after editing only the
    master file changes nothing that is served."""
    prov = provider(nsd, tmp_path, sign=None)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    time.sleep(1)
    assert serves_signed(nsd, {A: None})
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}


def test_a_failing_sign_restores_the_file_and_nothing_is_served(
    nsd: NsdServer, tmp_path: Path
) -> None:
    argv = nsd.sign_argv
    argv[argv.index("-K") + 1] = str(tmp_path / "no-keys-here")
    prov = provider(nsd, tmp_path, sign=argv)
    before, signed = nsd.zone_file.read_text(), nsd.signed_file.read_text()
    with pytest.raises(ProviderError) as ei:
        prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert_one_line(ei.value, "sign command", "failed", "the previous zone file was restored")
    assert nsd.zone_file.read_text() == before
    assert nsd.signed_file.read_text() == signed
    subprocess.run(nsd.reload_argv, check=True, capture_output=True)
    time.sleep(0.5)
    assert serves_signed(nsd, {A: None})


def test_a_failing_reload_restores_and_re_signs_the_file(nsd: NsdServer, tmp_path: Path) -> None:
    bad = nsd.reload_argv
    bad[bad.index("-c") + 1] = str(tmp_path / "missing.conf")
    prov = provider(nsd, tmp_path, reload=bad)
    before = nsd.zone_file.read_text()
    with pytest.raises(ProviderError) as ei:
        prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert_one_line(
        ei.value, "reload command", "the previous zone file was restored and signed again"
    )
    assert nsd.zone_file.read_text() == before
    assert "TLSA" not in nsd.signed_file.read_text()  # signed again from the previous file
    subprocess.run(nsd.reload_argv, check=True, capture_output=True)  # a restart, later
    time.sleep(0.5)
    assert serves_signed(nsd, {A: None})


class Killed(BaseException):
    """The process dies (SIGKILL) at this point."""


def test_a_run_killed_before_signing_is_finished_by_the_next(
    nsd: NsdServer, tmp_path: Path
) -> None:
    def dies_at_sign(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if "dnssec-signzone" in argv[0]:
            raise Killed
        return run_command(argv)

    new = TlsaRRset.of(300, [rd(3)])
    opts = nsd.provider_options()
    dying = ZoneFileProvider("nsd", opts, ProviderContext(base_dir=tmp_path, runner=dies_at_sign))
    with pytest.raises(Killed):
        dying.apply(ZoneChange(ZONE, (OwnerChange(A, None, new),)))
    assert serves_signed(nsd, {A: None})  # written, never signed nor reloaded
    done = provider(nsd, tmp_path).recover(ZONE)
    assert done is not None and "dnssec-signzone" in done and "nsd-control" in done
    wait_until(lambda: serves_signed(nsd, {A: new}), 10, "nsd to serve it after recovery")
    assert provider(nsd, tmp_path).recover(ZONE) is None  # once


CONFIG = """
state_dir: state
safety_margin: 0
providers:
  nsd:
    type: zonefile
    path: {path}
    sign: {sign}
    reload: {reload}
services:
  - name: mail
    zone: example.test.
    provider: nsd
    hosts: [mx.example.test]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1"]
    nameservers: ["127.0.0.1:{port}"]
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{cert: next/fullchain.pem, key: next/privkey.pem}}
      reload: [reload-mail-service]
"""


def write_pair(d: Path, leaf: pki.Issued, ca: pki.Issued) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (d / "privkey.pem").write_bytes(leaf.key_pem)


def test_full_rollover_on_nsd(nsd: NsdServer, tmp_path: Path) -> None:
    ttl = 2
    ca = pki.make_ca()
    first = pki.make_leaf(ca, ["mx.example.test"])
    write_pair(tmp_path / "deployed", first, ca)
    write_pair(tmp_path / "next", first, ca)
    (tmp_path / "config.yaml").write_text(
        CONFIG.format(
            path=nsd.zone_file,
            sign="[" + ", ".join(nsd.sign_argv) + "]",
            reload="[" + ", ".join(nsd.reload_argv) + "]",
            ttl=ttl,
            port=nsd.port,
        )
    )
    cfg = config.load(tmp_path / "config.yaml")
    swaps: list[float] = []

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        swaps.append(time.time())
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def engine() -> Engine:
        providers = make_providers(cfg, ProviderContext(base_dir=tmp_path))
        return Engine(cfg, FileStateStore(cfg.state_dir), providers, runner=runner)

    plans = engine().run(cfg.services, wait=True, deadline=time.time() + 60)
    assert [p.phase for p in plans] == [phases.IDLE]
    svc = cfg.services[0]
    old = certfiles.load_pair(
        tmp_path / "deployed/fullchain.pem", tmp_path / "deployed/privkey.pem"
    )
    write_pair(tmp_path / "next", pki.make_leaf(ca, ["mx.example.test"]), ca)
    nxt = certfiles.load_pair(tmp_path / "next/fullchain.pem", tmp_path / "next/privkey.pem")
    rec = Recorder([nsd.address], svc.owners)
    rec.start()
    try:
        seen: list[str] = []
        e = engine()
        e.on_plan = lambda p: seen.append(p.phase)
        plans = e.run(cfg.services, wait=True, deadline=time.time() + 120)
        time.sleep(0.3)
    finally:
        rec.halt.set()
        rec.join()
    assert [p.phase for p in plans] == [phases.IDLE]
    assert phases.WAIT_TTL in seen and phases.SWAP in seen, seen
    assert len(swaps) == 1
    swap_t = swaps[0]
    want = {records.to_text(r) for r in records.build_all(nxt, svc.params)}
    assert rec.samples[-1].texts == want
    for s in rec.samples:
        if s.texts:
            served = old if s.t < swap_t else nxt
            assert records.accepts(map(records.from_text, s.texts), served.chain_der), s
    k = next(i for i, s in enumerate(rec.samples) if want <= s.texts)
    assert k > 0 and swap_t - rec.samples[k - 1].t >= ttl
    assert serves_signed(
        nsd, {o: TlsaRRset.of(ttl, [records.from_text(t) for t in want]) for o in svc.owners}
    )
