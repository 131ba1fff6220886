"""CNAME chains at TLSA names (tlsarotate.cname) and the planner with a shared owner: pure."""

from __future__ import annotations

import time
from dataclasses import replace

import dns.name
import pytest

from tlsarotate import cname, material, phases, pki, planner, records
from tlsarotate.change import TlsaRRset, published_digest
from tlsarotate.cname import Cname
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.state import CachedRRset, State

N = dns.name.from_text
ZONE = N("example.test.")
SHARED = N("_dane.example.test.")
A1, A2 = N("_25._tcp.mx1.example.test."), N("_25._tcp.mx2.example.test.")
NOW = float(int(time.time())) + 60
_CA = pki.make_ca()
CERT = material.parse(
    pki.fullchain_pem(pki.make_leaf(_CA, ["mx1.example.test", "mx2.example.test"]), _CA), "c"
)
NEXT = material.parse(
    pki.fullchain_pem(pki.make_leaf(_CA, ["mx1.example.test", "mx2.example.test"]), _CA), "n"
)
P311 = records.parse_params("3 1 1")


def test_follow_a_chain_a_loop_and_an_overlong_one() -> None:
    chain = cname.follow(
        A1, {A1: Cname(N("mid.example.test."), 60), N("mid.example.test."): Cname(SHARED, 30)}
    )
    assert (chain.names, chain.ttls, chain.problem) == (
        (A1, N("mid.example.test."), SHARED),
        (60, 30),
        None,
    )
    loop = cname.follow(A1, {A1: Cname(A2, 1), A2: Cname(A1, 1)})
    assert loop.problem == f"CNAME loop: {A1} -> {A2} -> {A1}"
    long = {N(f"n{i}.example.test."): Cname(N(f"n{i + 1}.example.test."), 1) for i in range(20)}
    too = cname.follow(N("n0.example.test."), long)
    assert too.problem is not None and "longer than 8 steps" in too.problem
    assert too.steps == cname.MAX_CHAIN
    assert cname.follow(A1, {}).names == (A1,)


def server(
    label: str = "ns1",
    cnames: dict[dns.name.Name, Cname] | None = None,
    rrsets: dict[dns.name.Name, TlsaRRset | None] | None = None,
    signed: dict[dns.name.Name, bool | None] | None = None,
    error: str | None = None,
) -> ServerAnswer:
    return ServerAnswer(
        label,
        "127.0.0.1",
        error=error,
        rrsets=rrsets or {},
        signed=signed or {},
        cnames=cnames or {},
        serial=1,
    )


@pytest.mark.parametrize(
    ("srv", "needle"),
    [
        (server(cnames={A1: Cname(SHARED, 60)}), None),
        (server(rrsets={A1: TlsaRRset.of(60, [])}), "has its own TLSA RRset"),
        (server(), "is not a CNAME to _dane.example.test."),
        (server(cnames={A1: Cname(N("x.example.test."), 60)}), "is a CNAME to x.example.test."),
        (server(cnames={A1: Cname(N("_dane.other.test."), 60)}), "leads out of zone"),
        (
            server(cnames={A1: Cname(SHARED, 60)}, signed={A1: False}),
            "the CNAME at _25._tcp.mx1.example.test. has no valid RRSIG",
        ),
        (server(error="timeout"), None),  # the lagging servers name it already
    ],
)
def test_alias_problem(srv: ServerAnswer, needle: str | None) -> None:
    why = cname.alias_problem(srv, A1, SHARED, ZONE, require_signed=True)
    assert (why is None) if needle is None else (why is not None and needle in why), why


def test_propagating_or_broken() -> None:
    good = server("ns1", cnames={A1: Cname(SHARED, 60), A2: Cname(SHARED, 60)})
    bad = server("ns2", cnames={A1: Cname(SHARED, 60)})
    waiting, broken = cname.propagating_or_broken([good, bad], [A1, A2], SHARED, ZONE, True)
    assert broken == [] and len(waiting) == 1 and "ns2" in waiting[0]
    waiting, broken = cname.propagating_or_broken([bad], [A1, A2], SHARED, ZONE, True)
    assert waiting == [] and len(broken) == 1


