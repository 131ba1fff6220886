"""Whose is each published record (tlsarotate.ownership), without the planner around it."""

from __future__ import annotations

import datetime as dt

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import material, ownership, pki, planner, records
from tlsarotate.material import Material

OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
P311, P301 = records.parse_params("3 1 1"), records.parse_params("3 0 1")
CA = pki.make_ca(not_before=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), days=3650)


def cert(host: str = "mx.example.test") -> Material:
    return material.parse(pki.fullchain_pem(pki.make_leaf(CA, [host]), CA), host)


A, OLD, B = cert(), cert(), cert("mx-b.example.test")
SLOTS = (planner.SlotInput("default", A),)


def rec(m: Material, p: records.Params = P311) -> TLSA:
    return records.build(m, p)


def test_parse_retiring_reads_record_texts_and_skips_what_is_no_record() -> None:
    got = ownership.parse_retiring([records.to_text(rec(OLD)), "not a record"])
    assert got == frozenset({rec(OLD)})


def test_a_state_that_never_tracked_ours_counts_known_certificates_and_retiring() -> None:
    current = {OWNER: {rec(A), rec(OLD), rec(B)}}
    retiring = frozenset({rec(OLD)})
    ours = ownership.ours_still_published(SLOTS, (OWNER,), None, retiring, current)
    assert ours == {OWNER.to_text(): sorted(records.to_text(r) for r in (rec(A), rec(OLD)))}


def test_tracked_ours_keeps_only_what_is_still_published() -> None:
    known = {OWNER.to_text(): [records.to_text(rec(B)), records.to_text(rec(OLD))]}
    current = {OWNER: {rec(A), rec(B)}}
    ours = ownership.ours_still_published(SLOTS, (OWNER,), known, frozenset(), current)
    assert ours == {OWNER.to_text(): [records.to_text(rec(B))]}


def classify(
    mode: str, ours: list[TLSA], retiring: frozenset[TLSA] = frozenset()
) -> dict[TLSA, str]:
    current = {OWNER: {rec(A), rec(A, P301), rec(OLD), rec(B)}}
    books = ownership.Ownership(
        SLOTS,
        (OWNER,),
        (P311,),
        mode,
        retiring,
        current,
        {OWNER.to_text(): [records.to_text(r) for r in ours]},
    )
    return {r: books.classify(OWNER, r) for r in current[OWNER]}


def test_classify() -> None:
    # ours: the deployed certificate's old parameters, a retiring and a stale record
    got = classify("shared", [rec(A, P301), rec(OLD), rec(B)], frozenset({rec(OLD)}))
    assert got == {
        rec(A): ownership.WANT,
        rec(A, P301): ownership.OLD_PARAMETERS,
        rec(OLD): ownership.OLD_CERTIFICATE,
        rec(B): ownership.STALE,
    }
    # not ours: another writer's, kept; claimed exclusively: stale; forced: removed as such
    assert classify("shared", [])[rec(B)] == ownership.FOREIGN
    assert classify("exclusive", [])[rec(B)] == ownership.STALE
    assert classify("force", [])[rec(B)] == ownership.FORCED


def test_whose_names_exactly_the_certificates_whose_records_are_added() -> None:
    nxt, key = cert(), cert()
    slot = planner.SlotInput("default", A, nxt, key)
    assert ownership.whose([rec(nxt)], (slot,)) == "the next certificate"
    assert ownership.whose([rec(A)], (slot,)) == "the deployed certificate"
    assert ownership.whose([rec(A), rec(nxt)], (slot,)) == "the deployed and next certificates"
    assert ownership.whose([rec(key)], (slot,)) == "the next key"
    assert ownership.whose([rec(nxt), rec(key)], (slot,)) == "the next certificate and the next key"
    # next == deployed: its records are the deployed certificate's
    same = planner.SlotInput("default", A, A)
    assert ownership.whose([rec(A)], (same,)) == "the deployed certificate"
    two = (slot, planner.SlotInput("rsa", OLD, B))
    assert ownership.whose([rec(nxt), rec(B)], two) == "the next certificates ('default', 'rsa')"
    assert (
        ownership.whose([rec(A), rec(B)], two)
        == "the deployed certificate ('default') and the next certificate ('rsa')"
    )
