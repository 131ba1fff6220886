"""``observe_read: axfr`` (tlsarotate/zonetransfer.py) against a real BIND primary + secondary
(TSIG, inline signing): one transfer per server and zone gives the same Observation as one
query per owner, an `apply` reads each server once per zone and look, and a server refusing
the transfer is asked per owner, with a warning."""

# ruff: noqa: F811
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.name
import dns.update
import dns.zone
import pytest

from tests.support.helpers import rrset, run_cli
from tests.support.servers import (  # noqa: F401
    SECONDARY_ADDR,
    BindServers,
    BindZone,
    bind,
    bind_servers,
)
from tlsarotate import config, pki
from tlsarotate.authoritative import DnsObserver
from tlsarotate.clock import FakeClock
from tlsarotate.engine import Engine, make_providers
from tlsarotate.observation import Observer
from tlsarotate.planner import Plan
from tlsarotate.providers.base import Provider, ProviderContext
from tlsarotate.service_observer import observer_for
from tlsarotate.stores.file import FileStateStore
from tlsarotate.zonetransfer import TransferObserver

ZONE = dns.name.from_text("example.test.")
POLICY = dns.name.from_text("policy.test.")
UNSIGNED = dns.name.from_text("unsigned.test.")


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def owners_of(zone: dns.name.Name) -> list[dns.name.Name]:
    """Present owners, an absent one (NXDOMAIN), a name with other records only (NODATA),
    an empty non-terminal, a name under the apex with nothing at all."""
    z = zone.to_text()
    return [
        *(name(f"_25._tcp.h{i}.{z}") for i in range(4)),
        name(f"_25._tcp.gone.{z}"),
        name(f"ns1.{z}"),
        name(f"_tcp.h1.{z}"),
        name(f"zzz.{z}"),
    ]


def publish(bind: BindServers, zone: dns.name.Name) -> None:
    """TLSA records at h0..h2 (h3 stays absent), served by both servers."""
    owners = owners_of(zone)[:3]

    def add(m: dns.update.UpdateMessage) -> None:
        for i, o in enumerate(owners):
            m.add(o, 300, "TLSA", f"3 1 1 {i + 1:064x}")

    r = bind.update(zone, build=add)
    assert r.rcode() == 0
    expected = {o: rrset(i + 1) for i, o in enumerate(owners)}
    done = DnsObserver(bind.nameservers, timeout=1.0)
    deadline = time.monotonic() + 20
    while done.observe(zone, list(expected)).lagging(expected, zone != UNSIGNED):
        assert time.monotonic() < deadline, "both servers to serve the records"
        time.sleep(0.1)


def transfer_observer(bind: BindServers, **kw: object) -> TransferObserver:
    key = next(iter(bind.keyring.values()))
    return TransferObserver(bind.nameservers, timeout=2.0, key=key, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", [ZONE, UNSIGNED], ids=["signed", "unsigned"])
def test_one_transfer_per_server_gives_the_same_observation(
    bind: BindServers, zone: dns.name.Name
) -> None:
    publish(bind, zone)
    owners = owners_of(zone)
    for clock in (None, FakeClock(time.time() + 400 * 86400)):  # valid, then expired RRSIGs
        queried = DnsObserver(bind.nameservers, timeout=2.0, clock=clock)
        transferred = transfer_observer(bind, clock=clock)
        want = queried.observe(zone, owners)
        got = transferred.observe(zone, owners)
        assert got == want  # every ServerAnswer field: rrsets, TTLs, signed, problems, expiry
        assert all(s.error is None for s in got.servers)
        # one AXFR per server; the empty non-terminal alone is asked by query
        assert transferred.queries == Counter({"AXFR": 2, "TLSA": 2})
        assert queried.queries["TLSA"] == 2 * len(owners)
        signed = [s.signed[o] for s in want.servers for o in owners]
        if zone == UNSIGNED:
            assert not any(signed) and want.zone_signed is False
        else:  # RRSIGs over TLSA and over the NSEC denials: valid, then expired
            assert all(signed) if clock is None else not any(signed)


def test_tampered_transfer_fails_validation(bind: BindServers) -> None:
    publish(bind, ZONE)
    obs = transfer_observer(bind)
    real = obs._transfer
    owner = owners_of(ZONE)[0]

    def tamper(address: str, port: int, zone: dns.name.Name) -> dns.zone.Zone:
        z = real(address, port, zone)
        if address == SECONDARY_ADDR:
            rds = z.find_rdataset(owner, "TLSA")
            rds.clear()  # type: ignore[no-untyped-call]
            rds.add(rrset(9).sorted()[0], 300)
        return z

    obs._transfer = tamper  # type: ignore[method-assign]
    o = obs.observe(ZONE, [owner])
    assert o.servers[0].signed[owner] is True
    assert o.servers[1].signed[owner] is False
    assert "does not validate" in (o.servers[1].sig_problem or "")


class RefusingSecondary(BindServers):
    """The secondary refuses every zone transfer (``allow-transfer { none; }``)."""

    def _write_files(self) -> None:
        super()._write_files()
        conf = self.secondary_dir / "named.conf"
        text = conf.read_text()
        assert "allow-notify { any; };" in text
        conf.write_text(text.replace("allow-notify { any; };", "allow-notify { any; }; "
                                     "allow-transfer { none; };"))  # fmt: skip


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[BindServers]:
    servers = RefusingSecondary(tmp_path / "bind", [BindZone("example.test.")], notify_delay=0)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def test_refused_transfer_falls_back_to_queries_and_says_so(
    refusing: BindServers, caplog: pytest.LogCaptureFixture
) -> None:
    publish(refusing, ZONE)
    owners = owners_of(ZONE)
    want = DnsObserver(refusing.nameservers, timeout=2.0).observe(ZONE, owners)
    obs = transfer_observer(refusing)
    calls: list[tuple[str, str]] = []
    real = obs._query

    def counted(addr: str, port: int, qname: dns.name.Name, rdtype: object) -> object:
        calls.append((addr, str(qname)))
        return real(addr, port, qname, rdtype)  # type: ignore[arg-type]

    obs._query = counted  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.WARNING, logger="tlsarotate.observer"):
        assert obs.observe(ZONE, owners) == want
        assert obs.observe(ZONE, owners) == want
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        f"observe_read axfr: [::1]:{refusing.port} refused the transfer of {ZONE} (REFUSED); "
        "asking it one TLSA query per owner instead"
    ]  # said once: the refusing server is not offered a transfer again
    assert obs.queries["AXFR"] == 3  # the primary twice, the secondary once
    # the secondary: SOA, DNSKEY and every owner, each time; the primary: its ENT only
    assert Counter(a for a, _ in calls) == {"::1": 2 * (2 + len(owners)), "127.0.0.1": 2}


