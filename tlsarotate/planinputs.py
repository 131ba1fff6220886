"""One service's planner inputs read from disk: its certificates (deployed, next, keep-ahead key;
a slot with nothing deployed yet is a first issuance, see :mod:`tlsarotate.bootstrap`) and the
:class:`~tlsarotate.planner.PlanInput` made of them and of what DNS and the state say."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dns.name

from tlsarotate import bootstrap, caset, nextkey, planner
from tlsarotate.change import TlsaRRset
from tlsarotate.config import CertPaths, Service, deployed_link_check, load_cert
from tlsarotate.errors import ConfigError, MaterialError, TlsarotateError
from tlsarotate.fsutil import read_file
from tlsarotate.material import Material
from tlsarotate.observation import Observation
from tlsarotate.state import State


def _nothing_deployed(paths: CertPaths) -> bool:
    """No file (not even a dangling link) at any of the deployed paths: a first issuance."""
    return not any(
        p is not None and os.path.lexists(p) for p in (paths.combined, paths.cert, paths.key)
    )


def _load_next(paths: CertPaths, where: str) -> Material:
    try:
        return load_cert(paths)
    except TlsarotateError as e:
        raise ConfigError(f"{where}: next certificate: {e}") from None


def load_slots(
    svc: Service, first: list[bootstrap.FirstSlot] | None = None
) -> tuple[planner.SlotInput, ...]:
    """Read every certificate of a service (deployed, next, keep-ahead key) from disk. With
    ``first`` given, a slot with nothing at its deployed paths yet and a next certificate (a
    first issuance) goes there instead."""
    out = []
    for slot in svc.certificates:
        where = f"service {svc.name!r} certificate {slot.name!r}"
        if first is not None and _nothing_deployed(slot.deployed):
            if slot.next is None:
                raise ConfigError(
                    f"{where}: nothing is deployed at {slot.deployed.describe()} yet, and no "
                    "`next:` certificate is configured to install there first"
                )
            first.append(bootstrap.FirstSlot(slot.name, _load_next(slot.next, where)))
            continue
        try:
            deployed_link_check(slot.deployed)  # never followed into a place not named
            deployed = load_cert(slot.deployed)
        except TlsarotateError as e:
            raise ConfigError(f"{where}: deployed certificate: {e}") from None
        nxt = _load_next(slot.next, where) if slot.next is not None else None
        key: Material | None = None
        if slot.next_key is not None and slot.next_key.path.exists():
            try:
                key = nextkey.load(slot.next_key.path)
            except TlsarotateError as e:
                raise ConfigError(f"{where}: next_key: {e}") from None
        out.append(planner.SlotInput(slot.name, deployed, nxt, key))
    return tuple(out)


def _ca_files(path: Path) -> list[Path]:
    """The file itself, or the files in a directory (not the hidden ones)."""
    if not path.is_dir():
        return [path]
    try:
        return sorted(p for p in path.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise MaterialError(f"{path}: cannot list the directory: {e.strerror}") from None


def load_ca_set(svc: Service) -> tuple[caset.CaCert, ...]:
    """The CA certificates of a service's ``ca_set`` (each file, or each file in a named
    directory), one of each. :class:`ConfigError` in one line naming the service and file."""
    out: dict[str, caset.CaCert] = {}
    for path in svc.ca_set:
        try:
            files = _ca_files(path)
            if not files:
                raise MaterialError(f"{path}: an empty directory, expected CA certificate files")
            for f in files:
                data = read_file(f, "CA certificate file", error=MaterialError)
                for ca in caset.parse(data, str(f)):
                    out.setdefault(ca.fingerprint, ca)
        except TlsarotateError as e:
            raise ConfigError(f"service {svc.name!r} ca_set: {e}") from None
    return tuple(out.values())


def plan_input(
    svc: Service,
    slots: tuple[planner.SlotInput, ...],
    published: Mapping[dns.name.Name, TlsaRRset],
    observation: Observation | None,
    state: State,
    now: float,
    safety_margin: int,
    force_cleanup: bool = False,
    first: tuple[bootstrap.FirstSlot, ...] = (),
    ttl: int | None = None,
    owners: tuple[dns.name.Name, ...] | None = None,
    ca_set: tuple[caset.CaCert, ...] | None = None,
) -> planner.PlanInput:
    """What the planner needs to know about one configured service; ``ttl``: the TTL its
    provider applies for the configured one, when that differs (default: ``svc.ttl``);
    ``owners``: the names ``published`` and ``observation`` were read for, when the caller has
    them (the planner's lookups then find the very same objects); ``ca_set``: the service's
    CA certificates when the caller read them (default: read here)."""
    return planner.PlanInput(
        service=svc.name,
        zone=svc.zone,
        owners=tuple(svc.owners) if owners is None else owners,
        ttl=svc.ttl if ttl is None else ttl,
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
        limits=svc.limits,
        first=first,
        aliases=tuple(svc.aliases),
        ca_set=load_ca_set(svc) if ca_set is None else ca_set,
    )
