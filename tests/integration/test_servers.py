"""The real-server fixtures themselves: BIND pair with DNSSEC + NOTIFY, validating unbound."""

# ruff: noqa: F811
from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdatatype
import dns.resolver

from tests.support.servers import BindServers, Unbound, bind, bind_servers, query, unbound  # noqa: F401

TLSA = "3 1 1 " + "ab" * 32


def test_both_servers_serve_signed_zone(bind: BindServers) -> None:
    for addr in bind.addresses:
        r = query(*addr, "example.test.", "SOA")
        assert r.rcode() == dns.rcode.NOERROR
        assert any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer), addr
        r = query(*addr, "unsigned.test.", "SOA")
        assert not any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer), addr


def test_update_propagates_to_secondary(bind: BindServers) -> None:
    r = bind.update("example.test.", build=lambda m: m.add("_25._tcp.mx", 300, "TLSA", TLSA))
    assert r.rcode() == dns.rcode.NOERROR
    bind.wait_synced("example.test.")
    for addr in bind.addresses:
        a = query(*addr, "_25._tcp.mx.example.test.", "TLSA")
        assert [rr.to_text() for rr in a.answer if rr.rdtype == dns.rdatatype.TLSA] != []


def test_stop_and_restart_secondary(bind: BindServers) -> None:
    bind.stop_secondary()
    assert bind.serial(bind.secondary, "example.test.") is None
    bind.start_secondary()
    assert bind.serial(bind.secondary, "example.test.") == bind.serial(
        bind.primary, "example.test."
    )


def test_unbound_validates_the_chain(bind: BindServers, unbound: Unbound) -> None:
    res = unbound.resolver()
    ans = res.resolve("mx.example.test.", "A")
    assert ans.response.flags & dns.flags.AD
    ans = res.resolve("mx.unsigned.test.", "A")
    assert not ans.response.flags & dns.flags.AD
