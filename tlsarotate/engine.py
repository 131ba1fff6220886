"""The rollover engine: the thin I/O shell around the pure planner.

One *step* reads every selected service's certificates, published records and what the
authoritative servers serve, asks the planner for each service's next step, then performs the
writes -- all changes for one zone in ONE provider write, whichever services they come from --
and the swaps, saving state after each. ``run`` repeats steps while something is safe to do now
(and, with ``wait``, sleeps through the waits) until every service is idle.

Everything with a side effect goes through an injectable object (providers, observers, the
state store, the clock, the command runner, the post-swap verifier), so tests and the
fault-injection harness can intercept each call.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import dns.name

from tlsarotate import nextkey, planner, records, swap
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.config import CertSlot, Config, Service, deployed_link_check, load_cert
from tlsarotate.errors import (
    ConcurrentChangeError,
    ConfigError,
    ProviderError,
    SwapError,
    TlsarotateError,
)
from tlsarotate.material import Material
from tlsarotate.observation import Observation, Observer, ProviderObserver
from tlsarotate.observer import DnsObserver
from tlsarotate.planner import Plan
from tlsarotate.providers.base import Provider, ProviderContext
from tlsarotate.reload import run_reload
from tlsarotate.runner import Runner
from tlsarotate.state import State, SwapJournal
from tlsarotate.stores import StateStore

log = logging.getLogger("tlsarotate.engine")

MAX_POLL = 30.0  # seconds between observations while waiting for propagation
MAX_REPLANS = 3  # concurrent changes tolerated in a row before giving up
MAX_STEPS = 50  # actions in a row without any wait: something is not taking effect


ObserverFactory = Callable[[Service, Provider], Observer]


class _AsServed:
    """A provider's read with the TTLs its servers hand out (Cloudflare's "automatic" 1 is
    served as 300): what ``observe: provider`` must wait for."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def read(
        self, zone: dns.name.Name, owners: tuple[dns.name.Name, ...] | list[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        got = self.provider.read(zone, owners)
        return {
            o: TlsaRRset.of(self.provider.served_ttl(rr.ttl), rr.records) for o, rr in got.items()
        }


def default_observer(service: Service, provider: Provider) -> Observer:
    if service.observe == "provider":
        return ProviderObserver(_AsServed(provider), provider.name)
    return DnsObserver(service.nameservers or None, replace=service.nameservers_mode == "replace")


def make_providers(cfg: Config, context: ProviderContext) -> dict[str, Provider]:
    from tlsarotate import providers as registry

    out: dict[str, Provider] = {}
    for name, pc in cfg.providers.items():
        cls = registry.get_class(pc.type)
        out[name] = cls(name, pc.options, context)
    return out


def load_slots(svc: Service) -> tuple[planner.SlotInput, ...]:
    """Read every certificate of a service (deployed, next, keep-ahead key) from disk."""
    out = []
    for slot in svc.certificates:
        where = f"service {svc.name!r} certificate {slot.name!r}"
        try:
            deployed_link_check(slot.deployed)  # never followed into a place not named
            deployed = load_cert(slot.deployed)
        except TlsarotateError as e:
            raise ConfigError(f"{where}: deployed certificate: {e}") from None
        nxt: Material | None = None
        if slot.next is not None:
            try:
                nxt = load_cert(slot.next)
            except TlsarotateError as e:
                raise ConfigError(f"{where}: next certificate: {e}") from None
        key: Material | None = None
        if slot.next_key is not None and slot.next_key.path.exists():
            try:
                key = nextkey.load(slot.next_key.path)
            except TlsarotateError as e:
                raise ConfigError(f"{where}: next_key: {e}") from None
        out.append(planner.SlotInput(slot.name, deployed, nxt, key))
    return tuple(out)


def plan_input(
    svc: Service,
    slots: tuple[planner.SlotInput, ...],
    published: Mapping[dns.name.Name, TlsaRRset],
    observation: Observation | None,
    state: State,
    now: float,
    safety_margin: int,
    force_cleanup: bool = False,
) -> planner.PlanInput:
    """What the planner needs to know about one configured service."""
    return planner.PlanInput(
        service=svc.name,
        zone=svc.zone,
        owners=tuple(svc.owners),
        ttl=svc.ttl,
        params=svc.params,
        slots=slots,
        published=published,
        observation=observation,
        state=state,
        now=now,
        safety_margin=safety_margin,
        allow_unsigned=svc.allow_unsigned,
        owners_mode="force" if force_cleanup else svc.owners_mode,
        hosts=tuple(svc.hosts),
        min_validity=svc.next_min_validity,
    )


def _record_texts(m: Material, svc: Service) -> list[str]:
    """The records a certificate has for the service's parameters, as text (for the state)."""
    return [records.to_text(rd) for rd in records.build_all(m, svc.params)]


@dataclass
class Engine:
    cfg: Config
    store: StateStore
    providers: Mapping[str, Provider]
    clock: Clock = field(default_factory=SystemClock)
    observer_for: ObserverFactory = default_observer
    runner: Runner | None = None  # the reload command's runner; None: reload.run_bounded
    # after each swap: (service, slot, installed) -> None if the live service serves it, else why
    verify: Callable[[Service, CertSlot, Material], str | None] | None = None
    on_plan: Callable[[Plan], None] | None = None  # called with every plan made (for output)
    on_event: Callable[[str], None] | None = None  # called with every action taken, in words
    persist: bool = True  # False for plan/status: never write state or generate keys
    force_cleanup: bool = False  # apply/plan --force-cleanup: other writers' records go too
    # what each service's last plan was made from (status and the swap use it; no re-reading)
    inputs: dict[str, planner.PlanInput] = field(default_factory=dict)
    _observers: dict[str, Observer] = field(default_factory=dict)
    _propagation_polls: int = 0

    def close(self) -> None:
        """Close every provider (their connections); the engine is done with."""
        for provider in self.providers.values():
            provider.close()

    # -- inputs --------------------------------------------------------------------------------

    def _observer(self, svc: Service) -> Observer:
        if svc.name not in self._observers:
            self._observers[svc.name] = self.observer_for(svc, self.providers[svc.provider])
        return self._observers[svc.name]

    def evaluate(self, svc: Service) -> Plan:
        """Read everything for one service and ask the planner. Saves the folded state."""
        if self.persist:
            self._ensure_next_keys(svc)
        slots = load_slots(svc)
        provider = self.providers[svc.provider]
        owners = tuple(svc.owners)
        published = provider.read(svc.zone, owners)
        try:
            observation = self._observer(svc).observe(svc.zone, owners)
        except TlsarotateError as e:
            log.warning("service %s: %s", svc.name, e)
            observation = None
        st = self.store.load(svc.name)
        inp = plan_input(
            svc,
            slots,
            published,
            observation,
            st,
            self.clock.now(),
            self.cfg.safety_margin,
            force_cleanup=self.force_cleanup,
        )
        p = planner.plan(inp)
        self.inputs[svc.name] = inp
        deployed = {s.name: s.deployed.fingerprint for s in slots}
        new_state = p.state.with_(deployed=deployed, updated=self.clock.now())
        if new_state != st:
            self.store.save(new_state)
        if self.on_plan:
            self.on_plan(p)
        return p

    # -- one step ------------------------------------------------------------------------------

    def step(self, services: Iterable[Service], act: bool) -> list[Plan]:
        """Plan every service; when ``act``, perform the writes (one per zone) and swaps."""
        svcs = list(services)
        plans = [self.evaluate(s) for s in svcs]
        if not act:
            return plans
        by_zone: dict[tuple[str, dns.name.Name], list[tuple[Service, Plan]]] = defaultdict(list)
        for svc, p in zip(svcs, plans, strict=True):
            if p.change:
                by_zone[(svc.provider, svc.zone)].append((svc, p))
        for (prov_name, zone), items in by_zone.items():
            merged: list[OwnerChange] = []
            for _, p in items:
                assert p.change is not None
                merged.extend(p.change.changes)
            change = ZoneChange(zone, tuple(merged))
            provider = self.providers[prov_name]
            for svc, p in items:
                self._event(f"{svc.name}: {p.summary}")
            result = provider.apply(change)
            for svc, p in items:
                st = planner.after_write(self.store.load(svc.name), p.change)  # what is ours
                self.store.save(st.with_(last_step=p.phase, updated=self.clock.now()))
            try:
                live = provider.is_live(zone, result.tokens)
            except ProviderError as e:
                live, why = False, str(e)
            else:
                why = "not reported live yet"
            if not live:
                # the observer still decides when the records are served; say why it may wait
                self._event(f"{prov_name}: the write to {zone} is {why}")
        for svc, p in zip(svcs, plans, strict=True):
            if p.swap:
                self._swap(svc, p)
        return plans

    def _event(self, text: str) -> None:
        log.info("%s", text)
        if self.on_event:
            self.on_event(text)

    # -- swaps ---------------------------------------------------------------------------------

    def _swap(self, svc: Service, p: Plan) -> None:
        slots = {s.name: s for s in self.inputs[svc.name].slots}
        for name in p.swap:
            cfg_slot = next(s for s in svc.certificates if s.name == name)
            slot_in = slots[name]
            nxt = slot_in.pending
            assert nxt is not None
            # read and check everything first; the journal names both pairs and where each
            # is before any file moves (a crash after this is finished or undone by recover)
            prepared = swap.prepare(cfg_slot, nxt.fingerprint)
            journal = SwapJournal(
                name,
                nxt.fingerprint,
                self.clock.now(),
                previous=prepared.previous.fingerprint,
                backup=str(prepared.backup),
                installed=str(prepared.installed),
            )
            self.store.save(self.store.load(svc.name).with_(swap=journal))
            self._event(f"{svc.name}: installing the next certificate {name!r}")
            try:
                swap.commit(prepared, self.runner, self._verifier(svc))
            except swap.RestoreFailed:
                raise  # the journal stays: the next run recovers from the files it names
            except SwapError:
                # rolled back cleanly: no swap to finish; the next run plans afresh
                self.store.save(self.store.load(svc.name).with_(swap=None))
                raise
            old_records = _record_texts(prepared.previous, svc)
            self._finish_swap(svc, name, prepared.previous.fingerprint, old_records)
            self._rotate_next_key(svc, name, prepared.pair.material)

    def _verifier(self, svc: Service) -> swap.Verifier | None:
        check = self.verify
        if check is None:
            return None
        return lambda slot, installed: check(svc, slot, installed)

    def _ensure_next_keys(self, svc: Service) -> None:
        """Keep-ahead: make sure every configured next key exists (generated 0600 if not)."""
        for slot in svc.certificates:
            if slot.next_key is not None and not slot.next_key.path.exists():
                nextkey.ensure(slot.next_key.path, slot.next_key.type)
                self._event(f"{svc.name}: generated the next key {slot.next_key.path}")

    def _rotate_next_key(self, svc: Service, slot_name: str, installed: Material) -> None:
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
        self._event(f"{svc.name}: the next key was used; generated a fresh one at {nk.path}")

    def _finish_swap(self, svc: Service, slot: str, old_fp: str, old_records: list[str]) -> None:
        st = self.store.load(svc.name)
        retiring = sorted(set(st.retiring) | set(old_records))
        previous = dict(st.previous)
        previous[slot] = old_fp
        self.store.save(
            st.with_(
                swap=None,
                previous=previous,
                retiring=retiring,
                last_step=planner.SWAP,
                updated=self.clock.now(),
            )
        )
        self._event(f"{svc.name}: certificate {slot!r} swapped; old records will be retired")

    def recover(self, svc: Service) -> None:
        """Clean up after a killed run, and finish or undo a swap it interrupted (the journal
        in the state names both pairs and where each is). A pair is deployed or kept only if
        the published records accept it; if no pair on disk qualifies, stop with one line."""
        for slot in svc.certificates:
            for path in swap.cleanup(slot):
                log.info("service %s: removed %s, left by a killed run", svc.name, path)
        st = self.store.load(svc.name)
        if st.swap is None:
            # a run killed between recording a keep-ahead swap and replacing the used key
            for slot in svc.certificates:
                now = swap.deployed(slot) if slot.next_key is not None else None
                if now is not None:
                    self._rotate_next_key(svc, slot.name, now)
            return
        j = st.swap
        cfg_slot = next((s for s in svc.certificates if s.name == j.slot), None)
        if cfg_slot is None:
            self.store.save(st.with_(swap=None))
            return
        self._event(f"{svc.name}: recovering the swap of {j.slot!r} interrupted at {j.started:.0f}")
        published = self.providers[svc.provider].read(svc.zone, tuple(svc.owners))

        def accepted(m: Material | None) -> bool:
            return m is not None and all(
                o in published and records.accepts(published[o].records, m.chain_der)
                for o in svc.owners
            )

        def clear() -> None:
            self.store.save(self.store.load(svc.name).with_(swap=None))

        disk = swap.deployed(cfg_slot)
        kept = swap.kept(cfg_slot, j.backup)
        backup_ok = kept is not None and accepted(kept)
        if kept is not None and j.previous and kept.fingerprint != j.previous:
            backup_ok = False  # not the pair this journal backed up (a rollover before)
        previous = j.previous or (kept.fingerprint if kept is not None else "")
        verifier = self._verifier(svc)
        old_fp = j.previous or st.deployed.get(j.slot, "")
        old_records = _record_texts(kept, svc) if kept is not None and backup_ok else []

        def finish(installed: Material) -> None:
            try:
                swap.finish(
                    cfg_slot,
                    installed,
                    self.runner,
                    verifier,
                    j.backup if backup_ok else None,
                    previous,
                )
            except swap.RestoreFailed:
                raise
            except SwapError:
                clear()  # the previous pair is back in place and reloaded
                raise
            self._finish_swap(svc, j.slot, old_fp, old_records)
            self._rotate_next_key(svc, j.slot, installed)  # as an uninterrupted swap does

        if disk is not None and disk.fingerprint == j.fingerprint and accepted(disk):
            finish(disk)  # the new pair is in place: reload and verify again
            return
        if disk is not None and accepted(disk):
            # nothing was switched, or it was switched back: keep it; the service may have
            # been reloaded with the new pair meanwhile, so reload once more
            self._event(
                f"{svc.name}: the swap of {j.slot!r} did not happen; keeping the deployed pair"
            )
            problem = run_reload(cfg_slot, self.runner)
            clear()
            if problem is not None:
                raise SwapError(
                    f"certificate {j.slot!r}: reloading after an interrupted swap: {problem}"
                )
            return
        if backup_ok:
            self._event(f"{svc.name}: restoring the pair the swap of {j.slot!r} backed up")
            swap.put_back(cfg_slot, j.backup, previous)
            problem = run_reload(cfg_slot, self.runner)
            clear()
            if problem is not None:
                raise SwapError(
                    f"certificate {j.slot!r}: the previous pair was restored after an "
                    f"interrupted swap, but its reload failed: {problem}"
                )
            return
        new = swap.kept(cfg_slot, j.installed) if j.installed else None
        if new is not None and new.fingerprint == j.fingerprint and accepted(new):
            self._event(f"{svc.name}: installing the pair the swap of {j.slot!r} wrote")
            swap.put_back(cfg_slot, j.installed, j.fingerprint)
            finish(new)
            return
        found = (
            "unreadable or not a matching pair"
            if disk is None
            else (f"{disk.fingerprint[:16]}…, whose records are not published")
        )
        raise SwapError(
            f"certificate {j.slot!r}: an interrupted swap can be neither finished nor undone "
            f"safely: the deployed pair at {cfg_slot.deployed.describe()} is {found}, and no "
            "kept pair has its records published; deploy a pair whose records are published "
            "and re-run"
        )

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self, services: Iterable[Service], wait: bool, deadline: float | None = None
    ) -> list[Plan]:
        """Perform every step that is safe now; with ``wait``, until every service is idle (or
        the clock passes ``deadline``)."""
        svcs = list(services)
        replans = steps = 0
        self._propagation_polls = 0
        for prov_name, zone in dict.fromkeys((s.provider, s.zone) for s in svcs):
            done = self.providers[prov_name].recover(zone)  # a write a killed run left unfinished
            if done:
                self._event(done)
        for svc in svcs:
            self.recover(svc)
        while True:
            try:
                plans = self.step(svcs, act=True)
            except ConcurrentChangeError as e:
                replans += 1
                if replans > MAX_REPLANS:
                    raise
                self._event(f"{e}; re-reading and re-planning")
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
            if not wait or all(p.phase in (planner.IDLE, planner.BLOCKED) for p in plans):
                return plans
            if deadline is not None and self.clock.now() >= deadline:
                return plans
            self.clock.sleep(self._sleep_for(plans))

    def _sleep_for(self, plans: list[Plan]) -> float:
        now = self.clock.now()
        times = [
            p.ready_at - now for p in plans if p.ready_at is not None and p.phase != planner.IDLE
        ]
        best = min(times) if times else MAX_POLL
        if any(p.phase == planner.WAIT_PROPAGATION for p in plans):
            # poll the servers often at first, then back off: 1 s, 2 s, 4 s ... 30 s
            best = min(best, 2.0**self._propagation_polls)
            self._propagation_polls += 1
        else:
            self._propagation_polls = 0
        return max(0.05, min(best, MAX_POLL))
