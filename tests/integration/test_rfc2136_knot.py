"""The rfc2136 provider on a real knotd (tests/support/knot.py) next to a real BIND
(tests/support/servers.py): where the two servers answer alike, the same test runs on both;
where they differ (signing lag, the answer to an unsigned UPDATE or transfer, a signed request
for a zone they do not serve), each server's answer and the provider's message for it are
asserted."""

# ruff: noqa: F811
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.support.helpers import assert_one_line, rd
from tests.support.knot import KnotServer, knot, knot_server  # noqa: F401
from tests.support.servers import BindServers, bind, bind_servers, wait_until  # noqa: F401
from tlsarotate.authoritative import DnsObserver
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ProviderError
from tlsarotate.providers import ProviderContext
from tlsarotate.providers.rfc2136 import RFC2136Provider

ZONE = dns.name.from_text("example.test.")
A = dns.name.from_text("_25._tcp.mx1.example.test.")
BIND_SETTINGS = {"with_secondary": False}  # one primary each: the servers, not a topology


def rr(ttl: int, *tags: int) -> TlsaRRset:
    return TlsaRRset.of(ttl, [rd(t) for t in tags])


@contextmanager
def server(request: pytest.FixtureRequest, which: str) -> Iterator[Any]:
    yield request.getfixturevalue("knot" if which == "knot" else "bind")


def provider(srv: Any, tmp: Path, **opts: Any) -> RFC2136Provider:
    return RFC2136Provider("p", srv.provider_options(**opts), ProviderContext(base_dir=tmp))


def add(prov: RFC2136Provider, new: TlsaRRset, old: TlsaRRset | None = None) -> None:
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, old, new),)))


@pytest.mark.parametrize("which", ["bind", "knot"])
@pytest.mark.parametrize(
    ("ours", "theirs", "rcode"),
    [
        (None, rr(300, 9), "YXRRSET"),
        (rr(300, 1), None, "NXRRSET"),
        (rr(300, 1), rr(300, 9), "NXRRSET"),
    ],
)
def test_failed_prerequisites_answer_alike(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    which: str,
    ours: TlsaRRset | None,
    theirs: TlsaRRset | None,
    rcode: str,
) -> None:
    """ "RRset does not exist" that does: YXRRSET; "exists with exactly these records" that
    does not: NXRRSET -- on both servers; nothing changes."""
    with server(request, which) as srv:
        prov = provider(srv, tmp_path)
        if theirs is not None:
            add(prov, theirs)
            wait_until(lambda: prov.read(ZONE, [A]) == {A: theirs}, 10, "their write")
        with pytest.raises(ConcurrentChangeError) as ei:
            add(prov, rr(300, 2), old=ours)
        assert_one_line(ei.value, str(A), f"prerequisite failed: {rcode}")
        assert prov.read(ZONE, [A]) == ({A: theirs} if theirs else {})


def test_knot_serves_an_update_signed_before_it_answers(knot: KnotServer, tmp_path: Path) -> None:
    """Knot signs the UPDATE while it processes it: the moment apply() returns, the server
    serves the new RRset with an RRSIG that validates, and is_live says so on its first look.
    (BIND's inline signing answers first and signs afterwards: the contract suite waits on
    is_live for it.)"""
    prov = provider(knot, tmp_path)
    new = rr(300, 1, 2)
    res = prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, new),)))
    sent = prov.sent["QUERY"]
    obs = DnsObserver(knot.nameservers, timeout=2).observe(ZONE, [A])
    assert obs.lagging({A: new}, require_signed=True) == []
    assert obs.servers[0].signed[A] is True
    assert prov.is_live(ZONE, res.tokens)
    assert prov.sent["QUERY"] == sent + 1  # one look, not a poll


@pytest.mark.parametrize(
    ("which", "needle"),
    [
        ("bind", "answered REFUSED (is the server authoritative for missing.test."),
        # Knot answers a signed query for a zone it does not serve unsigned
        ("knot", "is not TSIG-signed: the server refused it before looking at the key"),
    ],
)
def test_a_zone_the_server_does_not_serve(
    request: pytest.FixtureRequest, tmp_path: Path, which: str, needle: str
) -> None:
    with server(request, which) as srv:
        prov = provider(srv, tmp_path, retries=1)
        missing = dns.name.from_text("missing.test.")
        with pytest.raises(ProviderError) as ei:
            prov.read(missing, [dns.name.from_text("_25._tcp.mx.missing.test.")])
        assert_one_line(ei.value, "missing.test", needle, secrets=(srv.key_secret,))


@pytest.mark.parametrize(
    ("which", "needle"),
    [
        ("bind", "failed: REFUSED (the UPDATE was sent without a TSIG key"),
        ("knot", "failed: NOTAUTH (not authorized: the UPDATE was sent without a TSIG key"),
    ],
)
def test_an_unsigned_update(
    request: pytest.FixtureRequest, tmp_path: Path, which: str, needle: str
) -> None:
    with server(request, which) as srv:
        opts = srv.provider_options(retries=1)
        opts.pop("tsig_key_file")
        prov = RFC2136Provider("p", opts, ProviderContext(base_dir=tmp_path))
        with pytest.raises(ProviderError) as ei:
            add(prov, rr(300, 1))
        assert_one_line(ei.value, needle)
        assert provider(srv, tmp_path).read(ZONE, [A]) == {}


def test_knot_transfers_only_with_the_key(knot: KnotServer, tmp_path: Path) -> None:
    """``read: axfr`` on Knot: with the key it reads what was written; without, the transfer
    is refused (NOTAUTH) and the message says what to check."""
    keyed = provider(knot, tmp_path, read="axfr")
    add(keyed, rr(300, 1))
    assert keyed.read(ZONE, [A]) == {A: rr(300, 1)}
    opts = knot.provider_options(read="axfr", retries=1)
    opts.pop("tsig_key_file")
    bare = RFC2136Provider("p", opts, ProviderContext(base_dir=tmp_path))
    with pytest.raises(ProviderError) as ei:
        bare.read(ZONE, [A])
    assert_one_line(
        ei.value, "AXFR of example.test. answered NOTAUTH", "allow transfers with no TSIG key"
    )
