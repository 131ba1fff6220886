"""Adopting what is published (``tlsarotate import``): from the TLSA RRsets a zone holds, and
the certificates the operator names per host, to the ``services:`` that manage them as they
are. Pure: RRsets and certificates in, :class:`Adoption` out; no I/O.

The rules:

- an owner is ``_PORT._PROTO.HOST``; any other name's records are *unaccounted* (kept out of
  every service, reported);
- a host with a certificate (:class:`HostCert`) keeps at each owner the records that match it;
  the others are unaccounted ("no given certificate matches it"); a certificate that matches
  none of a host's records is said so, and its owners get no service;
- a host without a certificate keeps all its records, *unconfirmed* (said so);
- one service per certificate given with its deployed files (a file can be deployed by one
  slot only): its hosts and ports together, the largest TTL, every combination present, each
  owner the plan would change said so; the other records make one service per (host set, port
  set, protocol, TTL, records) grouping, their deployed files left to fill in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.change import Published, TlsaRRset
from tlsarotate.material import Material
from tlsarotate.records import Params

PROTOCOLS = ("tcp", "udp", "sctp")
#: what the deployed paths of a service are when no ``--deployed`` said them
PLACEHOLDER = "/CHANGE-ME/{host}/{file}"

NOT_AN_OWNER = "not a _PORT._PROTO.HOST name: no service can manage it"
UNKNOWN_PARAMS = "unknown usage, selector or matching type: no certificate can match it"
NO_MATCH = "does not match the certificate given for {host}"


@dataclass(frozen=True)
class HostCert:
    """What the operator says a host serves: its certificate, where it is deployed
    (``{"cert": PATH, "key": PATH}`` or ``{"combined": PATH}``; None: not said), and how it was
    given (``--deployed mx.example.com=...``), for messages."""

    material: Material
    deployed: Mapping[str, str] | None
    source: str


@dataclass(frozen=True)
class Unaccounted:
    """A published record no service of the adoption manages, and why."""

    owner: dns.name.Name
    ttl: int
    record: TLSA
    reason: str


@dataclass(frozen=True)
class Draft:
    """One service of the adoption: the config entry, and what was said about it."""

    name: str
    hosts: tuple[str, ...]
    ports: tuple[int, ...]
    protocol: str
    ttl: int
    params: tuple[Params, ...]
    deployed: Mapping[str, str] | None  # None: not known (given): :func:`placeholder` paths
    confirmed_by: tuple[str, ...]  # the certificates that matched its records (sources)
    unaccounted: tuple[Unaccounted, ...] = ()  # at its owners
    notes: tuple[str, ...] = ()  # what is not as it will be managed (what plan would change)


@dataclass(frozen=True)
class Adoption:
    zone: dns.name.Name
    provider: str
    services: tuple[Draft, ...]
    unaccounted: tuple[Unaccounted, ...]  # at owners no service manages
    warnings: tuple[str, ...]
    common: Mapping[str, Any] = field(default_factory=dict)  # keys every service gets

    @property
    def all_unaccounted(self) -> list[Unaccounted]:
        return [u for s in self.services for u in s.unaccounted] + list(self.unaccounted)


@dataclass(frozen=True)
class _Owner:
    owner: dns.name.Name
    host: str
    port: int
    protocol: str
    rrset: TlsaRRset  # the records adopted (a certificate's, or all of them)
    cert: HostCert | None


def split_owner(owner: dns.name.Name, zone: dns.name.Name) -> tuple[int, str, str] | None:
    """``_25._tcp.mx.example.com.`` -> (25, "tcp", "mx.example.com."); None for any other name
    (or a host outside ``zone``)."""
    if len(owner.labels) < 3:
        return None
    port, proto = (lb.decode("ascii", "replace") for lb in owner.labels[:2])
    host = owner.parent().parent()
    if not (port[:1] == "_" and port[1:].isdigit() and not port[1:].startswith("0")):
        return None
    if proto[1:] not in PROTOCOLS or proto[:1] != "_" or not host.is_subdomain(zone):
        return None
    n = int(port[1:])
    return (n, proto[1:], host.to_text()) if 1 <= n <= 65535 else None


def params_text(params: tuple[Params, ...]) -> list[str]:
    return [str(p) for p in params]


def _order(params: set[Params]) -> tuple[Params, ...]:
    """DANE-EE SPKI first, as the defaults are ("3 1 1", "3 0 1")."""
    return tuple(sorted(params, key=lambda p: (-p.usage, -p.selector, p.mtype)))


def _judge(
    zone: dns.name.Name,
    published: Published,
    certs: Mapping[str, HostCert],
    lost: list[Unaccounted],
    warnings: list[str],
) -> list[_Owner]:
    """Each owner's adopted records; the rest into ``lost``, with why."""
    owners: list[_Owner] = []
    for owner in sorted(published):
        rr = published[owner]
        where = split_owner(owner, zone)
        if where is None:
            lost += [Unaccounted(owner, rr.ttl, rd, NOT_AN_OWNER) for rd in rr.sorted()]
            continue
        port, proto, host = where
        keep: list[TLSA] = []
        cert = certs.get(host)
        for rd in rr.sorted():
            if not records.usable(rd):
                lost.append(Unaccounted(owner, rr.ttl, rd, UNKNOWN_PARAMS))
            elif cert is None or records.matches_material(rd, cert.material):
                keep.append(rd)
            else:
                why = NO_MATCH.format(host=host.rstrip("."))
                lost.append(Unaccounted(owner, rr.ttl, rd, why))
        if cert is not None and not keep:
            warnings.append(
                f"{owner}: the certificate given for {host} ({cert.source}) matches none of "
                f"its {len(rr.records)} record(s): no service adopts them"
            )
        if keep:
            owners.append(_Owner(owner, host, port, proto, TlsaRRset.of(rr.ttl, keep), cert))
    return owners


