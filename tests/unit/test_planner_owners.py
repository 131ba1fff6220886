"""Whose records are they? The planner on an owner another writer shares (issue #15).

Pure planner tests, table-driven: a record no certificate of the service accounts for is
removed only when this instance published it (``State.ours``), when the service claims its
owners exclusively, or with ``--force-cleanup``; otherwise it is another writer's (foreign):
kept, listed, and every combination it uses gets our own record too, so that each host's chain
is matched by every usage/selector/mtype combination present.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tests.support.helpers import rd
from tlsarotate import config, material, ownership, phases, pki, planner, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.errors import ConfigError
from tlsarotate.material import Material
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.state import State

ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
P311, P301, P312 = (records.parse_params(t) for t in ("3 1 1", "3 0 1", "3 1 2"))
# the certificates below are valid from their making on: plan at a moment they are valid
NOW = float(int(time.time())) + 60

_CA = pki.make_ca()


def cert(host: str = "mx.example.test") -> Material:
    return material.parse(pki.fullchain_pem(pki.make_leaf(_CA, [host]), _CA), host)


A, A_NEXT, B = cert(), cert(), cert("mx-b.example.test")  # host A's two, host B's one


def recs(m: Material, *params: records.Params) -> set[TLSA]:
    return set(records.build_all(m, params))


def texts(rds: set[TLSA]) -> list[str]:
    return sorted(records.to_text(r) for r in rds)


def visible(published: Mapping[dns.name.Name, TlsaRRset]) -> Observation:
    """Every authoritative server serves exactly what is published, signed."""
    return Observation(
        ZONE,
        (
            ServerAnswer(
                "ns1 127.0.0.1",
                "127.0.0.1",
                rrsets={OWNER: published.get(OWNER)},
                serial=1,
                signed={OWNER: True},
            ),
        ),
        zone_signed=True,
    )


def plan(
    published: set[TLSA],
    *,
    params: Sequence[records.Params] = (P311,),
    nxt: Material | None = None,
    mode: str = "shared",
    state: State | None = None,
) -> planner.Plan:
    pub = {OWNER: TlsaRRset.of(300, published)} if published else {}
    st = state or State("mail")
    if st.digest is None:
        # long visible already: a state that observed this very RRset an hour ago
        from tlsarotate.change import published_digest

        st = st.with_(digest=published_digest(pub, [OWNER]), visible_since=NOW - 3600, ttl_seen=300)
    return planner.plan(
        planner.PlanInput(
            service="mail",
            zone=ZONE,
            owners=(OWNER,),
            ttl=300,
            params=tuple(params),
            slots=(planner.SlotInput("default", A, nxt),),
            published=pub,
            observation=visible(pub),
            state=st,
            now=NOW,
            safety_margin=0,
            owners_mode=mode,
        )
    )


def after(p: planner.Plan, published: set[TLSA]) -> set[TLSA]:
    """The records at OWNER once the plan's write is made."""
    if not p.change:
        return published
    (ch,) = p.change.changes
    return set(ch.new.records) if ch.new else set()


OTHER = rd(7)  # a 3 1 1 matching none of our certificates
OURS = {OWNER.to_text(): [records.to_text(OTHER)]}


@dataclass
class Case:
    name: str
    mode: str
    ours: dict[str, list[str]] | None  # State.ours (None: a state that never tracked it)
    retiring: list[str] = field(default_factory=list)
    phase: str = phases.IDLE
    removed_why: str | None = None  # None: OTHER is kept (and listed as foreign)


