"""How a :class:`~tlsarotate.planner.Plan` is shown: text for people, JSON for programs, and
the exit codes of ``plan`` and ``apply``. Pure.

JSON plan schema (``plan --output json``, ``apply --output json``)::

    {"version": 1, "tool_version": "0.1.0", "exit": 0|1|2|4, "services": [
      {"service": "mail",
       "phase": "idle|publish|wait-propagation|wait-ttl|cleanup|retire-params|swap|blocked",
       "summary": "...", "pending": bool,
       "changes": [{"op": "add"|"remove", "owner": "_25._tcp.mx.example.com.", "ttl": 3600,
                    "record": "3 1 1 <hex>",
                    "why": "stale"|"old certificate"|"old parameters"|"foreign (forced)"
                           |"CA no longer in ca_set"|null}],
       "swap": ["default"],
       "ready_at": "2026-11-28T21:00:00Z"|null, "ready_in": 192|null,
       "waiting_for": ["ns2.example.com 192.0.2.2: serial 2026112801, still serving ..."],
       "stale": [{"owner": "...", "record": "3 1 1 <hex>", "why": "stale"}],
       "needs_force": [{"owner": "...", "stale": 2, "size": 4, "whole": false,
                        "reason": "... removes 2 of 4 records that no certificate ..."}],
       "foreign": [{"owner": "...", "record": "3 1 1 <hex>", "why": "foreign",
                    "reason": "not published by this tlsarotate ... kept; ..."}],
       "pins": [{"certificate": "default", "params": "2 1 1", "ca": "CN=R11,O=...",
                 "in_ca_set": true, "published": true, "safe": false}],
       "warnings": ["..."]}]}

``pins`` (with ``ca_set`` only): the usage 0/2 records each next certificate needs before
its swap, its issuer's, and whether every owner publishes them and every RRset a cache may
still hold has them (``safe``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tlsarotate import ownership, phases, records, timefmt
from tlsarotate.phases import BLOCKED, IDLE
from tlsarotate.planner import Plan


def change_rows(p: Plan) -> list[dict[str, Any]]:
    """The plan's write, one row per record: removals first (as they are applied), each
    with why it goes."""
    if not p.change:
        return []
    why = {(m.owner, m.record): m.why for m in p.removals + p.stale}
    rows: list[dict[str, Any]] = []
    for op in ("remove", "add"):
        for ch in p.change.changes:
            rds, rr = (ch.removed, ch.old) if op == "remove" else (ch.added, ch.new)
            rows += [
                {
                    "op": op,
                    "owner": ch.owner.to_text(),
                    "ttl": rr.ttl if rr else None,
                    "record": records.to_text(rd),
                    "why": why.get((ch.owner, rd)) if op == "remove" else None,
                }
                for rd in rds
            ]
    return rows


def plan_json(p: Plan, now: float) -> dict[str, Any]:
    return {
        "service": p.service,
        "phase": p.phase,
        "summary": p.summary,
        "pending": p.pending,
        "changes": change_rows(p),
        "swap": list(p.install),
        "ready_at": timefmt.iso(p.ready_at),
        "ready_in": None if p.ready_at is None else max(0, round(p.ready_at - now)),
        "waiting_for": list(p.waiting_for),
        "stale": [
            {"owner": m.owner.to_text(), "record": records.to_text(m.record), "why": m.why}
            for m in p.stale
        ],
        "foreign": [
            {
                "owner": m.owner.to_text(),
                "record": records.to_text(m.record),
                "why": m.why,
                "reason": ownership.FOREIGN_REASON,
            }
            for m in p.foreign
        ],
        "needs_force": [u.to_json() for u in p.unsafe],
        "pins": [
            {
                "certificate": x.slot,
                "params": str(x.params),
                "ca": x.ca,
                "in_ca_set": x.in_set,
                "published": x.published,
                "safe": x.safe,
            }
            for x in p.pins
        ],
        "warnings": list(p.warnings),
    }


def plan_text(p: Plan, now: float) -> list[str]:
    out = [f"{p.service}: {p.phase} - {p.summary}"]
    if p.change:
        for r in change_rows(p):
            sign = "-" if r["op"] == "remove" else "+"
            tag = f"    ({r['why']})" if r["why"] else ""
            out.append(f"  {sign} {r['owner']} {r['ttl']} IN TLSA {r['record']}{tag}")
    removed = (
        {(ch.owner, rd) for ch in p.change.changes for rd in ch.removed} if p.change else set()
    )
    for m in p.stale:
        if (m.owner, m.record) not in removed:
            out.append(
                f"  stale: {m.owner} TLSA {records.to_text(m.record)} ({m.why}; removed "
                "once the deployed certificate's records are visible)"
            )
    for u in p.unsafe:
        out.append(f"  needs --force: {u.reason}")
    for m in p.foreign:
        out.append(
            f"  foreign: {m.owner} TLSA {records.to_text(m.record)} (kept: not published by "
            "this tlsarotate)"
        )
    for name in p.install:
        out.append(f"  swap: install the next certificate {name!r}")
    for x in p.pins:
        state = (
            "not in ca_set"
            if not x.in_set
            else "published, safe"
            if x.safe
            else "published, not safe yet"
            if x.published
            else "not published"
        )
        out.append(f"  pin: next certificate {x.slot!r} needs {x.params} of {x.ca}: {state}")
    for w in p.waiting_for:
        out.append(f"  waiting for: {w}")
    if p.phase not in (phases.IDLE, phases.BLOCKED):
        if p.actionable:
            out.append("  next step: now")
        elif p.ready_at is not None:
            left = timefmt.duration(p.ready_at - now)
            out.append(f"  next step possible at {timefmt.iso(p.ready_at)} (in {left})")
        else:
            out.append("  next step possible once every authoritative server serves the records")
    for w in p.warnings:
        out.append(f"  note: {w}")
    if p.foreign:
        out.append(f"  note: foreign records: {ownership.FOREIGN_REASON}")
    return out


def exit_code(plans: Sequence[Plan]) -> int:
    """``apply``'s code: 0 when every service is idle, 1 if any is blocked, else 2 (a rollover
    is still waiting; the hooks and units count 2 as success)."""
    if any(p.phase == BLOCKED for p in plans):
        return 1
    return 0 if all(p.phase == IDLE for p in plans) else 2


def plan_exit_code(plans: Sequence[Plan]) -> int:
    """``plan``'s code, telling a step to take from a wait (as terraform's -detailed-exitcode):
    0 every service idle, 1 any blocked, 2 a write or swap to make now, 4 only waiting."""
    if any(p.phase == BLOCKED for p in plans):
        return 1
    if any(p.actionable for p in plans):
        return 2
    return 4 if any(p.pending for p in plans) else 0
