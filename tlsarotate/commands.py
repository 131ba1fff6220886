"""``plan``, ``apply`` and ``status``: wiring config, providers, state and the engine; the
plans they print are :mod:`tlsarotate.plan_render`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from tlsarotate import config, jsondoc, phases, timefmt
from tlsarotate.clock import SystemClock
from tlsarotate.engine import Engine, make_providers
from tlsarotate.errors import TlsarotateError
from tlsarotate.material import Material
from tlsarotate.plan_render import exit_code, plan_exit_code, plan_json, plan_text
from tlsarotate.planner import Plan
from tlsarotate.providers.base import ProviderContext
from tlsarotate.stores import make_store
from tlsarotate.tlsrpt import publish
from tlsarotate.tlsrpt import record as tlsrpt_record
from tlsarotate.tlsrpt.record import TxtPlan


def _setup(args: argparse.Namespace, persist: bool = True) -> tuple[config.Config, Engine]:
    cfg = config.load(args.config)
    store = make_store(cfg)
    providers = make_providers(cfg, ProviderContext(base_dir=cfg.path.parent))
    if not persist:
        store = _ReadOnlyStore(store)
    from tlsarotate.postswap import verify_live

    engine = Engine(
        cfg,
        store,
        providers,
        clock=SystemClock(),
        verify=verify_live,
        persist=persist,
        force_cleanup=getattr(args, "force_cleanup", False),
        force=getattr(args, "force", False),
    )
    return cfg, engine


class _ReadOnlyStore:
    """For ``plan`` and ``status``: read the state, never write it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def load(self, service: str) -> Any:
        return self.inner.load(service)

    def save(self, st: Any) -> None:
        pass

    def lock(self, service: str, timeout: float) -> Any:
        return contextlib.nullcontext()


def _select(cfg: config.Config, args: argparse.Namespace) -> tuple[config.Service, ...]:
    svcs = cfg.select(getattr(args, "service", None))
    lineage = getattr(args, "lineage", None)
    if lineage:
        from pathlib import Path

        want = Path(lineage).resolve()
        svcs = tuple(
            s
            for s in svcs
            if any(
                c.next and c.next.lineage and c.next.lineage.resolve() == want
                for c in s.certificates
            )
        )
        if not svcs:
            # a deploy hook runs for every certificate the ACME client renews; one that no
            # service rolls is not an error
            print(
                f"tlsarotate: no service has its next certificate at lineage {lineage}; "
                "nothing to do",
                file=sys.stderr,
            )
    return svcs


def _emit(
    plans: Sequence[Plan], output: str, now: float, code: int, txt: Sequence[TxtPlan] = ()
) -> int:
    records = {t.service: t for t in txt}  # the services' TLSRPT records (tlsrpt_record)
    if output == "json":
        docs = [plan_json(p, now) for p in plans]
        for d in docs:
            if d["service"] in records:
                d["tlsrpt_record"] = tlsrpt_record.as_json(records[d["service"]])
        doc = {**jsondoc.head("plan"), "exit": code, "services": docs}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        for p in plans:
            extra = tlsrpt_record.lines(records[p.service]) if p.service in records else []
            sys.stdout.write("\n".join(plan_text(p, now) + extra) + "\n")
    return code


def _txt_code(code: int, txt: Sequence[TxtPlan]) -> int:
    """``plan``'s code with the TLSRPT records: a TXT write to make is a step now (2)."""
    return 2 if code in (0, 4) and any(t.pending for t in txt) else code


def cmd_plan(args: argparse.Namespace) -> int:
    cfg, engine = _setup(args, persist=False)
    svcs = _select(cfg, args)
    with contextlib.closing(engine):
        plans = engine.step(svcs, act=False)
        txt = publish.plans(svcs, engine.providers)
    code = _txt_code(plan_exit_code(plans), txt)
    return _emit(plans, args.output, engine.clock.now(), code, txt)


