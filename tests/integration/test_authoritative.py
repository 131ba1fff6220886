"""DnsObserver against a real BIND primary + secondary (inline signing, NOTIFY/AXFR) and a
validating unbound."""

# ruff: noqa: F811
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.dnssectypes
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.helpers import rrset
from tests.support.servers import BindServers, Unbound, bind, bind_servers, unbound, wait_until  # noqa: F401
from tlsarotate import records
from tlsarotate.authoritative import DnsObserver
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.config import Nameserver
from tlsarotate.observation import Observation, Observer
from tlsarotate.providers import ProviderContext
from tlsarotate.providers.rfc2136 import RFC2136Provider

ZONE = dns.name.from_text("example.test.")
UNSIGNED = dns.name.from_text("unsigned.test.")
MX = dns.name.from_text("_25._tcp.mx.example.test.")
MX2 = dns.name.from_text("_465._tcp.mx.example.test.")


def write(bind: BindServers, zone: dns.name.Name, *changes: OwnerChange) -> None:
    p = RFC2136Provider("bind", bind.provider_options(), ProviderContext())
    res = p.apply(ZoneChange(zone, changes))
    wait_until(lambda: p.is_live(zone, res.tokens), 5, "the primary to serve the write")


def observer(bind: BindServers, **kw: Any) -> DnsObserver:
    return DnsObserver(bind.nameservers, timeout=kw.pop("timeout", 1.0), **kw)


def converged(
    obs: DnsObserver,
    zone: dns.name.Name,
    expected: dict[dns.name.Name, TlsaRRset | None],
    signed: bool = True,
    timeout: float = 15,
) -> Observation:
    def done() -> Observation | None:
        o = obs.observe(zone, list(expected))
        return o if not o.lagging(expected, signed) else None

    return wait_until(done, timeout, f"all servers to serve {expected}", interval=0.1)


def test_is_an_observer(bind: BindServers) -> None:
    o: Observer = observer(bind)
    assert isinstance(o.observe(ZONE, [MX]), Observation)


@pytest.fixture
def slow_notify_bind(tmp_path: Path) -> Iterator[BindServers]:
    """A BIND pair of its own whose primary waits 3 s before NOTIFYing the secondary: right
    after a write the secondary still serves the old serial (deterministic lag). The module's
    pair keeps the 1 s default so the other tests do not pay that wait on every write."""
    servers = BindServers(tmp_path / "bind", notify_delay=3)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


def test_both_servers_serve_after_update_and_lag_is_seen(slow_notify_bind: BindServers) -> None:
    bind = slow_notify_bind
    obs = observer(bind)
    before = obs.observe(ZONE, [MX, MX2])
    assert before.zone_signed is True
    assert [s.label for s in before.servers] == [
        f"127.0.0.1:{bind.port}",
        f"[::1]:{bind.port}",
    ]
    assert not before.lagging({MX: None, MX2: None}, True)
    for s in before.servers:
        assert s.error is None and s.serial is not None
        assert s.signed == {MX: True, MX2: True}  # signed NSEC denials
        assert s.min_rrsig_expiry is not None and s.min_rrsig_expiry > time.time()

    write(bind, ZONE, OwnerChange(MX, None, rrset(1, 2, ttl=120)))
    expected = {MX: rrset(1, 2, ttl=120), MX2: None}
    # NOTIFY waits notify-delay (3 s, BIND_SETTINGS), so right after the write the secondary
    # still lags: lagging() must name it, its serial and the owner
    first = obs.observe(ZONE, list(expected))
    assert first.servers[0].rrsets[MX] == rrset(1, 2, ttl=120)
    assert first.servers[1].serial != first.servers[0].serial
    assert first.servers[1].rrsets[MX] is None
    assert first.lagging(expected, True) == [
        f"[::1]:{bind.port}: serial {first.servers[1].serial}, still serving a "
        f"different RRset at {MX}"
    ]
    after = converged(obs, ZONE, expected)
    assert after.max_ttl() == 120 and after.max_ttl([MX2]) == 0
    for s in after.servers:
        assert s.rrsets[MX] == rrset(1, 2, ttl=120) and s.rrsets[MX2] is None
        assert s.signed[MX] is True and s.sig_problem is None
    # the observer reports serials; the primary's grew with the write (the secondary's copy
    # may already have carried a signing bump before, so only the primary is compared)
    assert all(s.serial is not None for s in after.servers)
    p_after, p_before = after.servers[0].serial, before.servers[0].serial
    assert p_after is not None and p_before is not None and p_after > p_before


def test_stopped_secondary_is_reported_and_lagging(bind: BindServers) -> None:
    bind.stop_secondary()
    obs = observer(bind, timeout=0.3)
    o = obs.observe(ZONE, [MX])
    sec = o.servers[1]
    assert sec.error == "timeout after 0.3s" and sec.rrsets == {}
    assert o.servers[0].error is None
    lag = o.lagging({MX: None}, True)
    assert lag == [f"[::1]:{bind.port}: timeout after 0.3s"]


def test_unsigned_zone(bind: BindServers) -> None:
    owner = dns.name.from_text("_25._tcp.mx.unsigned.test.")
    write(bind, UNSIGNED, OwnerChange(owner, None, rrset(7)))
    obs = observer(bind)
    o = converged(obs, UNSIGNED, {owner: rrset(7)}, signed=False)
    assert o.zone_signed is False
    for s in o.servers:
        assert s.signed[owner] is False
        assert s.min_rrsig_expiry is None
    assert o.lagging({owner: rrset(7)}, True) != []  # signatures required: never "served"


