"""tlsarotate.change: RRsets, an owner's change (what it adds and removes), a zone's change set
and the digest that stands for what is published."""

from __future__ import annotations

import dns.name
import dns.rdataset
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tests.support.helpers import rd, rrset
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange, published_digest

A = dns.name.from_text("_25._tcp.mx1.example.test.")
B = dns.name.from_text("_25._tcp.mx2.example.test.")


def test_rrset_is_a_set_of_records_with_a_ttl() -> None:
    r = TlsaRRset.of(300, [rd(2), rd(1), rd(2)])
    assert r.records == frozenset({rd(1), rd(2)})
    assert r.ttl == 300 and isinstance(r.ttl, int)
    # texts: sorted, canonical, the same however the records came
    assert r.texts() == TlsaRRset.of(300, [rd(1), rd(2)]).texts() == sorted(r.texts())
    assert r.same_records(TlsaRRset.of(60, [rd(1), rd(2)]))  # TTL ignored
    assert not r.same_records(None) and not r.same_records(rrset(1))
    assert r != TlsaRRset.of(60, [rd(1), rd(2)])  # equality sees the TTL


def test_from_rdataset_keeps_ttl_and_records() -> None:
    rds = dns.rdataset.from_text("IN", "TLSA", 120, *[records.to_text(rd(i)) for i in (1, 2)])
    assert TlsaRRset.from_rdataset(rds) == TlsaRRset.of(120, [rd(1), rd(2)])


@pytest.mark.parametrize(
    ("old", "new", "added", "removed", "ttl_changed"),
    [
        (None, rrset(1), [1], [], False),
        (rrset(1), None, [], [1], False),
        (rrset(1, 2), rrset(2, 3), [3], [1], False),
        (rrset(1), rrset(1, ttl=60), [], [], True),
        (rrset(1), rrset(1), [], [], False),
        (None, None, [], [], False),
    ],
)
def test_owner_change_added_removed(
    old: TlsaRRset | None,
    new: TlsaRRset | None,
    added: list[int],
    removed: list[int],
    ttl_changed: bool,
) -> None:
    ch = OwnerChange(A, old, new)

    def tag(rds: list[TLSA]) -> list[int]:
        return sorted(int(r.cert.hex(), 16) for r in rds)

    assert tag(ch.added) == added and tag(ch.removed) == removed
    assert ch.ttl_changed is ttl_changed


def test_zone_change_is_false_without_owners() -> None:
    zone = dns.name.from_text("example.test.")
    assert not ZoneChange(zone, ())
    assert ZoneChange(zone, (OwnerChange(A, None, rrset(1)),))


def test_published_digest_stands_for_records_and_ttls_at_the_owners() -> None:
    pub = {A: rrset(1, 2), B: rrset(3)}
    d = published_digest(pub, [A, B])
    assert d == published_digest(
        {B: rrset(3), A: TlsaRRset.of(300, [rd(9)]) and rrset(2, 1)}, [B, A]
    )
    assert d != published_digest({A: rrset(1, 2), B: rrset(3, ttl=60)}, [A, B])  # a TTL
    assert d != published_digest({A: rrset(1), B: rrset(3)}, [A, B])  # a record
    assert d != published_digest({A: rrset(1, 2)}, [A, B])  # an owner without records
    assert d != published_digest(pub, [A])  # other owners
    # records published elsewhere do not count
    assert published_digest({**pub, dns.name.from_text("x.example.test."): rrset(7)}, [A, B]) == d
    # an owner with no RRset and one never named differ
    assert published_digest({}, [A]) != published_digest({}, [])