CASES = [
    Case("foreign kept (tracked state, not ours)", "shared", {}),
    Case("foreign kept (first run / state from before tracking)", "shared", None),
    Case("ours removed", "shared", OURS, phase=phases.CLEANUP, removed_why="stale"),
    Case(
        "ours, of the replaced certificate",
        "shared",
        OURS,
        retiring=[records.to_text(OTHER)],
        phase=phases.CLEANUP,
        removed_why="old certificate",
    ),
    Case(
        "migration: the old state's retiring list counts as ours",
        "shared",
        None,
        retiring=[records.to_text(OTHER)],
        phase=phases.CLEANUP,
        removed_why="old certificate",
    ),
    Case("exclusive removes", "exclusive", {}, phase=phases.CLEANUP, removed_why="stale"),
    Case("force removes", "force", {}, phase=phases.CLEANUP, removed_why=ownership.FORCED),
    Case("force, ours: plainly stale", "force", OURS, phase=phases.CLEANUP, removed_why="stale"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_whose_record_decides_whether_it_goes(case: Case) -> None:
    published = recs(A, P311) | {OTHER}
    st = State("mail", ours=case.ours, retiring=case.retiring)
    p = plan(published, mode=case.mode, state=st)
    assert p.phase == case.phase, p.summary
    if case.removed_why is None:
        assert p.change is None
        assert [(m.record, m.why) for m in p.foreign] == [(OTHER, ownership.FOREIGN)]
        assert p.stale == ()
        assert "1 record(s) of other writers kept" in p.summary
    else:
        assert p.foreign == ()
        assert [(m.record, m.why) for m in p.removals] == [(OTHER, case.removed_why)]
        assert after(p, published) == recs(A, P311)
        if case.removed_why == ownership.FORCED:
            assert "--force-cleanup" in p.summary


def test_foreign_record_is_kept_while_a_rollover_runs_its_course() -> None:
    """Publish, swap and retire all leave the other writer's record in place."""
    b = recs(B, P311)
    published = recs(A, P311) | b
    p = plan(published, nxt=A_NEXT)
    assert p.phase == phases.PUBLISH
    published = after(p, published)
    assert published == recs(A, P311) | recs(A_NEXT, P311) | b
    # what the write adds is ours from now on (claimed before the write is even made)
    assert p.state.ours == {OWNER.to_text(): texts(recs(A, P311) | recs(A_NEXT, P311))}
    p = plan(published, nxt=A_NEXT, state=p.state.with_(digest=None))
    assert p.phase == phases.SWAP and p.install == ("default",)
    # after the swap: the engine lists the old certificate's records as retiring
    st = p.state.with_(retiring=texts(recs(A, P311)), digest=None)
    p2 = planner.plan(
        planner.PlanInput(
            "mail",
            ZONE,
            (OWNER,),
            300,
            (P311,),
            (planner.SlotInput("default", A_NEXT, A_NEXT),),
            {OWNER: TlsaRRset.of(300, published)},
            visible({OWNER: TlsaRRset.of(300, published)}),
            st.with_(visible_since=NOW - 3600),
            NOW,
            0,
        )
    )
    assert p2.phase == phases.CLEANUP
    assert {m.record for m in p2.removals} == recs(A, P311)
    assert after(p2, published) == recs(A_NEXT, P311) | b


def test_foreign_combination_gets_our_own_record() -> None:
    """Host B publishes 3 1 1 and 3 0 1, we are configured for 3 1 1 only: B's 3 0 1 is a
    combination our chain must match too, so we add our own 3 0 1."""
    b = recs(B, P311, P301)
    published = recs(A, P311) | b
    assert not records.accepts(published, A.chain_der)  # the danger: B's 3 0 1 fails us
    p = plan(published)
    assert p.phase == phases.PUBLISH
    new = after(p, published)
    assert new == published | recs(A, P301)
    assert records.accepts(new, A.chain_der) and records.accepts(new, B.chain_der)
    assert any("also publishing 3 0 1" in w for w in p.warnings)
    # and it stays: not "old parameters" while B's 3 0 1 is there
    p = plan(new, state=p.state.with_(digest=None))
    assert p.phase == phases.IDLE and p.change is None
    # B drops its 3 0 1: ours is now a parameter nobody needs, retired after the wait
    without = new - recs(B, P301)
    p = plan(without, state=p.state.with_(digest=None))
    assert p.phase == phases.RETIRE_PARAMS
    assert {(m.record, m.why) for m in p.removals} == {(r, "old parameters") for r in recs(A, P301)}


def test_next_certificate_gets_the_foreign_combination_before_a_swap() -> None:
    """The swap needs the next chain matched by every combination present, B's included."""
    b = recs(B, P311, P312)
    published = recs(A, P311, P312) | recs(A_NEXT, P311) | b  # next's 3 1 2 missing
    p = plan(published, nxt=A_NEXT)
    assert p.phase == phases.PUBLISH and not p.install
    new = after(p, published)
    assert new - published == recs(A_NEXT, P312)
    for m in (A, A_NEXT, B):
        assert records.accepts(new, m.chain_der)


def test_a_combination_the_foreign_records_lack_is_not_introduced() -> None:
    """We are configured for 3 1 1 and 3 1 2, host B publishes only 3 1 1: a 3 1 2 from us
    would make clients that prefer SHA-512 reject B's certificate (RFC 7671 §9). Held back,
    with a note; B's chain stays matched."""
    b = recs(B, P311)
    p = plan(b, params=(P311, P312))
    assert p.phase == phases.PUBLISH
    new = after(p, b)
    assert new == b | recs(A, P311)
    assert records.accepts(new, A.chain_der) and records.accepts(new, B.chain_der)
    assert any("not adding 3 1 2" in w for w in p.warnings), p.warnings
    # exclusive: the owner is ours alone, so B's record is stale and 3 1 2 goes out
    p = plan(b, params=(P311, P312), mode="exclusive")
    assert after(p, b) == b | recs(A, P311, P312)


def test_a_combination_already_present_is_kept_and_extended() -> None:
    """Our own 3 1 2 was there before B came: not held back (removing it is B's business:
    its tlsarotate adds its own 3 1 2)."""
    published = recs(A, P311, P312) | recs(B, P311)
    p = plan(published, params=(P311, P312), nxt=A_NEXT)
    new = after(p, published)
    assert new - published == recs(A_NEXT, P311, P312)


def test_unusable_foreign_combination_is_only_a_note() -> None:
    """A foreign record with parameters nobody can build (usage 2 needs a CA certificate
    above the leaf; ours are leaf-only here): no record for it, a note, nothing removed."""
    leaf_only = material.parse(pki.make_leaf(_CA, ["mx.example.test"]).cert_pem, "leaf")
    other = records.from_text("2 0 1 " + "cd" * 32)
    published = set(records.build_all(leaf_only, [P311])) | {other}
    pub = {OWNER: TlsaRRset.of(300, published)}
    from tlsarotate.change import published_digest

    p = planner.plan(
        planner.PlanInput(
            "mail",
            ZONE,
            (OWNER,),
            300,
            (P311,),
            (planner.SlotInput("default", leaf_only, None),),
            pub,
            visible(pub),
            State("mail", digest=published_digest(pub, [OWNER]), visible_since=NOW - 3600),
            NOW,
            0,
        )
    )
    assert p.change is None and [m.record for m in p.foreign] == [other]
    assert any("cannot match the other writer's 2 0 1" in w for w in p.warnings), p.warnings


def test_ours_is_pruned_to_what_is_there() -> None:
    gone = records.to_text(rd(8))
    st = State("mail", ours={OWNER.to_text(): [gone], "_443._tcp.old.example.test.": [gone]})
    p = plan(recs(A, P311), state=st)
    assert p.phase == phases.IDLE and p.state.ours == {}


def test_first_run_counts_the_records_of_known_certificates_as_ours() -> None:
    """A state without ``ours``: the deployed certificate's records with a parameter no longer
    configured are ours (retired after the wait), an unknown record is foreign."""
    published = recs(A, P311, P301) | {OTHER}
    p = plan(published, state=State("mail", ours=None))
    assert p.phase == phases.RETIRE_PARAMS
    assert {m.record for m in p.removals} == recs(A, P301)
    assert [m.record for m in p.foreign] == [OTHER]
    assert p.state.ours == {OWNER.to_text(): texts(recs(A, P311, P301))}


def test_after_write_folds_additions_and_removals() -> None:
    old, keep, new = rd(1), rd(2), rd(3)
    change = ZoneChange(
        ZONE, (OwnerChange(OWNER, TlsaRRset.of(300, [old, keep]), TlsaRRset.of(300, [keep, new])),)
    )
    st = State("mail", ours={OWNER.to_text(): texts({old, keep})})
    written = phases.after_write(st, change, phases.PUBLISH, 5.0)
    assert written.ours == {OWNER.to_text(): texts({keep, new})}
    assert (written.last_step, written.updated) == (phases.PUBLISH, 5.0)
    assert phases.claim(st, change).ours == {OWNER.to_text(): texts({old, keep, new})}
    gone = ZoneChange(ZONE, (OwnerChange(OWNER, TlsaRRset.of(300, [old, keep]), None),))
    assert phases.after_write(st, gone, phases.CLEANUP, 5.0).ours == {}
    assert phases.claim(st, None) is st
    assert phases.after_write(st, None, phases.PUBLISH, 5.0).ours == st.ours
    fresh = phases.after_write(State("mail"), change, phases.PUBLISH, 5.0)
    assert fresh.ours == {OWNER.to_text(): texts({new})}


def test_ours_round_trips_and_is_validated() -> None:
    st = State("mail", ours={OWNER.to_text(): [records.to_text(OTHER)]})
    assert State.from_json(json.loads(json.dumps(st.to_json()))) == st
    doc = State("mail").to_json()
    del doc["ours"]  # a state file written before the field existed
    assert State.from_json(doc).ours is None
    bad: object
    for bad in ([], {"x": "3 1 1 ab"}, {"x": ["3 1 1 zz"]}):
        with pytest.raises(ValueError, match="field 'ours' has a wrong value"):
            State.from_json({**doc, "ours": bad})


CONFIG = """\
state_dir: state
providers:
  m: {{type: memory, zones: [example.test.]}}
services:
  - name: mail
    zone: example.test.
    provider: m
    hosts: [mx.example.test]
    certificate: {{deployed: {{cert: a.pem, key: a.key}}}}
{extra}"""


@pytest.mark.parametrize(
    ("extra", "mode"), [("", "shared"), ("    owners: exclusive\n", "exclusive")]
)
def test_config_owners_key(extra: str, mode: str, tmp_path: Path) -> None:
    cfg = config.parse(CONFIG.format(extra=extra), tmp_path / "c.yaml")
    assert cfg.services[0].owners_mode == mode


@pytest.mark.parametrize("value", ["mine", "true", "[shared]"])
def test_config_owners_bad_value_is_one_line(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        config.parse(CONFIG.format(extra=f"    owners: {value}\n"), tmp_path / "c.yaml")
    text = str(e.value)
    assert "\n" not in text and "c.yaml:10: services[0].owners:" in text, text


def test_plan_json_and_text_list_the_foreign_records() -> None:
    from tlsarotate.plan_render import plan_json, plan_text

    p = plan(recs(A, P311) | {OTHER})
    doc = plan_json(p, NOW)
    assert doc["foreign"] == [
        {
            "owner": OWNER.to_text(),
            "record": records.to_text(OTHER),
            "why": "foreign",
            "reason": ownership.FOREIGN_REASON,
        }
    ]
    assert doc["changes"] == [] and doc["stale"] == []
    lines = plan_text(p, NOW)
    row = f"  foreign: {OWNER} TLSA {records.to_text(OTHER)} (kept: not published by this "
    assert row + "tlsarotate)" in lines, lines
    forced = plan_json(plan(recs(A, P311) | {OTHER}, mode="force"), NOW)
    assert forced["foreign"] == []
    assert [(c["op"], c["record"], c["why"]) for c in forced["changes"]] == [
        ("remove", records.to_text(OTHER), ownership.FORCED)
    ]


def test_a_different_ttl_on_a_shared_rrset_is_no_reason_to_write() -> None:
    """The TTL is the whole RRset's: two configs with different ``ttl:`` would each set
    theirs in turn, for ever. With foreign records there, a note; alone, the TTL is fixed."""
    published = recs(A, P311) | recs(B, P311)
    pub = {OWNER: TlsaRRset.of(600, published)}
    from tlsarotate.change import published_digest

    def run(mode: str) -> planner.Plan:
        return planner.plan(
            planner.PlanInput(
                "mail",
                ZONE,
                (OWNER,),
                300,
                (P311,),
                (planner.SlotInput("default", A, None),),
                pub,
                visible(pub),
                State(
                    "mail", digest=published_digest(pub, [OWNER]), visible_since=NOW - 3600, ours={}
                ),
                NOW,
                0,
                owners_mode=mode,
            )
        )

    p = run("shared")
    assert p.phase == phases.IDLE and p.change is None
    assert any("TTL is 600, not the configured 300" in w for w in p.warnings), p.warnings
    p = run("exclusive")
    assert p.phase == phases.PUBLISH and p.summary == "set the TTL to 300"
