"""The rfc2136 provider's queries (``read: query``, ``is_live``) share one TCP connection to a
real BIND primary (tlsarotate/tcpdns.py), and a connection the server closed is opened anew."""

# ruff: noqa: F811
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import dns.name
import pytest

from tests.support.helpers import rrset
from tests.support.servers import BindServers, bind, bind_servers, wait_until  # noqa: F401
from tlsarotate.change import OwnerChange, ZoneChange
from tlsarotate.providers import ProviderContext
from tlsarotate.providers.rfc2136 import RFC2136Provider

BIND_SETTINGS = {"with_secondary": False}  # the provider talks to the primary only
ZONE = dns.name.from_text("example.test.")
OWNERS = [dns.name.from_text(f"_25._tcp.h{i}.example.test.") for i in range(40)]


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every TCP or UDP connect() made in this process (dnspython's and ours)."""
    made: list[Any] = []
    for name in ("connect", "connect_ex"):
        real = getattr(socket.socket, name)

        def counted(self: socket.socket, addr: Any, _real: Any = real) -> Any:
            if self.type == socket.SOCK_STREAM:
                made.append(addr)
            return _real(self, addr)

        monkeypatch.setattr(socket.socket, name, counted)
    yield made


def test_a_read_by_query_is_one_connection(bind: BindServers, connects: list[Any]) -> None:
    p = RFC2136Provider("bind", bind.provider_options(read="query"), ProviderContext())
    res = p.apply(ZoneChange(ZONE, tuple(OwnerChange(o, None, rrset(1)) for o in OWNERS)))
    before = len(connects)
    wait_until(lambda: p.is_live(ZONE, res.tokens), 5, "the primary to serve the write")
    got = p.read(ZONE, OWNERS)
    assert got == {o: rrset(1) for o in OWNERS}
    assert p.sent["QUERY"] >= 2 * len(OWNERS)
    # one connection for the queries (the UPDATE before had its own), not one per owner
    assert len(connects) - before <= 1
    p.close()


def test_a_connection_the_server_closed_is_opened_again(bind: BindServers) -> None:
    p = RFC2136Provider("bind", bind.provider_options(read="query"), ProviderContext())
    assert p.read(ZONE, OWNERS[:2]) == {}
    sock = p._queries._sock
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)  # as an idle timeout at the server leaves it
    assert p.read(ZONE, OWNERS[:2]) == {}
    assert p._queries.connections == 2
    assert p.sent["QUERY"] == 4  # each query sent as one attempt
    p.close()