class _Countdown:
    """On a terminal, ``apply --wait`` sleeps in one-second steps and keeps one status line
    current: which service waits for what, and for how long still."""

    def __init__(self, inner: Any, out: Any) -> None:
        self.inner, self.out = inner, out
        self.waiting: dict[str, Plan] = {}

    def now(self) -> float:
        return float(self.inner.now())

    def sleep(self, seconds: float) -> None:
        end = self.inner.now() + seconds
        while (left := end - self.inner.now()) > 0:
            self.out.write("\r\033[K" + self.line())
            self.out.flush()
            self.inner.sleep(min(1.0, left))
        self.out.write("\r\033[K")
        self.out.flush()

    def line(self) -> str:
        now = self.inner.now()
        parts = []
        for name, p in sorted(self.waiting.items()):
            if p.ready_at is not None:
                parts.append(f"{name}: next step in {timefmt.duration(p.ready_at - now)}")
            else:
                parts.append(f"{name}: waiting for the name servers")
        return "  " + "; ".join(parts) + " (Ctrl-C stops; run again to resume)"


def cmd_apply(args: argparse.Namespace) -> int:
    if args.force_cleanup and args.wait:
        # once means once: a run that waits for hours would remove whatever another writer
        # publishes meanwhile, which is the fight this flag is meant to end
        raise TlsarotateError(
            "--force-cleanup removes other writers' records once and cannot be combined with "
            "--wait; run `tlsarotate apply --force-cleanup` (again if it says it is waiting)"
        )
    if args.force and args.wait:
        # the same for the safety thresholds: --force allows what plan showed, not what a
        # long wait might bring
        raise TlsarotateError(
            "--force makes the writes plan shows as needing it, once, and cannot be combined "
            "with --wait; run `tlsarotate apply --force` (again if it says it is waiting)"
        )
    cfg, engine = _setup(args)
    svcs = _select(cfg, args)
    text = args.output == "text"
    countdown = _Countdown(engine.clock, sys.stdout) if text and sys.stdout.isatty() else None
    if countdown is not None and args.wait:
        engine.clock = countdown
    last: dict[str, str] = {}

    def on_plan(p: Plan) -> None:
        if countdown is not None:
            if p.phase in (phases.WAIT_TTL, phases.WAIT_PROPAGATION):
                countdown.waiting[p.service] = p
            else:
                countdown.waiting.pop(p.service, None)
        if not text:
            return
        # print a plan when something changed, not on every look while waiting
        key = f"{p.phase}|{p.ready_at}|{p.waiting_for}"
        if last.get(p.service) == key:
            return
        last[p.service] = key
        sys.stdout.write("\n".join(plan_text(p, engine.clock.now())) + "\n")
        sys.stdout.flush()

    def on_event(e: str) -> None:
        if text:
            sys.stdout.write(f"==> {e}\n")
            sys.stdout.flush()

    engine.on_plan = on_plan
    engine.on_event = on_event
    timeout = args.lock_timeout if args.lock_timeout is not None else cfg.lock_timeout
    with contextlib.closing(engine):  # each step takes the locks; a wait holds none
        plans = engine.run(svcs, wait=args.wait, lock_timeout=timeout)
        txt = publish.apply(svcs, engine.providers, on_event)
    if args.output == "json":
        return _emit(plans, "json", engine.clock.now(), exit_code(plans), txt)
    return exit_code(plans)


def _cert_info(m: Material | None) -> dict[str, Any] | None:
    if m is None:
        return None
    leaf = m.leaf
    return {
        "source": m.source,
        "subject": leaf.subject.rfc4514_string() if leaf else None,
        "spki_sha256": m.spki_sha256,
        "not_after": timefmt.iso(leaf.not_valid_after_utc.timestamp()) if leaf else None,
    }