def _foreign_dnskey(zone: dns.name.Name) -> dns.rrset.RRset:
    key = ec.generate_private_key(ec.SECP256R1())
    dk = dns.dnssec.make_dnskey(
        key.public_key(), dns.dnssectypes.Algorithm.ECDSAP256SHA256, flags=257
    )
    return dns.rrset.from_rdata(zone, 300, dk)


def test_foreign_dnskey_fails_validation(bind: BindServers) -> None:
    write(bind, ZONE, OwnerChange(MX, None, rrset(1)))
    obs = observer(bind)
    converged(obs, ZONE, {MX: rrset(1)})
    real = obs._query

    def forged(addr: str, port: int, qname: dns.name.Name, rdtype: Any) -> dns.message.Message:
        r = real(addr, port, qname, rdtype)
        if rdtype == dns.rdatatype.DNSKEY:
            r.answer = [_foreign_dnskey(ZONE)]  # an attacker's key, no valid self-signature
        return r

    obs._query = forged  # type: ignore[method-assign,assignment]
    o = obs.observe(ZONE, [MX])
    for s in o.servers:
        assert s.rrsets[MX] == rrset(1)
        assert s.signed[MX] is False
        assert s.sig_problem == f"no RRSIG over {ZONE} DNSKEY"  # first problem seen
    lag = o.lagging({MX: rrset(1)}, True)
    assert len(lag) == 2 and all("no valid RRSIG" in line for line in lag)
    assert o.lagging({MX: rrset(1)}, False) == []


def test_tampered_record_fails_validation(bind: BindServers) -> None:
    write(bind, ZONE, OwnerChange(MX, None, rrset(1)))
    obs = observer(bind)
    converged(obs, ZONE, {MX: rrset(1)})
    real = obs._query

    def tamper(addr: str, port: int, qname: dns.name.Name, rdtype: Any) -> dns.message.Message:
        r = real(addr, port, qname, rdtype)
        if rdtype == dns.rdatatype.TLSA and addr == "::1":
            rr = r.find_rrset(r.answer, qname, dns.rdataclass.IN, dns.rdatatype.TLSA)
            rr.clear()  # type: ignore[no-untyped-call]
            rr.add(records.from_text(f"3 1 1 {1:064x}".replace("01", "02")))
        return r

    obs._query = tamper  # type: ignore[method-assign,assignment]
    o = obs.observe(ZONE, [MX])
    assert o.servers[0].signed[MX] is True
    assert o.servers[1].signed[MX] is False
    assert "does not validate" in (o.servers[1].sig_problem or "")


def test_expired_signatures_are_invalid(bind: BindServers) -> None:
    obs = observer(bind, clock=FakeClock(time.time() + 400 * 86400))
    o = obs.observe(ZONE, [MX])
    assert all(s.signed[MX] is False for s in o.servers)
    assert "expired" in (o.servers[0].sig_problem or "")


def test_discovers_servers_from_ns_through_validating_resolver(
    bind: BindServers, unbound: Unbound
) -> None:
    write(bind, ZONE, OwnerChange(MX, None, rrset(3)))
    obs = DnsObserver(resolver=unbound.resolver(), port=bind.port, timeout=1.0)
    o = converged(obs, ZONE, {MX: rrset(3)})
    assert [s.label for s in o.servers] == [
        f"ns1.example.test 127.0.0.1:{bind.port}",
        f"ns2.example.test [::1]:{bind.port}",
    ]
    # replace=False: configured hidden primaries are added, duplicates dropped
    hidden = DnsObserver(
        [Nameserver("127.0.0.1", bind.port), Nameserver("127.0.0.1", 9)],
        resolver=unbound.resolver(),
        port=bind.port,
        timeout=0.3,
        replace=False,
    )
    labels = [t.label for t in hidden.targets(ZONE)]
    assert labels == [
        f"ns1.example.test 127.0.0.1:{bind.port}",
        f"ns2.example.test [::1]:{bind.port}",
        "127.0.0.1:9",
    ]


def test_unknown_zone_ns_lookup_failure_blocks(unbound: Unbound) -> None:
    obs = DnsObserver(resolver=unbound.resolver(), timeout=0.5)
    o = obs.observe(dns.name.from_text("nonexistent.test."), [])
    assert len(o.servers) == 1 and "NS lookup failed" in (o.servers[0].error or "")
    assert o.lagging({}, False) != []


def test_unbound_validates_tlsa(bind: BindServers, unbound: Unbound) -> None:
    write(bind, ZONE, OwnerChange(MX, None, rrset(4, 5)))
    res = unbound.resolver()

    def ad_answer() -> Any:
        ans = res.resolve(MX, "TLSA", raise_on_no_answer=False)
        got = TlsaRRset.from_rdataset(ans.rrset) if ans.rrset is not None else None
        # unbound caps TTLs (cache-max-ttl 2): compare the records
        return ans if rrset(4, 5).same_records(got) else None

    got = wait_until(ad_answer, 10, "unbound to serve the new TLSA RRset")
    assert got.response.flags & dns.flags.AD
    with pytest.raises(dns.resolver.NXDOMAIN) as ei:
        res.resolve(MX2, "TLSA")
    responses = ei.value.responses()  # type: ignore[no-untyped-call]
    assert any(r.flags & dns.flags.AD for r in responses.values())  # validated denial


def test_many_owners_one_observation(bind: BindServers) -> None:
    owners = [dns.name.from_text(f"_25._tcp.h{i}.example.test.") for i in range(50)]
    write(bind, ZONE, *[OwnerChange(o, None, rrset(i + 1)) for i, o in enumerate(owners)])
    obs = observer(bind)
    converged(obs, ZONE, {o: rrset(i + 1) for i, o in enumerate(owners)})
    assert obs.queries["TLSA"] >= 100