def _name(hosts: tuple[str, ...], ports: tuple[int, ...], taken: set[str]) -> str:
    base = hosts[0].rstrip(".")
    name = base if base not in taken else f"{base}-{'-'.join(map(str, ports))}"
    i = 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _sources(group: list[_Owner]) -> tuple[str, ...]:
    """How the certificates that confirmed these owners were given."""
    return tuple(sorted({o.cert.source for o in group if o.cert is not None}))


def _deployed_service(group: list[_Owner], cert: HostCert, taken: set[str]) -> Draft:
    """One service for every owner of one deployed certificate (see the module docstring)."""
    hosts = tuple(sorted({o.host for o in group}))
    ports = tuple(sorted({o.port for o in group}))
    ttl = max(o.rrset.ttl for o in group)
    params = _order({records.params_of(rd) for o in group for rd in o.rrset.records})
    have = {(o.host, o.port): o for o in group}
    notes: list[str] = []
    for h in hosts:
        for p in ports:
            o = have.get((h, p))
            owner = records.owner_name(h, p, group[0].protocol)
            if o is None:
                notes.append(f"{owner}: no records of this certificate yet: plan publishes them")
                continue
            if o.rrset.ttl != ttl:
                notes.append(f"{owner}: TTL {o.rrset.ttl}: plan sets it to {ttl}")
            missing = set(params) - {records.params_of(rd) for rd in o.rrset.records}
            if missing:
                what = ", ".join(params_text(_order(missing)))
                notes.append(f"{owner}: no {what} record: plan publishes one")
    return Draft(
        _name(hosts, ports, taken),
        hosts,
        ports,
        group[0].protocol,
        ttl,
        params,
        cert.deployed,
        _sources(group),
        notes=tuple(notes),
    )


def placeholder(host: str) -> dict[str, str]:
    """The deployed paths a service gets when none were given (validate refuses them)."""
    h = host.rstrip(".")
    return {
        "cert": PLACEHOLDER.format(host=h, file="fullchain.pem"),
        "key": PLACEHOLDER.format(host=h, file="privkey.pem"),
    }


def _record_services(group: list[_Owner], taken: set[str]) -> list[Draft]:
    """The owners with the same records, TTL and protocol: one service per set of hosts that
    share a set of ports."""
    by_host: dict[str, set[int]] = {}
    for o in group:
        by_host.setdefault(o.host, set()).add(o.port)
    by_ports: dict[tuple[int, ...], list[str]] = {}
    for h, ps in sorted(by_host.items()):
        by_ports.setdefault(tuple(sorted(ps)), []).append(h)
    out = []
    first = group[0]
    params = _order({records.params_of(rd) for rd in first.rrset.records})
    for ports, hosts in sorted(by_ports.items(), key=lambda kv: kv[1]):
        name = _name(tuple(hosts), ports, taken)
        confirmed = _sources([o for o in group if o.host in hosts])
        out.append(
            Draft(
                name, tuple(hosts), ports, first.protocol, first.rrset.ttl, params, None, confirmed
            )
        )
    return out