def cmd_status(args: argparse.Namespace) -> int:
    cfg, engine = _setup(args, persist=False)
    svcs = _select(cfg, args)
    now = engine.clock.now()
    docs: list[dict[str, Any]] = []
    with contextlib.closing(engine):  # every read is done here
        plans = {svc.name: engine.evaluate(svc) for svc in svcs}
    for svc in svcs:
        p = plans[svc.name]
        inp = engine.inputs[svc.name]  # what the plan was made from: no second read
        published = inp.published
        st = engine.store.load(svc.name)
        docs.append(
            {
                "service": svc.name,
                "phase": p.phase,
                "summary": p.summary,
                "published": {
                    o.to_text(): published[o].texts() if o in published else [] for o in svc.owners
                },
                "ttl": {o.to_text(): published[o].ttl for o in svc.owners if o in published},
                "certificates": [
                    {
                        "name": s.name,
                        "deployed": _cert_info(s.deployed),
                        "next": _cert_info(s.replacement),
                        # `next:` names the certificate deployed now: nothing to roll over
                        "next_is_deployed": s.next is not None and s.replacement is None,
                    }
                    for s in inp.slots
                ]
                # a first issuance: nothing deployed yet
                + [
                    {"name": f.name, "deployed": None, "next": _cert_info(f.next)}
                    for f in inp.first
                ],
                "visible_since": timefmt.iso(p.state.visible_since),
                "hold_ttl": p.state.hold_ttl,
                "cached": [
                    {"records": c.records, "ttl": c.ttl, "until": timefmt.iso(c.until)}
                    for c in p.state.cached
                ],
                "ready_at": timefmt.iso(p.ready_at),
                "ready_in": None if p.ready_at is None else max(0, round(p.ready_at - now)),
                "last_step": st.last_step,
                "updated": timefmt.iso(st.updated or None),
                "waiting_for": list(p.waiting_for),
            }
        )
    if args.output == "json":
        doc = {**jsondoc.head("status"), "services": docs}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    for d in docs:
        print(f"{d['service']}: {d['phase']} - {d['summary']}")
        for owner, recs in d["published"].items():
            ttl = d["ttl"].get(owner)
            print(f"  {owner} (ttl {ttl}):" if recs else f"  {owner}: no TLSA records")
            for r in recs:
                print(f"    {r}")
        for c in d["certificates"]:
            for kind in ("deployed", "next"):
                info = c[kind]
                if info:
                    print(
                        f"  {c['name']} {kind}: {info['subject']} spki {info['spki_sha256'][:16]}… "
                        f"not after {info['not_after']}"
                    )
                elif kind == "next" and c["next_is_deployed"]:
                    print(f"  {c['name']} next: the deployed one; nothing to roll over")
                elif kind == "next":
                    print(f"  {c['name']} next: none")
                else:
                    print(f"  {c['name']} deployed: none yet (a first issuance)")
        print(
            f"  visible since {d['visible_since'] or '-'}, hold TTL {d['hold_ttl']}s, "
            f"last step {d['last_step'] or '-'} at {d['updated'] or '-'}"
        )
        for c in d["cached"]:
            what = (
                "an RRset from before tlsarotate knew it"
                if c["records"] is None
                else _older(c["records"])
            )
            until = f"until {c['until']}" if c["until"] else "until its successor is visible + TTL"
            print(f"  caches may still hold {what}, TTL {c['ttl']}s, {until}")
        if d["ready_at"]:
            left = timefmt.duration(d["ready_in"])
            print(f"  next step possible at {d['ready_at']} (in {left})")
        for w in d["waiting_for"]:
            print(f"  waiting for: {w}")
    return 0


def _older(recs: dict[str, list[str]]) -> str:
    """An older RRset caches may hold, in words: how many records it had at each owner."""
    if not any(recs.values()):
        return "an older answer with no TLSA records"
    per = [
        f"{len(v)} TLSA record{'s' if len(v) != 1 else ''} at {o}"
        for o, v in sorted(recs.items())
        if v
    ]
    return "an older RRset of " + (
        per[0] if len(per) == 1 else ", ".join(per[:-1]) + " and " + per[-1]
    )
