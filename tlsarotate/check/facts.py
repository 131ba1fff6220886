"""What ``tlsarotate check`` gathered (the I/O results, nothing judged yet).

:mod:`tlsarotate.check.gather` fills these in (DNS answers, served chains, certificate files,
rollover state); :mod:`tlsarotate.check.judge` turns them into a report without doing I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.name

from tlsarotate import caset, material, planner
from tlsarotate.config import CertSlot, Service, Tlsrpt
from tlsarotate.observation import Observation
from tlsarotate.served import ServedChain
from tlsarotate.state import State
from tlsarotate.tlsrpt.record import TxtPlan


@dataclass(frozen=True)
class Endpoint:
    """One address of one host and port, and the chain it served. ``key_type`` (rsa, ecdsa):
    the handshake offered only that key type, for a service whose slots hold both (one
    Endpoint per type and address); None: one handshake, whatever the server prefers."""

    service: str
    host: str
    port: int
    owner: dns.name.Name
    address: str
    starttls: str
    served: ServedChain
    key_type: str | None = None


@dataclass(frozen=True)
class SlotFacts:
    """One certificate slot's files as read. ``next`` is only read when ``deployed`` was."""

    slot: CertSlot
    deployed: material.Material | None
    deployed_error: str | None = None  # "certificate 'default' (deployed): ..."
    next: material.Material | None = None
    next_error: str | None = None


@dataclass(frozen=True)
class ServiceFacts:
    service: Service
    observation: Observation | None  # None: the zone's servers could not be observed
    observe_error: str | None
    address_errors: tuple[tuple[str, str], ...]  # (host, why its addresses are unknown)
    endpoints: tuple[Endpoint, ...]
    state: State | None  # the rollover state (None: none readable)
    state_error: str | None
    slot_inputs: tuple[planner.SlotInput, ...] | None  # None: not every file readable
    slots: tuple[SlotFacts, ...]
    # the TLSRPT record (tlsrpt_record) as the provider holds it, compared with the config
    tlsrpt_record: TxtPlan | None = None
    tlsrpt_record_error: str | None = None  # it could not be read
    # config ``ca_set``: the CA certificates as read (ca_set_error: why they could not be)
    ca_set: tuple[caset.CaCert, ...] = ()
    ca_set_error: str | None = None


@dataclass(frozen=True)
class TlsrptFacts:
    """The TLSRPT reports in the configured directory whose range ended within the window."""

    config: Tlsrpt
    reports: int
    failed: Mapping[tuple[str, str, str], int]  # (policy domain, MX, result type) -> sessions
    problems: tuple[str, ...] = field(default=())  # one line per file or policy skipped


@dataclass(frozen=True)
class CheckFacts:
    now: float
    services: tuple[ServiceFacts, ...]
    safety_margin: int
    gate_file: str | None = None  # --next CERT
    gate_cert: material.Material | None = None
    tlsrpt: TlsrptFacts | None = None  # None: no tlsrpt.dir configured