def adopt(
    zone: dns.name.Name,
    provider: str,
    published: Published,
    certs: Mapping[str, HostCert],
    common: Mapping[str, Any] | None = None,
) -> Adoption:
    """The services that manage ``published`` (owner -> RRset, all in ``zone``) as it is.
    ``certs``: host (absolute, ``mx.example.com.``) -> its certificate; ``common``: config keys
    every service gets (``nameservers``, ``observe``)."""
    lost: list[Unaccounted] = []
    warnings: list[str] = []
    owners = _judge(zone, published, certs, lost, warnings)
    deployed: dict[tuple[str, tuple[tuple[str, str], ...]], list[_Owner]] = {}
    by_records: dict[tuple[str, int, frozenset[TLSA], str], list[_Owner]] = {}
    for o in owners:
        if o.cert is not None and o.cert.deployed is not None:
            key = (o.protocol, tuple(sorted(o.cert.deployed.items())))
            deployed.setdefault(key, []).append(o)
        else:
            fp = o.cert.material.fingerprint if o.cert else ""
            by_records.setdefault((o.protocol, o.rrset.ttl, o.rrset.records, fp), []).append(o)
    taken: set[str] = set()
    drafts: list[Draft] = []
    for group in deployed.values():
        cert = group[0].cert
        assert cert is not None
        drafts.append(_deployed_service(group, cert, taken))
    for group in by_records.values():
        drafts += _record_services(group, taken)
    drafts.sort(key=lambda d: (d.hosts, d.ports))
    drafts = [_with_lost(d, lost) for d in drafts]
    managed = {
        records.owner_name(h, p, d.protocol) for d in drafts for h in d.hosts for p in d.ports
    }
    rest = tuple(u for u in lost if u.owner not in managed)
    warnings += _warnings(drafts, rest, published, certs, zone)
    return Adoption(zone, provider, tuple(drafts), rest, tuple(warnings), dict(common or {}))


def _with_lost(d: Draft, lost: list[Unaccounted]) -> Draft:
    """``d`` with the unaccounted records at its owners, and what the plan does about their
    combinations (each one present must match every host: the plan publishes ours for it)."""
    mine = {records.owner_name(h, p, d.protocol) for h in d.hosts for p in d.ports}
    here = tuple(u for u in lost if u.owner in mine)
    notes = list(d.notes)
    for owner in sorted({u.owner for u in here}):
        theirs = {records.params_of(u.record) for u in here if u.owner == owner}
        extra = {p for p in theirs - set(d.params) if p.usage in records.USAGES}
        if extra:
            what = ", ".join(params_text(_order(extra)))
            notes.append(
                f"{owner}: the records no certificate accounts for use {what}: plan publishes "
                "this service's own (every combination present must match)"
            )
    return dataclasses.replace(d, unaccounted=here, notes=tuple(notes))


def _warnings(
    drafts: list[Draft],
    rest: tuple[Unaccounted, ...],
    published: Published,
    certs: Mapping[str, HostCert],
    zone: dns.name.Name,
) -> list[str]:
    out = []
    for d in drafts:
        if not d.confirmed_by:
            out.append(
                f"service {d.name}: no certificate given for {_hosts(d.hosts)} (--deployed or "
                "--cert): its records are adopted unconfirmed"
            )
        if d.deployed is None:
            out.append(
                f"service {d.name}: deployed certificate paths unknown: give --deployed "
                "HOST=CERT,KEY or fill in certificate.deployed"
            )
        out += [f"service {d.name}: {n}" for n in d.notes]
    hosts = {w[2] for o in published if (w := split_owner(o, zone)) is not None}
    for host, cert in sorted(certs.items()):
        if host not in hosts:
            out.append(
                f"{host}: a certificate was given ({cert.source}) but no TLSA records are "
                "published for it"
            )
    lost = [u for d in drafts for u in d.unaccounted] + list(rest)
    if lost:
        owners = len({u.owner for u in lost})
        out.append(
            f"{len(lost)} published record(s) at {owners} owner(s) that no given certificate "
            "accounts for: listed as comments, not adopted"
        )
    return out


def _hosts(hosts: tuple[str, ...]) -> str:
    return ", ".join(h.rstrip(".") for h in hosts)


def service_config(d: Draft, a: Adoption) -> dict[str, Any]:
    """The ``services:`` entry of ``d``, as the config file has it."""
    m: dict[str, Any] = {
        "name": d.name,
        "zone": a.zone.to_text(),
        "provider": a.provider,
        "hosts": [h.rstrip(".") for h in d.hosts],
        "ports": list(d.ports),
        "protocol": d.protocol,
        "ttl": d.ttl,
        "records": params_text(d.params),
    }
    m.update(a.common)
    deployed = d.deployed if d.deployed is not None else placeholder(d.hosts[0])
    m["certificate"] = {"deployed": dict(deployed)}
    return m


def config_of(a: Adoption) -> dict[str, Any]:
    """The ``services:`` section that manages what ``a`` adopted."""
    return {"services": [service_config(d, a) for d in a.services]}
