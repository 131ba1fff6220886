"""CA sets for DANE-TA (config ``ca_set``, tlsarotate.caset): the planner pins every CA of the
set, swaps a certificate of a pinned CA once its record is safe, refuses one whose issuer is not
in the set, and retires a dropped CA's records only once the served chain does not use it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import dns.name
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import bootstrap, caset, material, phases, pki, plan_render, planner, records
from tlsarotate.change import TlsaRRset, published_digest
from tlsarotate.check.facts import CheckFacts, ServiceFacts, SlotFacts
from tlsarotate.check.judge import judge
from tlsarotate.check.report import STATUS, CheckReport
from tlsarotate.config import CertPaths, CertSlot, Service
from tlsarotate.errors import MaterialError
from tlsarotate.material import Material
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.ownership import OLD_CA
from tlsarotate.state import CachedRRset, State

ZONE = dns.name.from_text("example.test.")
HOST = "mx.example.test"
OWNER = records.owner_name(HOST, 25)
TTL = 300
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
P211, P311 = records.parse_params("2 1 1"), records.parse_params("3 1 1")
PARAMS = (P311, P211)
ROOT = pki.make_ca("root", not_before=START, days=3650)
R10, R11, R12 = (
    pki.make_ca(f"R{i}", issuer=ROOT, not_before=START, days=900) for i in (10, 11, 12)
)


def ca(issued: pki.Issued) -> caset.CaCert:
    return caset.parse(issued.cert_pem, f"{issued.cert.subject.rfc4514_string()}.pem")[0]


def leaf(issuer: pki.Issued) -> Material:
    cert = pki.make_leaf(issuer, [HOST], not_before=START, days=365)
    return material.parse(pki.fullchain_pem(cert, issuer), HOST)


DEPLOYED = leaf(R10)


def pins(*cas: pki.Issued) -> set[TLSA]:
    return {ca(c).pin(P211) for c in cas}


def ee(*ms: Material) -> set[TLSA]:
    return {records.build(m, P311) for m in ms}


def texts(rds: Iterable[TLSA]) -> list[str]:
    return sorted(records.to_text(r) for r in rds)


def settled(published: set[TLSA], **kw: object) -> State:
    """The state of an RRset ``published`` long ago and visible since."""
    return State(
        "mail",
        digest=published_digest({OWNER: TlsaRRset.of(TTL, published)}, (OWNER,)),
        visible_since=NOW - 10 * TTL,
        ttl_seen=TTL,
        records={OWNER.to_text(): texts(published)},
        ours={OWNER.to_text(): texts(published)},
    ).with_(**kw)


def plan(
    published: set[TLSA],
    cas: tuple[pki.Issued, ...],
    nxt: Material | None = None,
    state: State | None = None,
) -> planner.Plan:
    answer = ServerAnswer(
        "ns1", "192.0.2.1", rrsets={OWNER: TlsaRRset.of(TTL, published)}, signed={OWNER: True}
    )
    st = state or settled(published)
    return planner.plan(
        planner.PlanInput(
            service="mail",
            zone=ZONE,
            owners=(OWNER,),
            ttl=TTL,
            params=PARAMS,
            slots=(planner.SlotInput("default", DEPLOYED, nxt),),
            published={OWNER: TlsaRRset.of(TTL, published)},
            observation=Observation(ZONE, (answer,), zone_signed=True),
            state=st,
            now=NOW,
            safety_margin=0,
            hosts=(HOST,),
            ca_set=tuple(ca(c) for c in cas),
        )
    )


def added(p: planner.Plan) -> set[TLSA]:
    assert p.change is not None
    return {rd for ch in p.change.changes for rd in ch.added}


def test_every_ca_of_the_set_is_pinned_beside_the_served_chain() -> None:
    p = plan(ee(DEPLOYED) | pins(R10), (R10, R11, R12))
    assert p.phase == phases.PUBLISH
    assert added(p) == pins(R11, R12)
    assert p.summary == "pin 2 CA certificates (CN=R11, CN=R12) of ca_set"


def test_a_next_certificate_of_a_pinned_ca_swaps_with_no_write() -> None:
    nxt = leaf(R11)
    published = ee(DEPLOYED, nxt) | pins(R10, R11)
    p = plan(published, (R10, R11), nxt)
    assert p.phase == phases.SWAP and p.change is None
    assert [(x.ca, x.in_set, x.published, x.safe) for x in p.pins] == [("CN=R11", True, True, True)]


def test_a_pin_just_published_waits_for_caches_and_plan_says_so() -> None:
    nxt = leaf(R11)
    published = ee(DEPLOYED, nxt) | pins(R10, R11)
    older = CachedRRset({OWNER.to_text(): texts(ee(DEPLOYED, nxt) | pins(R10))}, TTL, NOW + 100)
    st = settled(published, visible_since=NOW - 10, cached=[older])
    p = plan(published, (R10, R11), nxt, st)
    assert p.phase == phases.WAIT_TTL and p.ready_at == NOW + 100
    assert [(x.published, x.safe) for x in p.pins] == [(True, False)]
    assert "  pin: next certificate 'default' needs 2 1 1 of CN=R11: published, not safe yet" in (
        plan_render.plan_text(p, NOW)
    )
    assert plan_render.plan_json(p, NOW)["pins"] == [
        {
            "certificate": "default",
            "params": "2 1 1",
            "ca": "CN=R11",
            "in_ca_set": True,
            "published": True,
            "safe": False,
        }
    ]


def test_a_next_certificate_of_a_ca_outside_the_set_is_blocked_naming_it() -> None:
    nxt = leaf(R12)
    published = ee(DEPLOYED, nxt) | pins(R10, R11)
    p = plan(published, (R10, R11), nxt)
    assert p.phase == phases.BLOCKED
    assert "issued by CN=R12, which is not in ca_set" in p.summary
    assert [(x.ca, x.in_set, x.published) for x in p.pins] == [("CN=R12", False, False)]
    assert p.change is None  # its pin is not published behind the config's back


def test_a_ca_dropped_from_the_set_is_retired_without_force() -> None:
    p = plan(ee(DEPLOYED) | pins(R10, R11, R12), (R10,))
    assert p.phase == phases.CLEANUP
    assert p.summary == "retire the records of CAs no longer in ca_set"
    assert {m.record for m in p.removals} == pins(R11, R12)
    assert {m.why for m in p.removals} == {OLD_CA}
    assert p.unsafe == ()  # 2 of 4 records: the config accounts for them


def test_the_served_issuer_stays_pinned_when_dropped_from_the_set() -> None:
    p = plan(ee(DEPLOYED) | pins(R10, R11), (R11,))
    assert p.phase == phases.IDLE  # R10's record matches what is served: never retired


def test_the_served_issuer_is_published_even_when_outside_the_set() -> None:
    p = plan(ee(DEPLOYED), (R11,))
    assert p.phase == phases.PUBLISH
    assert added(p) == pins(R10, R11)
    assert p.summary == "add the records of the deployed certificate and pin CN=R11 of ca_set"


def test_parse_refuses_a_leaf_in_one_line_naming_the_file() -> None:
    cert = pki.make_leaf(R10, [HOST])
    with pytest.raises(MaterialError) as e:
        caset.parse(cert.cert_pem + R11.cert_pem, "bundle.pem")
    assert str(e.value).startswith("bundle.pem: CN=mx.example.test is not a CA certificate")
    assert "\n" not in str(e.value)
    with pytest.raises(MaterialError, match=r"^junk\.pem: not a PEM or DER"):
        caset.parse(b"garbage", "junk.pem")


def test_parse_reads_every_certificate_of_a_bundle() -> None:
    got = caset.parse(R10.cert_pem + R11.cert_pem, "bundle.pem")
    assert [c.subject for c in got] == ["CN=R10", "CN=R11"]
    assert caset.member(got, DEPLOYED.chain_der, PARAMS)
    assert not caset.member(got[1:], DEPLOYED.chain_der, PARAMS)


# --- check: the CA set judged (tlsarotate.check.judge_caset) ---------------------------------


def check(
    published: set[TLSA],
    cas: tuple[caset.CaCert, ...],
    now: float = NOW,
    error: str | None = None,
    state: State | None = None,
) -> tuple[CheckReport, list[str]]:
    slot = CertSlot("default", CertPaths(cert=Path("/c.pem"), key=Path("/k.pem")), None)
    svc = Service(
        name="mail",
        zone=ZONE,
        provider="p",
        hosts=(HOST,),
        ports=(25,),
        protocol="tcp",
        ttl=TTL,
        params=PARAMS,
        certificates=(slot,),
        ca_set=(Path("/cas"),),
    )
    answer = ServerAnswer(
        "ns1", "192.0.2.1", rrsets={OWNER: TlsaRRset.of(TTL, published)}, signed={OWNER: True}
    )
    sf = ServiceFacts(
        service=svc,
        observation=Observation(ZONE, (answer,), zone_signed=True),
        observe_error=None,
        address_errors=(),
        endpoints=(),
        state=state,
        state_error=None,
        slot_inputs=None,
        slots=(SlotFacts(slot, DEPLOYED),),
        ca_set=cas,
        ca_set_error=error,
    )
    rep = judge(CheckFacts(now, (sf,), 0))
    return rep, [f"{STATUS[f.severity]} {f.message}" for f in rep.findings]


def test_check_is_ok_when_every_pin_is_published_and_the_issuer_pinned() -> None:
    rep, found = check(ee(DEPLOYED) | pins(R10, R11), (ca(R10), ca(R11)))
    assert found == [] and rep.exit_code == 0
    (svc,) = rep.services
    assert svc.ca_set is not None
    assert [(c.subject, c.published) for c in svc.ca_set.cas] == [
        ("CN=R10", True),
        ("CN=R11", True),
    ]
    assert svc.ca_set.issuer_in_set == (("default", True),)


def test_check_warns_about_an_unpublished_pin_an_expiring_ca_and_the_issuer_outside() -> None:
    soon = R11.cert.not_valid_after_utc.timestamp() - 5 * 86400
    rep, found = check(ee(DEPLOYED) | pins(R10), (ca(R11),), now=soon)
    assert rep.exit_code == 1  # WARNING: the served chain is still matched
    assert any(f.startswith("WARNING ca_set: CN=R11 (") and "expires in 5d" in f for f in found)
    assert any("issued by CN=R10, which is not in ca_set" in f for f in found), found
    (svc,) = rep.services
    assert svc.ca_set is not None
    assert [(c.subject, c.published) for c in svc.ca_set.cas] == [("CN=R11", False)]
    assert svc.ca_set.retired == ()  # R10's pin is the served issuer's: not awaiting retirement


def test_check_warns_about_pins_of_cas_dropped_from_the_set() -> None:
    published = ee(DEPLOYED) | pins(R10, R11, R12)
    _, found = check(published, (ca(R10), ca(R11)))  # no state: the planner keeps it
    assert next(f for f in found if "pins a CA" in f).endswith(
        "kept as another writer's: `apply --force-cleanup` removes it)"
    )
    rep, found = check(published, (ca(R10), ca(R11)), state=settled(published))
    assert rep.exit_code == 1
    (svc,) = rep.services
    assert svc.ca_set is not None
    assert svc.ca_set.retired == ((OWNER.to_text(), records.to_text(ca(R12).pin(P211))),)
    assert [f for f in found if "pins a CA that is not in ca_set" in f] == [
        f"WARNING {OWNER}: 2 1 1 {ca(R12).pin(P211).cert.hex()[:12]}… pins a CA that is not in "
        "ca_set (awaiting retirement: `tlsarotate apply` removes it)"
    ]


def test_check_expired_ca_and_unreadable_set() -> None:
    late = R11.cert.not_valid_after_utc.timestamp() + 86400
    _, found = check(ee(DEPLOYED) | pins(R10, R11), (ca(R10), ca(R11)), now=late)
    assert any(f.startswith("WARNING ca_set: CN=R11") and "expired 1d" in f for f in found), found
    rep, found = check(ee(DEPLOYED) | pins(R10), (), error="service 'mail' ca_set: /cas/x: boom")
    assert rep.exit_code == 3 and found == ["UNKNOWN service 'mail' ca_set: /cas/x: boom"]


def test_a_server_that_goes_back_to_records_without_the_pin_keeps_the_swap_waiting() -> None:
    """Found by the CA-set invariant machine: the set goes {R10, R11} -> {R10} -> {R10, R11}
    while a lagging secondary still serves the first RRset. The third RRset equals the first,
    so it is visible at once; then the secondary catches up with the second (without R11's
    pin) and only later with the third. Those answers may be cached: a certificate of R11 must
    wait their TTL after every server serves the third RRset again."""
    nxt = leaf(R11)
    third = ee(DEPLOYED, nxt) | pins(R10, R11)
    second = ee(DEPLOYED, nxt) | pins(R10)

    def observe(*served: set[TLSA]) -> Observation:
        return Observation(
            ZONE,
            tuple(
                ServerAnswer(
                    f"ns{i}",
                    "192.0.2.1",
                    rrsets={OWNER: TlsaRRset.of(TTL, rds)},
                    signed={OWNER: True},
                )
                for i, rds in enumerate(served)
            ),
            zone_signed=True,
        )

    def step(st: State, obs: Observation, now: float) -> planner.Plan:
        return planner.plan(
            planner.PlanInput(
                service="mail",
                zone=ZONE,
                owners=(OWNER,),
                ttl=TTL,
                params=PARAMS,
                slots=(planner.SlotInput("default", DEPLOYED, nxt),),
                published={OWNER: TlsaRRset.of(TTL, third)},
                observation=obs,
                state=st,
                now=now,
                safety_margin=0,
                hosts=(HOST,),
                ca_set=(ca(R10), ca(R11)),
            )
        )

    p = step(settled(third), observe(third, second), NOW)
    assert p.phase == phases.WAIT_PROPAGATION
    p = step(p.state, observe(third, third), NOW + 10)
    assert p.phase == phases.WAIT_TTL and p.ready_at == NOW + 10 + TTL
    assert [(x.published, x.safe) for x in p.pins] == [(True, False)]
    p = step(p.state, observe(third, third), NOW + 10 + TTL)
    assert p.phase == phases.SWAP


def test_a_first_certificate_of_a_ca_outside_the_set_is_not_installed() -> None:
    first = bootstrap.FirstSlot("default", leaf(R12))
    answer = ServerAnswer("ns1", "192.0.2.1", rrsets={OWNER: None}, signed={OWNER: True})
    p = planner.plan(
        planner.PlanInput(
            service="mail",
            zone=ZONE,
            owners=(OWNER,),
            ttl=TTL,
            params=PARAMS,
            slots=(),
            published={},
            observation=Observation(ZONE, (answer,), zone_signed=True),
            state=State("mail"),
            now=NOW,
            hosts=(HOST,),
            first=(first,),
            ca_set=(ca(R10), ca(R11)),
        )
    )
    assert p.phase == phases.BLOCKED and p.install == ()
    assert "is issued by CN=R12, which is not in ca_set" in p.summary


def test_without_ours_in_the_state_a_dropped_cas_pin_is_kept_as_foreign() -> None:
    published = ee(DEPLOYED) | pins(R10, R11)
    p = plan(published, (R10,), state=settled(published, ours=None))
    assert p.phase == phases.IDLE and p.change is None
    assert [m.record for m in p.foreign] == [ca(R11).pin(P211)]
