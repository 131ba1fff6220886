"""What a loaded configuration is: frozen dataclasses, no parsing and no I/O.

A :class:`Config` holds the providers (by name) and the services; a :class:`Service` names its
zone, owners, records and certificate slots (:class:`CertSlot`), each a deployed and an
optional next certificate (:class:`CertPaths`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.name

from tlsarotate import material, records, safety
from tlsarotate.config.nameservers import Nameserver
from tlsarotate.errors import ConfigError


@dataclass(frozen=True)
class CertPaths:
    """Where a certificate lives: ``cert`` + ``key``, one ``combined`` key+chain file, or a
    certbot ``lineage`` directory (only for ``next``)."""

    cert: Path | None = None
    key: Path | None = None
    combined: Path | None = None
    lineage: Path | None = None

    def describe(self) -> str:
        if self.lineage:
            return str(self.lineage)
        if self.combined:
            return str(self.combined)
        return str(self.cert)


@dataclass(frozen=True)
class Verify:
    starttls: str = "none"
    host: str | None = None
    port: int | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NextKey:
    """Keep-ahead: a pre-generated next private key whose records are published early."""

    path: Path
    type: str = "ecdsa-p256"


@dataclass(frozen=True)
class CertSlot:
    name: str
    deployed: CertPaths
    next: CertPaths | None
    reload: tuple[str, ...] = ()
    verify: Verify | None = None
    next_key: NextKey | None = None
    reload_timeout: float = 60.0  # seconds each run of ``reload`` may take before it is killed


@dataclass(frozen=True)
class StateBackend:
    """Where rollover state lives: ``file`` (state_dir) or ``s3`` (ephemeral CI runners)."""

    backend: str = "file"
    bucket: str | None = None
    prefix: str = "tlsarotate/"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class Tlsrpt:
    """Where TLSRPT reports (RFC 8460) are kept, and when ``check`` warns about their failed
    sessions: WARNING from ``warn``, CRITICAL from ``crit`` failed sessions in the reports
    whose range ends within the last ``window`` seconds."""

    dir: Path
    warn: int = 1
    crit: int = 100
    window: float = 7 * 86400.0


@dataclass(frozen=True)
class TlsrptRecord:
    """A service's TLSRPT record (``tlsrpt_record:``): the ``_smtp._tls.DOMAIN`` TXT record
    ``v=TLSRPTv1; rua=...`` that plan/apply keep as configured and check compares."""

    domain: dns.name.Name
    rua: tuple[str, ...]


@dataclass(frozen=True)
class Service:
    name: str
    zone: dns.name.Name
    provider: str
    hosts: tuple[str, ...]
    ports: tuple[int, ...]
    protocol: str
    ttl: int
    params: tuple[records.Params, ...]
    certificates: tuple[CertSlot, ...]
    allow_unsigned: bool = False
    observe: str = "dns"
    nameservers: tuple[Nameserver, ...] = ()
    # replace: ask only ``nameservers``; add: the zone's NS set and ``nameservers`` (hidden
    # primaries must serve the records too)
    nameservers_mode: str = "replace"
    # shared (default): other writers' records at the owners are kept; exclusive: this service
    # alone writes its owners, so a record it does not account for is stale and removed
    owners_mode: str = "shared"
    # seconds a next certificate must stay valid after the swap (next_min_days)
    next_min_validity: float = material.DEFAULT_MIN_VALIDITY
    # how many records nobody accounts for one write may remove without ``apply --force``
    # (max_stale_removals, max_stale_share)
    limits: safety.Limits = field(default_factory=safety.Limits)
    tlsrpt_record: TlsrptRecord | None = None  # None: the TXT record is not managed
    # shared_owner (RFC 7671 §7): the one owner whose TLSA RRset the tool manages; each host's
    # _PORT._PROTO.HOST (``aliases``) must be a CNAME (chain) to it, published by the operator
    shared_owner: dns.name.Name | None = None
    # ca_set: files (or directories of them) holding the CA certificates the usage 0/2
    # records pin, one record per CA (tlsarotate.caset); empty: the served chain's issuer
    ca_set: tuple[Path, ...] = ()
    # how the DNS observer reads each server: query (one TLSA query per owner) or axfr (one
    # zone transfer per zone, signed with the provider's TSIG key; per-owner queries where a
    # server refuses it)
    observe_read: str = "query"

    @property
    def owners(self) -> list[dns.name.Name]:
        """The owners whose TLSA RRsets this service writes."""
        if self.shared_owner is not None:
            return [self.shared_owner]
        return self.base_names

    @property
    def base_names(self) -> list[dns.name.Name]:
        """Every host's TLSA base name, _PORT._PROTO.HOST (RFC 6698 §3)."""
        return list(_owners(self.hosts, self.ports, self.protocol))

    @property
    def aliases(self) -> list[dns.name.Name]:
        """The base names that must be CNAMEs to ``shared_owner`` (none without one)."""
        return self.base_names if self.shared_owner is not None else []


@functools.lru_cache(maxsize=4096)
def _owners(
    hosts: tuple[str, ...], ports: tuple[int, ...], protocol: str
) -> tuple[dns.name.Name, ...]:
    """A service's TLSA base names, made once: every command asks for them per step, and the
    same name objects make the planner's per-owner dicts cheap (a lookup by the very key)."""
    return tuple(records.owner_name(h, p, protocol) for h in hosts for p in ports)


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    options: Mapping[str, Any]
    line: int | None = None  # YAML line of the provider's mapping
    lines: Mapping[str, int] = field(default_factory=dict)  # option key -> YAML line


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    safety_margin: int
    providers: Mapping[str, ProviderConfig]
    services: tuple[Service, ...]
    lock_timeout: float = 600.0
    state: StateBackend = field(default_factory=StateBackend)
    tlsrpt: Tlsrpt | None = None  # None: no reports directory configured

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.services) or "none"
        raise ConfigError(f"no service named {name!r} (configured: {known})", file=self.path)

    def select(self, name: str | None) -> tuple[Service, ...]:
        return self.services if name is None else (self.service(name),)
