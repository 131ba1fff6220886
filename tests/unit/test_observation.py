"""tlsarotate.observation: what each authoritative server was seen to serve, and the questions
the planner asks of it (who lags, which variants are served, the largest TTL cached)."""

from __future__ import annotations

import dns.name

from tests.support.helpers import rrset
from tlsarotate.change import TlsaRRset
from tlsarotate.observation import Observation, ProviderObserver, ServerAnswer

ZONE = dns.name.from_text("example.test.")
A = dns.name.from_text("_25._tcp.mx1.example.test.")
B = dns.name.from_text("_25._tcp.mx2.example.test.")


def server(label: str, rrsets: dict[dns.name.Name, TlsaRRset | None], **kw: object) -> ServerAnswer:
    return ServerAnswer(label=label, address="192.0.2.1", rrsets=rrsets, **kw)  # type: ignore[arg-type]


def test_a_server_serves_the_expected_records_whatever_the_ttl() -> None:
    s = server("ns1", {A: rrset(1, 2, ttl=60), B: None}, serial=7)
    assert s.serves({A: rrset(1, 2), B: None}, require_signed=False) is None
    why = s.serves({A: rrset(1)}, require_signed=False)
    assert why == f"ns1: serial 7, still serving a different RRset at {A}"
    assert server("ns2", {}, error="timed out").serves({A: None}, False) == "ns2: timed out"


def test_signatures_count_only_when_required() -> None:
    s = server("ns1", {A: rrset(1)}, signed={A: False}, sig_problem="RRSIG expired")
    assert s.serves({A: rrset(1)}, require_signed=False) is None
    assert (
        s.serves({A: rrset(1)}, require_signed=True)
        == f"ns1: no valid RRSIG at {A} (RRSIG expired)"
    )
    unchecked = server("ns1", {A: rrset(1)}, signed={A: None})
    assert unchecked.serves({A: rrset(1)}, require_signed=True) is None


def test_lagging_names_every_server_behind_and_no_servers_at_all() -> None:
    obs = Observation(
        ZONE,
        (
            server("ns1", {A: rrset(1, 2)}),
            server("ns2", {A: rrset(1)}),
            server("ns3", {}, error="REFUSED"),
        ),
    )
    lag = obs.lagging({A: rrset(1, 2)}, require_signed=False)
    assert lag == [f"ns2: still serving a different RRset at {A}", "ns3: REFUSED"]
    assert Observation(ZONE, ()).lagging({A: None}, False) == [
        "no authoritative servers found for example.test."
    ]


def test_variants_group_servers_by_what_they_serve() -> None:
    obs = Observation(
        ZONE,
        (
            server("ns1", {A: rrset(1)}),
            server("ns2", {A: rrset(1, ttl=60)}),
            server("ns3", {A: rrset(2)}),
            server("ns4", {}),
            server("ns5", {}, error="timed out"),  # no answer: no variant
        ),
    )
    got = {labels: recs for labels, recs in obs.variants(A)}
    assert got == {
        ("ns1", "ns2"): rrset(1).records,
        ("ns3",): rrset(2).records,
        ("ns4",): frozenset(),
    }


def test_max_ttl_over_the_named_owners_only() -> None:
    obs = Observation(
        ZONE,
        (server("ns1", {A: rrset(1, ttl=300), B: rrset(2, ttl=3600)}), server("ns2", {A: None})),
    )
    assert obs.max_ttl([A]) == 300
    assert obs.max_ttl([A, B]) == obs.max_ttl() == 3600
    assert obs.max_ttl([dns.name.from_text("x.example.test.")]) == 0


class _Reader:
    def __init__(self, data: dict[dns.name.Name, TlsaRRset]) -> None:
        self.data = data

    def read(self, zone: dns.name.Name, owners: object) -> dict[dns.name.Name, TlsaRRset]:
        return self.data


def test_provider_observer_reports_the_providers_read_as_one_unsigned_source() -> None:
    obs = ProviderObserver(_Reader({A: rrset(1)}), "zone").observe(ZONE, [A, B])
    assert obs.source == "provider" and obs.zone_signed is None
    (s,) = obs.servers
    assert s.label == "provider zone" and s.rrsets == {A: rrset(1), B: None}
    assert s.signed == {A: None, B: None}