CONFIG = """
state_dir: state
safety_margin: 0
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {port}
    tsig_key_file: {key}
    timeout: 2
    retries: 2
services:
{services}
"""

SERVICE = """
  - name: {name}
    zone: {zone}
    provider: bind
    hosts: [{hosts}]
    ttl: 60
    records: ["3 1 1"]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    {read}
    certificate:
      deployed: {{cert: {d}/fullchain.pem, key: {d}/privkey.pem}}
      reload: ["true"]
"""


def write_config(tmp: Path, bind: BindServers, read: str, hosts: int = 30) -> Path:
    ca = pki.make_ca()
    services = []
    for svc, zone in (("a", "example.test."), ("b", "policy.test.")):
        d = tmp / f"certs-{svc}"
        if not d.exists():
            d.mkdir()
            leaf = pki.make_leaf(ca, [f"*.{svc}.{zone.rstrip('.')}"])
            (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
            (d / "privkey.pem").write_bytes(leaf.key_pem)
        names = ", ".join(f"h{i}.{svc}.{zone.rstrip('.')}" for i in range(hosts))
        services.append(
            SERVICE.format(name=svc, zone=zone, hosts=names, port=bind.port, read=read, d=d)
        )
    path = tmp / f"config-{read.split(':')[-1].strip() or 'default'}.yaml"
    text = CONFIG.format(port=bind.port, key=bind.key_file, services="".join(services))
    path.write_text(text.replace("    \n", ""))
    return path


def test_apply_reads_each_server_once_per_zone_and_look(bind: BindServers, tmp_path: Path) -> None:
    """The design: an `apply` (publish, then a look after the write) asks each server one AXFR
    per zone and look; no SOA, DNSKEY or per-owner TLSA query (the query path asks 30 owners of
    each zone, at each server, at each look)."""
    cfg = config.load(write_config(tmp_path, bind, "observe_read: axfr"))
    made: list[tuple[str, Observer]] = []

    def factory(svc: config.Service, provider: Callable[[], Provider], timeout: float) -> Observer:
        made.append((svc.name, observer_for(svc, provider, timeout)))
        return made[-1][1]

    providers = make_providers(cfg, ProviderContext(base_dir=tmp_path))
    looks: list[Plan] = []
    engine = Engine(cfg, FileStateStore(cfg.state_dir), providers, observer_for=factory)
    engine.on_plan = looks.append
    plans = engine.run(cfg.services, wait=False)
    assert [p.phase for p in looks[:2]] == ["publish"] * 2  # then a look after the write
    assert all(p.phase in ("wait-propagation", "wait-ttl", "idle") for p in plans)
    per_service = len(looks) // 2
    assert per_service == 2  # the publish step, and the look right after the write
    for svc_name, obs in made:
        assert isinstance(obs, TransferObserver), svc_name
        assert obs.queries == Counter({"AXFR": 2 * per_service}), (svc_name, obs.queries)


def test_plan_is_the_same_with_either_read(bind: BindServers, tmp_path: Path) -> None:
    query_cfg = write_config(tmp_path, bind, "", hosts=5)
    axfr_cfg = write_config(tmp_path, bind, "observe_read: axfr", hosts=5)
    for _ in range(2):  # publish; then (served everywhere) the visibility is recorded
        applied = run_cli("-c", query_cfg, "apply")
        assert applied.returncode in (0, 2), applied.stderr
        bind.wait_synced()
    out = [run_cli("-c", c, "plan", "--output", "json") for c in (query_cfg, axfr_cfg)]
    assert [p.returncode for p in out] == [out[0].returncode] * 2
    assert out[0].stdout == out[1].stdout and out[0].stdout
    assert "observe_read" not in out[1].stderr  # no fallback: both servers transferred
