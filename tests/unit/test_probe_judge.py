"""probe_judge.judge: typed inputs (what gather found) -> one verdict per address, the
endpoint's verdict and the exit code. Pure: no servers, no DNS, no sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.name
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import material, pki, records
from tlsarotate.probe_judge import Gathered, ProbeReport, judge
from tlsarotate.served import ServedChain
from tlsarotate.tlsaanswer import TlsaAnswer
from tlsarotate.verdict import AUTHENTICATED, FAILS, NO_DANE

HOST = "mx.example.test"
OWNER = dns.name.from_text(f"_25._tcp.{HOST}.")
CA = pki.make_ca()
GOOD = pki.make_leaf(CA, [HOST])
OTHER = pki.make_leaf(CA, [HOST])


def _der(leaf: pki.Issued) -> tuple[bytes, ...]:
    return material.parse(pki.fullchain_pem(leaf, CA), "chain.pem").chain_der


def _rec(leaf: pki.Issued, params: str = "3 1 1") -> TLSA:
    m = material.parse(pki.fullchain_pem(leaf, CA), "chain.pem")
    return records.build(m, records.parse_params(params), 1)


def _served(address: str, leaf: pki.Issued | None) -> ServedChain:
    if leaf is None:
        return ServedChain(address, 25, "smtp", HOST, error="connection refused")
    return ServedChain(address, 25, "smtp", HOST, _der(leaf), "TLSv1.3", "TLS_AES_128_GCM_SHA256")


def _tlsa(
    *variants: tuple[tuple[str, ...], list[TLSA]],
    problems: tuple[str, ...] = (),
    insecure: tuple[str, ...] = (),
    errors: tuple[str, ...] = (),
) -> TlsaAnswer:
    return TlsaAnswer(
        source="dns",
        variants=[(labels, frozenset(rs)) for labels, rs in variants],
        problems=list(problems),
        insecure=list(insecure),
        errors=list(errors),
    )


def _gathered(
    tlsa: TlsaAnswer,
    *served: ServedChain,
    saved: tuple[str | None, ...] = (),
    errors: tuple[str, ...] = (),
    smtp: bool = True,
) -> Gathered:
    return Gathered(HOST, 25, OWNER, "smtp", smtp, tlsa, served, saved, errors)


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The judge does no I/O: any socket is an error."""

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("judge opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def _dane(rep: ProbeReport) -> list[str | None]:
    return [a.dane for a in rep.addresses]


def test_every_address_authenticated_is_exit_0() -> None:
    g = _gathered(
        _tlsa((("ns1", "ns2"), [_rec(GOOD)])),
        _served("192.0.2.1", GOOD),
        _served("2001:db8::1", GOOD),
        saved=("/d/a.pem", "/d/b.pem"),
    )
    rep = judge(g)
    assert _dane(rep) == [AUTHENTICATED, AUTHENTICATED]
    assert rep.dane == AUTHENTICATED and rep.exit_code == 0 and not rep.incomplete
    a = rep.addresses[0]
    assert a.ok and a.summary is not None and a.summary.startswith("DANE ok: 3 1 1 ")
    assert [labels for labels, _ in a.verdicts] == [("ns1", "ns2")]
    assert [x.saved for x in rep.addresses] == ["/d/a.pem", "/d/b.pem"]
    assert (rep.host, rep.port, rep.owner, rep.starttls, rep.smtp) == (
        HOST,
        25,
        OWNER,
        "smtp",
        True,
    )


def test_one_address_with_another_key_fails_the_endpoint() -> None:
    rep = judge(
        _gathered(
            _tlsa((("file",), [_rec(GOOD)])), _served("192.0.2.1", GOOD), _served("::1", OTHER)
        )
    )
    assert _dane(rep) == [AUTHENTICATED, FAILS]
    assert rep.dane == FAILS and rep.exit_code == 2
    assert rep.addresses[1].summary is not None
    assert rep.addresses[1].summary.startswith("no record matches: the leaf's SPKI sha256 is")


def test_an_unreachable_address_is_not_judged_and_exit_1() -> None:
    rep = judge(
        _gathered(
            _tlsa((("file",), [_rec(GOOD)])),
            _served("192.0.2.1", GOOD),
            _served("192.0.2.2", None),
            saved=("/d/a.pem", None),
        )
    )
    down = rep.addresses[1]
    assert (down.dane, down.summary, down.verdicts, down.saved) == (None, None, [], None)
    assert rep.dane is None and rep.incomplete and rep.exit_code == 1


def test_servers_that_disagree_give_one_verdict_per_variant_and_the_worst_wins() -> None:
    tlsa = _tlsa((("ns1",), [_rec(GOOD)]), (("ns2",), [_rec(OTHER)]))
    rep = judge(_gathered(tlsa, _served("192.0.2.1", GOOD)))
    (a,) = rep.addresses
    assert [(labels, v.dane) for labels, v in a.verdicts] == [
        (("ns1",), AUTHENTICATED),
        (("ns2",), FAILS),
    ]
    assert a.dane == FAILS and rep.exit_code == 2


def test_insecure_dns_is_no_dane_whatever_the_chain() -> None:
    why = "zone example.test. is not DNSSEC-signed: DANE clients ignore its TLSA records"
    rep = judge(_gathered(_tlsa((("ns1",), [_rec(GOOD)]), insecure=(why,)), _served("a", GOOD)))
    (a,) = rep.addresses
    assert a.dane == NO_DANE and a.summary is not None
    assert a.summary.startswith(why + " (the records alone: DANE ok: ")
    assert rep.dane == NO_DANE and rep.exit_code == 3


def test_bogus_dns_fails_every_address_even_a_matching_one() -> None:
    bogus = "ns1: the TLSA answer has no valid RRSIG: DANE clients treat it as bogus"
    tlsa = _tlsa((("ns1",), [_rec(GOOD)]), problems=(bogus,))
    rep = judge(_gathered(tlsa, _served("a", GOOD), _served("b", GOOD)))
    assert _dane(rep) == [FAILS, FAILS]
    assert [a.summary for a in rep.addresses] == [bogus, bogus]
    assert rep.exit_code == 2


def test_the_protocol_decides_the_rules() -> None:
    """1 1 1 is unusable for SMTP (RFC 7672 §3.1.3): no DANE; off SMTP it needs PKIX, which
    the throwaway CA cannot give: fails."""
    tlsa = _tlsa((("file",), [_rec(GOOD, "1 1 1")]))
    assert _dane(judge(_gathered(tlsa, _served("a", GOOD), smtp=True))) == [NO_DANE]
    assert _dane(judge(_gathered(tlsa, _served("a", GOOD), smtp=False))) == [FAILS]


def test_no_addresses_or_a_lookup_error_cannot_be_checked() -> None:
    lookup = "mx.example.test: no A or AAAA records (resolver 127.0.0.1:53)"
    rep = judge(_gathered(_tlsa((("ns1",), [_rec(GOOD)])), errors=(lookup,)))
    assert rep.addresses == [] and rep.errors == [lookup]
    assert rep.dane is None and rep.exit_code == 1
    # no RRset at all (the zone was not found): nothing to judge the chain against
    tlsa = _tlsa(errors=("cannot find the zone of _25._tcp.mx.example.test.",))
    rep = judge(_gathered(tlsa, _served("a", GOOD)))
    assert rep.addresses[0].verdicts == [] and rep.addresses[0].dane is None
    assert rep.exit_code == 1
