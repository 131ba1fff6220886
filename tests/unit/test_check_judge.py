"""check's judging, table-driven: typed gathered facts in (no servers), verdicts out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import dns.name
import pytest

from tlsarotate import material, pki, records
from tlsarotate.change import TlsaRRset
from tlsarotate.check.facts import CheckFacts, Endpoint, ServiceFacts, SlotFacts
from tlsarotate.check.judge import CERT_WARN_SECONDS, RRSIG_WARN_SECONDS, judge
from tlsarotate.check.report import CRITICAL, OK, UNKNOWN, WARNING, CheckReport
from tlsarotate.config import CertPaths, CertSlot, Service
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.served import ServedChain

HOST = "mx.example.test"
ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text(f"_25._tcp.{HOST}.")
NOW = time.time()
CA = pki.make_ca()


def cert(days: int = 30) -> material.Material:
    leaf = pki.make_leaf(CA, [HOST], days=days)
    return material.parse(pki.fullchain_pem(leaf, CA), "leaf.pem")


CUR, NXT, OTHER, SOON = cert(), cert(), cert(), cert(days=5)


def rec(m: material.Material) -> TlsaRRset:
    return TlsaRRset.of(300, [records.build(m, records.parse_params("3 1 1"))])


SLOT = CertSlot("default", CertPaths(cert=Path("/etc/cur.pem"), key=Path("/etc/cur.key")), None)
NEXT_SLOT = replace(SLOT, next=CertPaths(cert=Path("/etc/next.pem"), key=Path("/etc/next.key")))
SERVICE = Service(
    name="mail",
    zone=ZONE,
    provider="p",
    hosts=(HOST,),
    ports=(25,),
    protocol="tcp",
    ttl=300,
    params=(records.parse_params("3 1 1"),),
    certificates=(SLOT,),
)


def server(
    label: str,
    rr: TlsaRRset | None,
    signed: bool | None = True,
    error: str | None = None,
    expiry: float | None = NOW + 10 * 86400,
) -> ServerAnswer:
    if error:
        return ServerAnswer(label, "192.0.2.1", error=error)
    return ServerAnswer(
        label, "192.0.2.1", rrsets={OWNER: rr}, signed={OWNER: signed}, min_rrsig_expiry=expiry
    )


def observed(*servers: ServerAnswer, zone_signed: bool | None = True) -> Observation:
    return Observation(ZONE, servers, zone_signed=zone_signed)


GOOD = observed(server("ns1", rec(CUR)), server("ns2", rec(CUR)))


def endpoint(served: ServedChain, address: str = "192.0.2.25") -> Endpoint:
    return Endpoint("mail", HOST, 25, OWNER, address, "smtp", served)


def serving(m: material.Material) -> Endpoint:
    return endpoint(ServedChain("192.0.2.25", 25, "smtp", HOST, der=m.chain_der))


def failed(error: str, unreachable: bool) -> Endpoint:
    return endpoint(
        ServedChain("192.0.2.25", 25, "smtp", HOST, error=error, unreachable=unreachable)
    )


@dataclass
class Case:
    name: str
    obs: Observation | None = GOOD
    slots: tuple[SlotFacts, ...] = (SlotFacts(SLOT, CUR),)
    endpoints: tuple[Endpoint, ...] = ()
    gate: material.Material | None = None
    now: float = NOW
    # expected
    status: int = OK
    messages: tuple[str, ...] = ()  # each in some finding's message
    published: bool | None = True  # the owner's verdict
    signed: bool | None = True
    ok: tuple[bool | None, ...] = ()  # each endpoint's verdict
    perf: dict[str, int | None] = field(default_factory=dict)


def run(c: Case) -> CheckReport:
    sf = ServiceFacts(
        service=SERVICE,
        observation=c.obs,
        observe_error=None if c.obs is not None else "timeout after 3s",
        address_errors=(),
        endpoints=c.endpoints,
        state=None,
        state_error=None,
        slot_inputs=(),
        slots=c.slots,
    )
    gate_file = "/ci/next.pem" if c.gate is not None else None
    return judge(CheckFacts(c.now, (sf,), 60, gate_file, c.gate))


CASES = [
    Case("all good", perf={"unpublished": 0, "owners": 1, "criticals": 0}),
    Case(
        "records of another key only",
        obs=observed(server("ns1", rec(OTHER)), server("ns2", rec(OTHER))),
        status=CRITICAL,
        messages=("the deployed certificate 'default'", "matches no 3 1 1 record served by ns1"),
        published=False,
        perf={"unpublished": 1},
    ),
    Case(
        "no records at all",
        obs=observed(server("ns1", None), server("ns2", None)),
        status=CRITICAL,
        messages=(f"{OWNER}: no TLSA records on ns1, ns2",),
        published=False,
    ),
    Case(
        "servers disagree",
        obs=observed(
            server("ns1", rec(CUR)),
            server("ns2", TlsaRRset.of(300, [*rec(CUR).records, *rec(OTHER).records])),
        ),
        status=WARNING,
        messages=("servers disagree (ns1: 1 record(s); ns2: 2 record(s))",),
    ),
    Case(
        "one server does not answer: published not known",
        obs=observed(server("ns1", rec(CUR)), server("ns2", None, error="timeout after 3s")),
        status=UNKNOWN,
        messages=("ns2: timeout after 3s",),
        published=None,
        signed=None,  # one valid answer is not "every server's answer validates"
        perf={"unpublished": None},
    ),
    Case(
        "no server observed",
        obs=None,
        status=UNKNOWN,
        messages=("zone example.test.: timeout after 3s",),
        published=None,
        signed=None,
        perf={"unpublished": None, "rrsig_expiry_min_seconds": None},
    ),
    Case(
        "zone not signed",
        obs=observed(server("ns1", rec(CUR), signed=False), zone_signed=False),
        status=CRITICAL,
        messages=("is not DNSSEC-signed", "no valid RRSIG on ns1"),
        signed=False,
        perf={"unpublished": 0},
    ),
    Case(
        "RRSIG expires in 2 days",
        obs=observed(server("ns1", rec(CUR), expiry=NOW + 2 * 86400)),
        status=WARNING,
        messages=("an RRSIG expires in 2d0h",),
        perf={"rrsig_expiry_min_seconds": 2 * 86400},
    ),
    Case(
        "RRSIG expired half a second ago",
        obs=observed(server("ns1", rec(CUR), expiry=NOW - 0.5)),
        status=CRITICAL,
        messages=("an RRSIG expired",),
        perf={"rrsig_expiry_min_seconds": -1},  # floor: expired must not read as 0
    ),
    Case(
        "RRSIG exactly at the warning boundary",
        obs=observed(server("ns1", rec(CUR), expiry=NOW + RRSIG_WARN_SECONDS)),
        perf={"rrsig_expiry_min_seconds": RRSIG_WARN_SECONDS},
    ),
    Case(
        "deployed expires in 5 days, no next one",
        obs=observed(server("ns1", rec(SOON))),
        slots=(SlotFacts(SLOT, SOON),),
        status=WARNING,
        messages=("certificate 'default' (/etc/cur.pem) expires in 4d23h",),
    ),
    Case(
        "deployed unreadable",
        slots=(SlotFacts(SLOT, None, "certificate 'default' (deployed): no such file"),),
        status=UNKNOWN,
        messages=("no such file",),
        published=None,
        perf={"unpublished": None, "cert_expiry_min_seconds": None},
    ),
    Case(
        "next certificate published nowhere: OK (not swapped in yet)",
        slots=(SlotFacts(NEXT_SLOT, CUR, None, NXT),),
    ),
    Case(
        "endpoint serves the deployed chain",
        endpoints=(serving(CUR),),
        ok=(True,),
        perf={"endpoints": 1, "failing": 0, "unknown": 0},
    ),
    Case(
        "endpoint serves another key",
        endpoints=(serving(OTHER),),
        status=CRITICAL,
        messages=("no record matches", "not the deployed file"),
        ok=(False,),
        perf={"failing": 1},
    ),
    # unreachable is the probe's field, not the text: the same words judge differently
    Case(
        "endpoint unreachable",
        endpoints=(failed("connection refused", unreachable=True),),
        status=UNKNOWN,
        messages=("at 192.0.2.25:25: connection refused",),
        ok=(None,),
        perf={"unknown": 1, "failing": 0},
    ),
    Case(
        "endpoint reached, then broke (same words)",
        endpoints=(failed("connection refused", unreachable=False),),
        status=CRITICAL,
        ok=(False,),
        perf={"unknown": 0, "failing": 1},
    ),
    Case(
        "endpoint timed out (any words)",
        endpoints=(failed("no answer in time", unreachable=True),),
        status=UNKNOWN,
        ok=(None,),
    ),
    Case(
        "endpoint when DNS was not observed",
        obs=None,
        endpoints=(serving(CUR),),
        status=UNKNOWN,
        published=None,
        signed=None,
        ok=(None,),
    ),
    Case(
        "gate: the next certificate's record is not published",
        gate=NXT,
        status=CRITICAL,
        messages=("deploying /ci/next.pem now would break DANE", "is not published on any server"),
    ),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.name)
def test_judge(c: Case) -> None:
    rep = run(c)
    assert rep.exit_code == c.status, [f.message for f in rep.findings]
    for m in c.messages:
        assert any(m in f.message for f in rep.findings), (m, [f.message for f in rep.findings])
    if c.status == OK:
        assert rep.findings == ()
    (svc,) = rep.services
    (owner,) = svc.owners
    assert (owner.published, owner.signed) == (c.published, c.signed)
    assert tuple(ep.ok for ep in svc.endpoints) == c.ok
    for key, want in c.perf.items():
        assert getattr(rep.perf, key) == want, (key, rep.perf)
    assert rep.perf.warnings == sum(1 for f in rep.findings if f.severity == WARNING)
    assert rep.perf.criticals == sum(1 for f in rep.findings if f.severity == CRITICAL)


@pytest.mark.parametrize(
    ("days_left", "status"),
    [(15, OK), (14, OK), (13, WARNING), (-1, WARNING)],  # the boundary: CERT_WARN_SECONDS
)
def test_cert_expiry_boundary(days_left: int, status: int) -> None:
    m = CUR
    assert m.leaf is not None
    not_after = m.leaf.not_valid_after_utc.timestamp()
    c = Case("expiry", now=not_after - days_left * 86400)
    c.obs = observed(server("ns1", rec(CUR), expiry=c.now + 10 * 86400))
    rep = run(c)
    # an expired certificate fails DANE nowhere here (no endpoints): the warning is the verdict
    assert rep.exit_code == status, [f.message for f in rep.findings]
    assert rep.perf.cert_expiry_no_next_min_seconds == days_left * 86400
    assert (rep.perf.cert_expiry_no_next_min_seconds < CERT_WARN_SECONDS) == (status == WARNING)


def test_an_expiring_certificate_with_a_next_one_is_not_a_warning() -> None:
    published_both = TlsaRRset.of(300, [*rec(SOON).records, *rec(NXT).records])
    c = Case("soon+next", obs=observed(server("ns1", published_both)))
    c.slots = (SlotFacts(NEXT_SLOT, SOON, None, NXT),)
    rep = run(c)
    assert rep.exit_code == OK, [f.message for f in rep.findings]
    assert rep.perf.cert_expiry_no_next_min_seconds is None
    assert rep.perf.cert_expiry_min_seconds is not None
    (cert_rep,) = rep.services[0].certs
    sr = cert_rep.swap_readiness
    # published everywhere, but no rollover state says for how long: not ready (safety first)
    assert sr is not None and sr.published and not sr.ready and "not known" in sr.detail


def test_a_next_certificate_published_nowhere_is_not_ready() -> None:
    rep = run(Case("next unpublished", slots=(SlotFacts(NEXT_SLOT, CUR, None, NXT),)))
    (cert_rep,) = rep.services[0].certs
    sr = cert_rep.swap_readiness
    assert sr is not None and not sr.published and not sr.ready
    assert sr.missing == (f"{OWNER} 3 1 1 {NXT.spki_sha256[:12]}… is not published on any server",)
    assert sr.detail == "1 record(s) of the next certificate missing"


def test_a_next_certificate_already_deployed_is_not_next() -> None:
    c = Case("next==deployed", slots=(SlotFacts(NEXT_SLOT, CUR, None, CUR),))
    rep = run(c)
    (cert_rep,) = rep.services[0].certs
    assert cert_rep.next is None and cert_rep.swap_readiness is None


def test_gate_passes_when_published_everywhere() -> None:
    both = TlsaRRset.of(300, [*rec(CUR).records, *rec(NXT).records])
    rep = run(Case("gate ok", obs=observed(server("ns1", both), server("ns2", both)), gate=NXT))
    assert rep.exit_code == OK, [f.message for f in rep.findings]
    assert rep.next_gate is not None and rep.next_gate.ok and rep.next_gate.missing == ()


def test_gate_blind_is_not_ok() -> None:
    rep = run(Case("gate blind", obs=None, gate=NXT))
    assert rep.next_gate is not None and not rep.next_gate.ok
    assert rep.exit_code == CRITICAL
    assert rep.next_gate.missing == ("service mail: timeout after 3s",)


def test_expiring_with_next_equal_to_deployed_says_so() -> None:
    """``next`` is configured but holds the deployed certificate: not "no next certificate is
    configured" (it is), but what is true: nothing to roll over."""
    c = Case("soon, next==deployed", obs=observed(server("ns1", rec(SOON))))
    c.slots = (SlotFacts(NEXT_SLOT, SOON, None, SOON),)
    msgs = [f.message for f in run(c).findings]
    assert any(
        "expires in 4d23h and the next certificate is the deployed one; nothing to roll over" in m
        for m in msgs
    ), msgs
    assert not any("no next certificate is configured" in m for m in msgs), msgs
    c.slots = (SlotFacts(SLOT, SOON),)  # no `next:` at all: that wording stays
    assert any("and no next certificate is configured" in f.message for f in run(c).findings)