def test_while_broken_remembers_one_unknown_rrset() -> None:
    st = State("mail").with_(visible_since=NOW, cached=[CachedRRset({"x": []}, 10, NOW)])
    once = cname.while_broken(st, 300)
    twice = cname.while_broken(once, 600)
    assert once.visible_since is None
    assert [c for c in twice.cached if c.records is None] == [CachedRRset(None, 600)]


def observation(
    cnames: dict[dns.name.Name, Cname], pub: dict[dns.name.Name, TlsaRRset]
) -> Observation:
    return Observation(
        ZONE,
        (
            server(
                cnames=cnames,
                rrsets={SHARED: pub.get(SHARED), **{a: None for a in cnames}},
                signed={SHARED: True, **{a: True for a in cnames}},
            ),
        ),
        zone_signed=True,
    )


def plan(
    cnames: dict[dns.name.Name, Cname],
    nxt: material.Material | None = NEXT,
    st: State | None = None,
    obs: Observation | None = None,
    published: bool = True,
) -> planner.Plan:
    recs = set(records.build_all(CERT, [P311])) | (
        set(records.build_all(nxt, [P311])) if nxt else set()
    )
    pub = {SHARED: TlsaRRset.of(60, recs)} if published else {}
    st = st or State("mail").with_(
        digest=published_digest(pub, [SHARED]), visible_since=NOW - 3600, ttl_seen=60
    )
    return planner.plan(
        planner.PlanInput(
            service="mail",
            zone=ZONE,
            owners=(SHARED,),
            ttl=60,
            params=(P311,),
            slots=(planner.SlotInput("default", CERT, nxt),),
            published=pub,
            observation=obs or observation(cnames, pub),
            state=st,
            now=NOW,
            safety_margin=0,
            aliases=(A1, A2),
        )
    )


def test_planner_swaps_when_every_alias_leads_to_the_shared_owner() -> None:
    p = plan({A1: Cname(SHARED, 60), A2: Cname(SHARED, 60)})
    assert p.phase == phases.SWAP


def test_planner_blocks_the_swap_while_an_alias_is_wrong_and_waits_after_the_fix() -> None:
    p = plan({A1: Cname(SHARED, 60), A2: Cname(N("old.example.test."), 900)})
    assert p.phase == phases.BLOCKED
    assert "is a CNAME to old.example.test." in p.summary
    # fixed: what caches held for mx2 is unknown: the swap waits the longest TTL seen (900)
    fixed = plan({A1: Cname(SHARED, 60), A2: Cname(SHARED, 60)}, st=p.state)
    assert fixed.phase == phases.WAIT_TTL
    assert fixed.ready_at == NOW + 900


def test_planner_counts_the_cname_ttl_in_the_wait() -> None:
    p = plan({A1: Cname(SHARED, 600), A2: Cname(SHARED, 60)}, nxt=None)
    assert p.phase == phases.IDLE
    assert p.state.ttl_seen == 600


def test_an_alias_with_its_own_rrset_is_waited_out_after_the_fix() -> None:
    obs = observation({A1: Cname(SHARED, 60)}, {})
    own = TlsaRRset.of(7200, records.build_all(CERT, [P311]))
    srv = obs.servers[0]
    broken_obs = Observation(
        ZONE, (replace(srv, rrsets={**srv.rrsets, A2: own}),), zone_signed=True
    )
    p = plan({A1: Cname(SHARED, 60)}, obs=broken_obs)
    assert p.phase == phases.BLOCKED and "has its own TLSA RRset" in p.summary
    fixed = plan({A1: Cname(SHARED, 60), A2: Cname(SHARED, 60)}, st=p.state)
    assert fixed.phase == phases.WAIT_TTL and fixed.ready_at == NOW + 7200


def test_a_shared_owner_that_is_a_cname_itself_blocks_before_any_write() -> None:
    cnames = {A1: Cname(SHARED, 60), A2: Cname(SHARED, 60), SHARED: Cname(N("x.example.test."), 60)}
    lines = cname.owner_is_alias([server(cnames=cnames)], [SHARED])
    assert len(lines) == 1 and "is itself a CNAME to x.example.test." in lines[0]
    p = plan(cnames, nxt=None, published=False)  # a publish would be due: not made
    assert p.phase == phases.BLOCKED and p.change is None
    assert "the shared owner _dane.example.test. is itself a CNAME" in p.summary
