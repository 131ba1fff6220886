"""``validate``'s look at the files a loaded config names, beyond its syntax: the state
directory, each provider's files, every certificate and key (and whether the planner would
accept the next one). Each problem is one :class:`~tlsarotate.errors.ConfigError` line."""

from __future__ import annotations

import os
import time

from tlsarotate import material, nextkey, records
from tlsarotate.config.certpaths import deployed_link_check, load_cert
from tlsarotate.config.model import Config, ProviderConfig, Service
from tlsarotate.errors import ConfigError, TlsarotateError


def check_files(cfg: Config, now: float | None = None) -> list[str]:
    """Load every certificate and key the config names and every provider file; return one
    line per service slot describing what was found (and a note where a next certificate has
    names DANE-EE clients ignore). Raises on the first problem, including a next certificate
    the planner would refuse to swap in at ``now`` (expired, not valid yet, wrong names, not
    signed by the CA its 2 x x records pin)."""
    from tlsarotate import providers as registry

    when = time.time() if now is None else now
    lines: list[str] = []
    _check_state_dir(cfg)  # a directory that exists or can be created
    if cfg.state.backend == "file":
        from tlsarotate.stores.file import dir_problem

        problem = dir_problem(cfg.state_dir)  # a link, not ours, writable by others
        if problem:
            raise ConfigError(problem, file=cfg.path)
    for pc in cfg.providers.values():
        try:
            registry.get_class(pc.type).check_files(pc.name, pc.options)
        except TlsarotateError as e:
            raise _provider_error(cfg, pc, e) from None
    for s in cfg.services:
        pc = cfg.providers[s.provider]
        try:
            cls = registry.get_class(pc.type)
            cls.check_limits(s.ttl)  # a TTL the backend refuses (deSEC: below 3600)
            cls.check_service(pc.options, s.zone, s.ttl)
        except TlsarotateError as e:
            if isinstance(e, ConfigError) and e.key in pc.lines:  # about the provider's option
                raise _provider_error(cfg, pc, e, f" (service {s.name!r})") from None
            raise ConfigError(
                f"service {s.name!r} (provider {pc.name}, {pc.type}): {e}", file=cfg.path
            ) from None
        lines.extend(_check_slots(cfg, s, when))
        lines.extend(_check_ca_set(cfg, s, when))
    return lines


def _check_ca_set(cfg: Config, s: Service, when: float) -> list[str]:
    """A service's ``ca_set``: every file a CA certificate, and each next certificate issued
    by one of them (else the swap would refuse it). One line naming the CAs."""
    if not s.ca_set:
        return []
    from tlsarotate import caset
    from tlsarotate.planinputs import load_ca_set

    try:
        cas = load_ca_set(s)
    except ConfigError as e:
        raise ConfigError(e.message, file=cfg.path) from None
    for slot in s.certificates:
        nxt = load_cert(slot.next) if slot.next else None  # loaded (and checked) above
        if nxt is not None and not caset.member(cas, nxt.chain_der, s.params):
            raise ConfigError(
                f"service {s.name!r} certificate {slot.name!r}: next certificate "
                f"{slot.next.describe() if slot.next else ''} {caset.outside(nxt)}",
                file=cfg.path,
            )
    expired = [c.subject for c in cas if c.not_after <= when]
    return [
        f"{s.name}: ca_set pins {len(cas)} CA certificate(s): {', '.join(c.subject for c in cas)}"
        + (f"; note: expired: {', '.join(expired)}" if expired else "")
    ]


def _check_slots(cfg: Config, s: Service, when: float) -> list[str]:
    lines: list[str] = []
    for slot in s.certificates:
        where = f"service {s.name!r} certificate {slot.name!r}"
        try:
            deployed_link_check(slot.deployed)
            dep = load_cert(slot.deployed)
            nxt = load_cert(slot.next) if slot.next else None
            for p in s.params:
                records.build(dep, p)
                if nxt is not None:
                    records.build(nxt, p)
            if slot.next_key is not None and (
                slot.next_key.path.exists() or slot.next_key.path.is_symlink()
            ):
                nextkey.load(slot.next_key.path)  # the loader apply uses, same checks
        except TlsarotateError as e:
            raise ConfigError(f"{where}: {e}", file=cfg.path) from None
        notes: list[str] = []
        if nxt is not None and not nxt.same_as(dep):
            usages = {p.usage for p in s.params}
            for u in material.unfit(nxt, when, s.hosts, usages, s.next_min_validity):
                if u.blocking:
                    raise ConfigError(
                        f"{where}: next certificate "
                        f"{slot.next.describe() if slot.next else ''} {u.reason}",
                        file=cfg.path,
                    )
                notes.append(f"note: next certificate {u.reason}")
        lines.append(
            f"{s.name}/{slot.name}: deployed {dep.spki_sha256[:16]}… "
            + (
                "next: the deployed one; nothing to roll over"
                if nxt is not None and nxt.same_as(dep)
                else f"next {nxt.spki_sha256[:16]}…"
                if nxt
                else "no next certificate"
            )
            + "".join(f"; {n}" for n in notes)
        )
    return lines


def _provider_error(
    cfg: Config, pc: ProviderConfig, e: TlsarotateError, suffix: str = ""
) -> ConfigError:
    """A provider's error at the line of the option it names (``e.key``), else at the
    provider's own line."""
    if isinstance(e, ConfigError) and e.key is not None and e.key in pc.lines:
        return ConfigError(
            e.message + suffix,
            file=cfg.path,
            line=pc.lines[e.key],
            key=f"providers.{pc.name}.{e.key}",
        )
    return ConfigError(f"{e}{suffix}", file=cfg.path, line=pc.line, key=f"providers.{pc.name}")


def _check_state_dir(cfg: Config) -> None:
    """``state_dir`` must be a directory tlsarotate can write (or create), not a file."""
    if cfg.state.backend != "file":
        return
    d = cfg.state_dir
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the nearest existing ancestor: mkdir -p starts there
    if not probe.is_dir():
        what = "is not a directory" if probe == d else f"cannot be created: {probe} is a file"
        raise ConfigError(f"{d} {what}", file=cfg.path, key="state_dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = d if probe == d else f"{probe} (to create {d})"
        raise ConfigError(f"{where} is not writable", file=cfg.path, key="state_dir")
