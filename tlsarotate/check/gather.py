"""The I/O of ``tlsarotate check``: observe every zone, resolve and probe every endpoint
(concurrently; once per key type where the slots hold RSA and ECDSA certificates), read the
certificate files, the rollover state and the TLSRPT reports.

Nothing is judged here: errors that do not stop the check are kept as text in the facts
(:mod:`tlsarotate.check.facts`) for :mod:`tlsarotate.check.judge` to report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from tlsarotate import caset, certfiles, config, keytypes, material, planner, records
from tlsarotate.check.facts import CheckFacts, Endpoint, ServiceFacts, SlotFacts, TlsrptFacts
from tlsarotate.config import CertSlot, Config, Service
from tlsarotate.dnslookup import resolve_addresses
from tlsarotate.engine import make_providers
from tlsarotate.errors import TlsarotateError
from tlsarotate.handshake import fetch_chain
from tlsarotate.observation import Observation
from tlsarotate.planinputs import load_ca_set, load_slots
from tlsarotate.providers.base import Provider, ProviderContext
from tlsarotate.served import ServedChain
from tlsarotate.service_observer import ObserverFactory, observer_for
from tlsarotate.state import State
from tlsarotate.stores import make_store
from tlsarotate.tlsrpt import ingest, publish
from tlsarotate.tlsrpt.summary import domains_of, failed_sessions, reports_of

MAX_WORKERS = 256  # endpoints are I/O bound: 200 endpoints in one round

Fetch = Callable[..., ServedChain]


class _StateSource(Protocol):
    def load(self, service: str) -> State: ...


def _provider(cfg: Config, service: Service) -> Provider:
    context = ProviderContext(base_dir=cfg.path.parent)
    return make_providers(cfg, context)[service.provider]


def gather(
    cfg: Config,
    now: float,
    service_name: str | None = None,
    next_cert: str | None = None,
    live: bool = True,
    timeout: float = 10.0,
    observer_for: ObserverFactory = observer_for,
    fetch: Fetch = fetch_chain,
) -> CheckFacts:
    """Everything the check judges. Raises only for what stops the whole check (an unknown
    service, an unreadable ``next_cert``, an unusable state store)."""
    services = cfg.select(service_name)
    gate_cert = certfiles.load(next_cert) if next_cert else None
    store = make_store(cfg)
    endpoints: list[list[Endpoint]] = [[] for _ in services]
    address_errors: list[list[tuple[str, str]]] = [[] for _ in services]
    slots = [tuple(_slot_facts(slot) for slot in s.certificates) for s in services]
    # RSA and ECDSA slots side by side: one handshake per key type, each offering only it
    handshakes = [_handshake_types(ss) for ss in slots]

    def observe(s: Service) -> tuple[Observation | None, str | None]:
        try:
            obs = observer_for(s, lambda: _provider(cfg, s), timeout)
            return obs.observe(s.zone, [*s.owners, *s.aliases]), None
        except TlsarotateError as e:
            return None, str(e)

    def addresses(s: Service, host: str) -> tuple[list[str], str | None]:
        try:
            return resolve_addresses(host, timeout, None, s.nameservers), None
        except TlsarotateError as e:
            return [], str(e)

    def handshake(a: str, port: int, mode: str, host: str, kt: str | None) -> ServedChain:
        only = {"key_type": kt} if kt else {}  # offer only that key type's suites and sigalgs
        return fetch(a, port, mode, timeout, host.rstrip("."), **only)

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        obs_futs = [pool.submit(observe, s) for s in services]
        addr_futs = {
            (i, h): pool.submit(addresses, s, h)
            for i, s in enumerate(services)
            if live
            for h in s.hosts
        }
        observed = [f.result() for f in obs_futs]
        # (service, host, port, address, mode, key type)
        todo: list[tuple[int, str, int, str, str, str | None]] = []
        for (i, host), fut in addr_futs.items():
            s = services[i]
            addrs, err = fut.result()
            if err:
                address_errors[i].append((host, err))
            v = next((slot.verify for slot in s.certificates if slot.verify), None)
            for port in s.ports:
                # verify.starttls names the protocol of ITS port; every other port: by number
                starttls = (
                    v.starttls if v is not None and port == (v.port or s.ports[0]) else "auto"
                )
                todo += [(i, host, port, a, starttls, kt) for a in addrs for kt in handshakes[i]]
        ep_futs = [
            (i, host, port, a, mode, kt, pool.submit(handshake, a, port, mode, host, kt))
            for i, host, port, a, mode, kt in todo
        ]
        for i, host, port, a, mode, kt, efut in ep_futs:
            s = services[i]
            # shared_owner: the records the endpoint is judged by (its CNAME is judged apart)
            owner = s.shared_owner or records.owner_name(host, port, s.protocol)
            endpoints[i].append(Endpoint(s.name, host, port, owner, a, mode, efut.result(), kt))

    return CheckFacts(
        now=now,
        services=tuple(
            dataclasses.replace(
                _service_facts(s, store, *observed[i], address_errors[i], endpoints[i], slots[i]),
                **_tlsrpt_record(cfg, s),
            )
            for i, s in enumerate(services)
        ),
        safety_margin=cfg.safety_margin,
        gate_file=next_cert,
        gate_cert=gate_cert,
        tlsrpt=_tlsrpt_facts(cfg, services, now),
    )


def _tlsrpt_record(cfg: Config, s: Service) -> dict[str, Any]:
    """The service's TLSRPT record as its provider holds it, compared with the config (the
    ServiceFacts fields; none without ``tlsrpt_record``)."""
    if s.tlsrpt_record is None:
        return {}
    try:
        (plan,) = publish.plans([s], {s.provider: _provider(cfg, s)})
    except TlsarotateError as e:
        return {"tlsrpt_record_error": str(e)}
    return {"tlsrpt_record": plan}


def _tlsrpt_facts(cfg: Config, services: tuple[Service, ...], now: float) -> TlsrptFacts | None:
    """The failed sessions of the reports in ``tlsrpt.dir`` whose range ended in the window."""
    t = cfg.tlsrpt
    if t is None:
        return None
    since = now - t.window
    got = ingest.read_dir(t.dir, newer_than=since)
    served = domains_of(services)
    reports, problems = reports_of(got.documents, served, since=since)
    failed = failed_sessions(reports, served)
    return TlsrptFacts(t, len(reports), failed, (*got.problems, *problems))


def _service_facts(
    s: Service,
    store: _StateSource,
    observation: Observation | None,
    observe_error: str | None,
    address_errors: list[tuple[str, str]],
    endpoints: list[Endpoint],
    slots: tuple[SlotFacts, ...],
) -> ServiceFacts:
    try:
        state: State | None = store.load(s.name)
        state_error = None
    except TlsarotateError as e:
        state, state_error = None, str(e)
    try:
        slot_inputs: tuple[planner.SlotInput, ...] | None = load_slots(s)
    except TlsarotateError:
        slot_inputs = None  # the unreadable file is reported per certificate
    cas, cas_error = _ca_set(s)
    return ServiceFacts(
        service=s,
        observation=observation,
        observe_error=observe_error,
        address_errors=tuple(address_errors),
        endpoints=tuple(endpoints),
        state=state,
        state_error=state_error,
        slot_inputs=slot_inputs,
        slots=slots,
        ca_set=cas,
        ca_set_error=cas_error,
    )


def _handshake_types(slots: tuple[SlotFacts, ...]) -> tuple[str | None, ...]:
    """The key types to handshake for: each of RSA and ECDSA when the deployed certificates
    hold both; else (None,), one handshake taking what the server prefers."""
    types = keytypes.distinct(
        keytypes.of_spki(sf.deployed.spki) for sf in slots if sf.deployed is not None
    )
    return types if len(types) > 1 else (None,)


def _ca_set(s: Service) -> tuple[tuple[caset.CaCert, ...], str | None]:
    try:
        return load_ca_set(s), None
    except TlsarotateError as e:
        return (), str(e)


def _slot_facts(slot: CertSlot) -> SlotFacts:
    dep, err = _load(slot.deployed, f"certificate {slot.name!r} (deployed)")
    if dep is None:
        return SlotFacts(slot, None, err or "unreadable")
    if slot.next is None:
        return SlotFacts(slot, dep)
    nxt, nerr = _load(slot.next, f"certificate {slot.name!r} (next)")
    return SlotFacts(slot, dep, None, nxt, nerr)


def _load(paths: config.CertPaths, where: str) -> tuple[material.Material | None, str | None]:
    try:
        return config.load_cert(paths), None
    except TlsarotateError as e:
        return None, f"{where}: {e}"
