"""The rollover engine: the thin I/O shell around the pure planner.

One *step* reads every selected service's certificates, published records and what the
authoritative servers serve, asks the planner for each service's next step, then performs the
writes -- all changes for one zone in ONE provider write, whichever services they come from --
and the swaps, saving state after each. ``run`` repeats steps while something is safe to do now
(and, with ``wait``, sleeps through the waits) until every service is idle; each step holds the
services' locks, no sleep does. A certificate with nothing deployed yet (a first issuance) is
planned by :mod:`tlsarotate.bootstrap` and installed by :func:`tlsarotate.swap.install_first`.

The engine writes the state only through :mod:`tlsarotate.phases` (after each evaluation,
write and swap); recovery after a killed run is :mod:`tlsarotate.recovery`.

Everything with a side effect goes through an injectable object (providers, observers, the
state store, the clock, the command runner, the post-swap verifier), so tests and the
fault-injection harness can intercept each call.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import bootstrap, nextkey, phases, planner, records, recovery, safety, swap
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.config import CertSlot, Config, Service
from tlsarotate.errors import (
    ConcurrentChangeError,
    ProviderError,
    SwapError,
    TlsarotateError,
    UnsafeChangeError,
)
from tlsarotate.material import Material
from tlsarotate.observation import Observer
from tlsarotate.planinputs import load_slots, plan_input
from tlsarotate.planner import Plan
from tlsarotate.providers.base import Provider, ProviderContext
from tlsarotate.runner import Runner
from tlsarotate.service_observer import ObserverFactory, observer_for
from tlsarotate.state import State
from tlsarotate.stores import StateStore

log = logging.getLogger("tlsarotate.engine")

MAX_POLL = 30.0  # seconds between observations while waiting for propagation
MAX_REPLANS = 3  # concurrent changes tolerated in a row before giving up
MAX_STEPS = 50  # actions in a row without any wait: something is not taking effect
OBSERVE_TIMEOUT = 3.0  # seconds per DNS query to an authoritative server


def make_providers(cfg: Config, context: ProviderContext) -> dict[str, Provider]:
    from tlsarotate import providers as registry

    out: dict[str, Provider] = {}
    for name, pc in cfg.providers.items():
        cls = registry.get_class(pc.type)
        out[name] = cls(name, pc.options, context)
    return out


@dataclass
class Engine:
    cfg: Config
    store: StateStore
    providers: Mapping[str, Provider]
    clock: Clock = field(default_factory=SystemClock)
    observer_for: ObserverFactory = observer_for
    runner: Runner | None = None  # the reload command's runner; None: reload.run_bounded
    # after each swap: (service, slot, installed) -> None if the live service serves it, else why
    verify: Callable[[Service, CertSlot, Material], str | None] | None = None
    on_plan: Callable[[Plan], None] | None = None  # called with every plan made (for output)
    on_event: Callable[[str], None] | None = None  # called with every action taken, in words
    persist: bool = True  # False for plan/status: never write state or generate keys
    force_cleanup: bool = False  # apply/plan --force-cleanup: other writers' records go too
    force: bool = False  # apply --force: make writes the safety thresholds hold back
    # what each service's last plan was made from (status and the swap use it; no re-reading)
    inputs: dict[str, planner.PlanInput] = field(default_factory=dict)
    _observers: dict[str, Observer] = field(default_factory=dict)
    # (provider, owner) -> the RRset this engine last wrote there
    _written: dict[tuple[str, dns.name.Name], TlsaRRset] = field(default_factory=dict)
    _propagation_polls: int = 0

    def close(self) -> None:
        """Close every provider (their connections); the engine is done with."""
        for provider in self.providers.values():
            provider.close()

    # -- inputs --------------------------------------------------------------------------------

    def _observer(self, svc: Service) -> Observer:
        if svc.name not in self._observers:
            provider = self.providers[svc.provider]
            self._observers[svc.name] = self.observer_for(svc, lambda: provider, OBSERVE_TIMEOUT)
        return self._observers[svc.name]

    def evaluate(self, svc: Service) -> Plan:
        """Read everything for one service and ask the planner. Saves the folded state."""
        if self.persist:
            self._ensure_next_keys(svc)
        first: list[bootstrap.FirstSlot] = []
        slots = load_slots(svc, first)
        provider = self.providers[svc.provider]
        owners = tuple(svc.owners)
        published = provider.read(svc.zone, owners)
        try:
            observation = self._observer(svc).observe(svc.zone, (*owners, *svc.aliases))
        except TlsarotateError as e:
            log.warning("service %s: %s", svc.name, e)
            observation = None
        loaded = self.store.load(svc.name)
        st = self._applied_ttl(svc, published, loaded)
        inp = plan_input(
            svc,
            slots,
            published,
            observation,
            st,
            self.clock.now(),
            self.cfg.safety_margin,
            force_cleanup=self.force_cleanup,
            ttl=st.ttl_applied if st.ttl_asked == svc.ttl and st.ttl_applied else svc.ttl,
            first=tuple(first),
            owners=owners,
        )
        p = planner.plan(inp)
        self.inputs[svc.name] = inp
        deployed = {s.name: s.deployed.fingerprint for s in slots}
        new_state = phases.after_evaluation(p.state, deployed, self.clock.now())
        if new_state != loaded:
            self.store.save(new_state)
        if self.on_plan:
            self.on_plan(p)
        return p

    def _applied_ttl(
        self, svc: Service, published: Mapping[dns.name.Name, TlsaRRset], st: State
    ) -> State:
        """``st`` with the TTL ``svc``'s provider really stores for the configured one, learned
        when an RRset this engine wrote reads back with its records but another TTL (a backend
        that rounds TTLs up): the planner then neither rewrites it for ever nor waits too
        little. Kept in the state, so later runs know it too."""
        for owner, rr in published.items():
            asked = self._written.get((svc.provider, owner))
            if (
                asked is not None
                and asked.ttl == svc.ttl
                and rr.records == asked.records
                and rr.ttl != asked.ttl
                and (st.ttl_asked, st.ttl_applied) != (svc.ttl, rr.ttl)
            ):
                log.warning(
                    "service %s: provider %s stores TTL %ds when asked for %ds; waiting with "
                    "%ds (set `ttl: %d` to match)",
                    svc.name,
                    svc.provider,
                    rr.ttl,
                    svc.ttl,
                    rr.ttl,
                    rr.ttl,
                )
                return st.with_(ttl_asked=svc.ttl, ttl_applied=rr.ttl)
        return st

    # -- one step ------------------------------------------------------------------------------

    def step(self, services: Iterable[Service], act: bool) -> list[Plan]:
        """Plan every service; when ``act``, perform the writes (one per zone) and swaps."""
        svcs = list(services)
        plans: list[Plan] = []
        swapped: set[str] = set()
        failed: BaseException | None = None
        for s in svcs:
            plans.append(self.evaluate(s))
            p = plans[-1]
            if act and p.install and not p.change and failed is None:
                # a due swap waits for no other service's look (N services: not N looks late);
                # a failure is raised where the swaps used to fail, after the writes
                swapped.add(s.name)
                try:
                    self._swap(s, p)
                except TlsarotateError as e:
                    failed = e
        if not act:
            return plans
        # a write the safety thresholds hold back is not made (the others are), then refused
        refused = [p for p in plans if p.change and p.unsafe and not self.force]
        held = {p.service for p in refused}
        by_zone: dict[tuple[str, dns.name.Name], list[tuple[Service, Plan]]] = defaultdict(list)
        for svc, p in zip(svcs, plans, strict=True):
            if p.change and p.service not in held:
                if p.unsafe:
                    self.event(f"{svc.name}: --force: {'; '.join(u.reason for u in p.unsafe)}")
                by_zone[(svc.provider, svc.zone)].append((svc, p))
        for (prov_name, zone), items in by_zone.items():
            merged: list[OwnerChange] = []
            for _, p in items:
                assert p.change is not None
                merged.extend(p.change.changes)
            change = ZoneChange(zone, tuple(merged))
            provider = self.providers[prov_name]
            for svc, p in items:
                self.event(f"{svc.name}: {p.summary}")
            result = provider.apply(change)
            for ch in change.changes:
                if ch.new is not None:
                    self._written[(prov_name, ch.owner)] = ch.new
            for svc, p in items:
                st = self.store.load(svc.name)
                self.store.save(phases.after_write(st, p.change, p.phase, self.clock.now()))
            try:
                live = provider.is_live(zone, result.tokens)
            except ProviderError as e:
                live, why = False, f"could not be asked whether it serves it ({e})"
            else:
                why = "did not serve it yet when asked right after the write"
            if not live:
                # the observer still decides when the records are served: the next look at the
                # authoritative servers (right after this) may well find them served
                self.event(
                    f"{prov_name}: the write to {zone} is made; the provider {why}; "
                    "asking the authoritative servers next"
                )
        if failed is not None:
            raise failed
        for svc, p in zip(svcs, plans, strict=True):
            if p.install and svc.name not in swapped:
                self._swap(svc, p)
        if refused:
            raise UnsafeChangeError(
                " | ".join(safety.refusal(p.service, p.unsafe) for p in refused)
            )
        return plans

    def event(self, text: str) -> None:
        """Say an action taken (log, and ``on_event``)."""
        log.info("%s", text)
        if self.on_event:
            self.on_event(text)

    # -- swaps ---------------------------------------------------------------------------------

    def _swap(self, svc: Service, p: Plan) -> None:
        slots = {s.name: s for s in self.inputs[svc.name].slots}
        first = {f.name: f for f in self.inputs[svc.name].first}
        for name in p.install:
            cfg_slot = next(s for s in svc.certificates if s.name == name)
            if name in first:
                self._install_first(svc, cfg_slot, first[name].next)
                continue
            slot_in = slots[name]
            nxt = slot_in.replacement
            assert nxt is not None
            # read and check everything first; the journal names both pairs and where each
            # is before any file moves (a crash after this is finished or undone by recovery)
            prepared = swap.prepare(cfg_slot, nxt.fingerprint)
            began = phases.begin_swap(
                self.store.load(svc.name),
                name,
                nxt.fingerprint,
                self.clock.now(),
                previous=prepared.previous.fingerprint,
                backup=str(prepared.backup),
                installed=str(prepared.installed),
            )
            self.store.save(began)
            self.event(f"{svc.name}: installing the next certificate {name!r}")
            try:
                swap.commit(prepared, self.runner, self.verifier(svc))
            except swap.RestoreFailed:
                raise  # the journal stays: the next run recovers from the files it names
            except SwapError:
                # rolled back cleanly: no swap to finish; the next run plans afresh
                self.store.save(phases.abort_swap(self.store.load(svc.name)))
                raise
            old = prepared.previous
            self.finish_swap(svc, name, old.fingerprint, records.build_all(old, svc.params))
            self.rotate_next_key(svc, name, prepared.pair.material)

    def _install_first(self, svc: Service, cfg_slot: CertSlot, nxt: Material) -> None:
        """A first issuance: nothing deployed to back up, journal or retire."""
        where = cfg_slot.deployed.describe()
        self.event(f"{svc.name}: installing the first certificate {cfg_slot.name!r} at {where}")
        installed = swap.install_first(cfg_slot, nxt.fingerprint, self.runner, self.verifier(svc))
        self.store.save(phases.after_first_install(self.store.load(svc.name), self.clock.now()))
        self.rotate_next_key(svc, cfg_slot.name, installed)

    def verifier(self, svc: Service) -> swap.Verifier | None:
        check = self.verify
        if check is None:
            return None
        return lambda slot, installed: check(svc, slot, installed)

    def _ensure_next_keys(self, svc: Service) -> None:
        """Keep-ahead: make sure every configured next key exists (generated 0600 if not)."""
        for slot in svc.certificates:
            if slot.next_key is not None and not slot.next_key.path.exists():
                nextkey.ensure(slot.next_key.path, slot.next_key.type)
                self.event(f"{svc.name}: generated the next key {slot.next_key.path}")

    def rotate_next_key(self, svc: Service, slot_name: str, installed: Material) -> None:
        """After a swap installed the keep-ahead key, a fresh one takes its place."""
        slot = next(s for s in svc.certificates if s.name == slot_name)
        nk = slot.next_key
        if nk is None or not nk.path.exists():
            return
        if nextkey.load(nk.path).spki != installed.spki:
            return
        for p in (slot.deployed.key, slot.deployed.combined):
            with contextlib.suppress(OSError):
                if p is not None and os.path.samefile(p, nk.path):
                    return  # next_key names the deployed key itself: never move that away
        nextkey.rotate(nk.path, nk.type, consumed_spki=installed.spki_sha256)
        self.event(f"{svc.name}: the next key was used; generated a fresh one at {nk.path}")

    def finish_swap(
        self, svc: Service, slot: str, old_fingerprint: str, old_records: Sequence[TLSA]
    ) -> None:
        """Record a finished swap of ``slot``: the replaced pair's records are retired by the
        next cleanup."""
        st = self.store.load(svc.name)
        self.store.save(phases.after_swap(st, slot, old_fingerprint, old_records, self.clock.now()))
        self.event(f"{svc.name}: certificate {slot!r} swapped; old records will be retired")

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        services: Iterable[Service],
        wait: bool,
        deadline: float | None = None,
        lock_timeout: float | None = None,
    ) -> list[Plan]:
        """Perform every step that is safe now; with ``wait``, until every service is idle (or
        the clock passes ``deadline``). With ``lock_timeout``, each step (recovery, reading,
        planning, the writes and swaps, the state saved) holds the services' locks, taken anew
        for every step and never held while sleeping: another run (a deploy hook) gets in
        between, and the next step re-reads and re-plans whatever it did."""
        svcs = list(services)
        replans = steps = 0
        self._propagation_polls = 0
        while True:
            try:
                with self._locked(svcs, lock_timeout):
                    self._recover(svcs)
                    plans = self.step(svcs, act=True)
            except ConcurrentChangeError as e:
                replans += 1
                if replans > MAX_REPLANS:
                    raise
                self.event(f"{e}; re-reading and re-planning")
                continue
            replans = 0
            if any(p.actionable for p in plans):
                steps += 1
                if steps > MAX_STEPS:
                    raise ProviderError(
                        f"{MAX_STEPS} steps in a row without reaching a wait: the writes do not "
                        "seem to take effect (is the provider reading what it writes?)"
                    )
                continue  # something was done: look again right away
            steps = 0
            if not wait or all(p.phase in (phases.IDLE, phases.BLOCKED) for p in plans):
                return plans
            if deadline is not None and self.clock.now() >= deadline:
                return plans
            self.clock.sleep(self._sleep_for(plans))

    @contextlib.contextmanager
    def _locked(self, svcs: Sequence[Service], timeout: float | None) -> Iterator[None]:
        """Every service's lock (in name order, so two runs never deadlock), or none."""
        with contextlib.ExitStack() as stack:
            if timeout is not None:
                for s in sorted(svcs, key=lambda s: s.name):
                    stack.enter_context(self.store.lock(s.name, timeout))
            yield

    def _recover(self, svcs: Sequence[Service]) -> None:
        """Finish what a killed run left (a provider's write, a swap), before planning."""
        for prov_name, zone in dict.fromkeys((s.provider, s.zone) for s in svcs):
            done = self.providers[prov_name].recover(zone)  # a write a killed run left unfinished
            if done:
                self.event(done)
        for svc in svcs:
            recovery.recover(self, svc)

    def _sleep_for(self, plans: list[Plan]) -> float:
        now = self.clock.now()
        times = [
            p.ready_at - now for p in plans if p.ready_at is not None and p.phase != phases.IDLE
        ]
        best = min(times) if times else MAX_POLL
        if any(p.phase == phases.WAIT_PROPAGATION for p in plans):
            # poll the servers often at first, then back off: 1 s, 2 s, 4 s ... 30 s
            best = min(best, 2.0**self._propagation_polls)
            self._propagation_polls += 1
        else:
            self._propagation_polls = 0
        return max(0.05, min(best, MAX_POLL))
