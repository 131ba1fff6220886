"""The ``octodns`` provider: any octoDNS provider class that supports TLSA, driven through its
own populate/plan/apply, touching only the managed TLSA owners.

Config::

    providers:
      pdns:
        type: octodns
        class: octodns_powerdns.PowerDnsProvider   # pip install octodns-powerdns
        options:                                   # the octoDNS class's own options
          host: 127.0.0.1
          port: 8081
          api_key: env/PDNS_API_KEY                # octoDNS's env/VAR; or api_key_env: VAR,
                                                   # or api_key_file: /etc/tlsarotate/pdns.key

Reading populates an octoDNS ``Zone`` from the backend and returns the TLSA RRsets of the
managed owners. Writing is one octoDNS plan per zone change (one per part, see below): the
desired zone is the zone as it is now (populated just before) with only the managed TLSA owners
changed, so octoDNS never plans a delete of anything else; the plan is checked before it is
applied: a change outside the managed TLSA owners refuses the write (one line, nothing
written), and a managed owner whose RRset in the plan's fresh read is not the ``old`` one is a
:class:`~tlsarotate.errors.ConcurrentChangeError`. This is never a whole-zone sync.

octoDNS has no prerequisites: :meth:`~tlsarotate.providers.base.Provider.apply` reads and
checks every owner first, and the plan's own read is checked again (a change landing between
that read and the backend's write goes unseen). How atomic a write is depends on the octoDNS
class: ``octodns_powerdns`` sends one PATCH per plan (PowerDNS applies it in one transaction);
``octodns_bind``'s ``Rfc2136Provider`` sends one UPDATE per ``update_batch_size`` changes, so
:meth:`OctoDnsProvider.parts` splits a change into parts of that many owners, each one UPDATE;
any other class is declared non-atomic (its ``_apply`` may take several API calls).

Secrets come from ``env/VAR`` values (as octoDNS's manager resolves them) or the project's
``KEY_env``/``KEY_file`` options and never appear in an error, a log line or ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import dns.name

from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers import octodns_bridge as bridge
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    WriteToken,
    rrset_summary,
)

# octoDNS classes known to apply one plan in one atomic backend write (per batch)
ATOMIC_MODULES = ("octodns_powerdns", "octodns_bind")


@dataclass(frozen=True)
class Expected(WriteToken):
    """What the backend must hold once the plan is live: each owner's new RRset (None: none)."""

    expect: tuple[tuple[dns.name.Name, TlsaRRset | None], ...]


class OctoDnsProvider(Provider):
    type_name: ClassVar[str] = "octodns"
    options: ClassVar[Mapping[str, Option]] = {
        "class": Option(
            str, required=True, help="the octoDNS provider class, e.g. octodns_powerdns.Provider"
        ),
        "options": Option(dict, default={}, help="the octoDNS class's own options"),
    }
    # txt: where the octoDNS class has TXT in its SUPPORTS (txt_problem says so at load)
    capabilities: ClassVar[Capabilities] = Capabilities(atomic=False, prerequisites=False, txt=True)
    part_unit: ClassVar[str] = "octoDNS plan"

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        try:
            self.octo_class = bridge.load_class(self.opts["class"])
            kwargs, self._secrets = bridge.resolve_options(
                self.octo_class, self.opts.get("options") or {}
            )
        except ConfigError as e:
            raise ConfigError(f"provider {name}: {e}") from None
        self.class_path = str(self.opts["class"])
        try:
            self.octo = self.octo_class(name, **kwargs)
        except Exception as e:
            raise ConfigError(
                f"provider {name}: octoDNS class {self.class_path} refused its options: "
                f"{bridge.failure(e, self._secrets)}"
            ) from None
        self.octo.log = bridge.quiet_log(name)
        _configure_validators()
        batch = getattr(self.octo, "update_batch_size", None)
        atomic = self.octo_class.__module__.split(".")[0] in ATOMIC_MODULES
        self.capabilities = Capabilities(  # type: ignore[misc]
            atomic=atomic,
            prerequisites=False,
            max_changes_per_write=int(batch) if isinstance(batch, int) and batch > 0 else None,
            txt="TXT" in (getattr(self.octo_class, "SUPPORTS", None) or ()),
        )

    @classmethod
    def txt_problem(cls, options: Mapping[str, Any]) -> str | None:
        try:
            octo_class = bridge.load_class(options.get("class"))
        except ConfigError as e:
            return f"cannot write TXT records: {e}"
        if "TXT" not in (getattr(octo_class, "SUPPORTS", None) or ()):
            return f"cannot write TXT records: octoDNS class {options.get('class')} lacks TXT"
        return None

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        octo_class = bridge.load_class(options.get("class"))
        bridge.resolve_options(octo_class, options.get("options") or {}, check_files=True)

    def __repr__(self) -> str:
        return f"OctoDnsProvider({self.name!r}, {self.class_path})"

    # ---- octoDNS calls -----------------------------------------------------------------
    def _call(self, what: str, zone: dns.name.Name, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ProviderError:
            raise
        except Exception as e:
            raise self.error(
                f"octoDNS {self.class_path}: {what} of zone {zone} failed: "
                f"{bridge.failure(e, self._secrets)}"
            ) from None

    def _populate(self, zone: dns.name.Name) -> Any:
        """The zone as the backend holds it now (an octoDNS ``Zone``)."""
        from octodns.zone import Zone

        octo_zone = Zone(zone.to_text(), [])
        exists = self._call(
            "populate", zone, lambda: self.octo.populate(octo_zone, target=True, lenient=True)
        )
        if exists is False:
            raise self.error(f"octoDNS {self.class_path}: zone {zone} does not exist there")
        return octo_zone

    def _tlsa(self, octo_zone: Any, owners: Sequence[dns.name.Name]) -> dict[dns.name.Name, Any]:
        wanted = set(owners)
        return {
            bridge.owner_of(r): r
            for r in octo_zone.records
            if r._type == "TLSA" and bridge.owner_of(r) in wanted
        }

    # ---- read --------------------------------------------------------------------------
    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        for o in owners:
            if not o.is_subdomain(zone):
                raise self.error(f"owner {o} is not in zone {zone}")
        octo_zone = self._populate(zone)
        found = self._tlsa(octo_zone, owners)
        try:
            return {o: bridge.tlsa_rrset(r) for o, r in found.items()}
        except ValueError as e:
            raise self.error(f"octoDNS {self.class_path}: zone {zone}: {e}") from None

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        """The owners holding TLSA in the octoDNS provider's own read of the zone."""
        octo_zone = self._populate(zone)
        return sorted({bridge.owner_of(r) for r in octo_zone.records if r._type == "TLSA"})

    # ---- write -------------------------------------------------------------------------
    def write(self, part: ZoneChange) -> Expected:
        from octodns.record import Record
        from octodns.zone import Zone

        zone = part.zone
        managed = {c.owner for c in part.changes}
        existing = self._populate(zone)
        desired = Zone(zone.to_text(), [])
        root_ns = bool(getattr(self.octo_class, "SUPPORTS_ROOT_NS", False))
        for r in existing.records:
            if r._type == "TLSA" and bridge.owner_of(r) in managed:
                continue
            if r._type == "NS" and r.name == "" and not root_ns:
                continue  # octoDNS would refuse to plan it (and never touches it)
            desired.add_record(r, lenient=True)
        for ch in part.changes:
            if ch.new is not None:
                name = ch.owner.relativize(zone).to_text() if ch.owner != zone else ""
                desired.add_record(Record.new(desired, name, bridge.tlsa_data(ch.new)))
        plan = self._call("plan", zone, self.octo.plan, desired)
        token = Expected(tuple((c.owner, c.new) for c in part.changes))
        if plan is None:
            return token  # the backend holds the new RRsets already
        self._check_plan(part, plan)
        self._call("apply", zone, self.octo.apply, plan)
        return token

    def _check_plan(self, part: ZoneChange, plan: Any) -> None:
        """Refuse a plan that changes anything but the managed TLSA owners, or whose fresh read
        of a managed owner is not its ``old`` RRset."""
        managed = {c.owner: c for c in part.changes}
        outside = [
            c.record
            for c in plan.changes
            if c.record._type != "TLSA" or bridge.owner_of(c.record) not in managed
        ]
        if outside:
            first = outside[0]
            more = f" and {len(outside) - 1} more" if len(outside) > 1 else ""
            raise self.error(
                f"octoDNS {self.class_path} planned a change outside the managed TLSA owners "
                f"({first.fqdn} {first._type}{more}); refusing the write, nothing was written"
            )
        now = self._tlsa(plan.existing, list(managed))
        for owner, ch in managed.items():
            found = bridge.tlsa_rrset(now[owner]) if owner in now else None
            if found != ch.old:
                raise self.error(
                    f"the TLSA RRset at {owner} changed since it was read "
                    f"(expected {rrset_summary(ch.old)}, found {rrset_summary(found)}); "
                    "nothing was written",
                    ConcurrentChangeError,
                )

    # ---- TXT (a service's TLSRPT record) --------------------------------------------------
    def _txt_record(self, octo_zone: Any, name: dns.name.Name) -> Any:
        found = [r for r in octo_zone.records if r._type == "TXT" and bridge.owner_of(r) == name]
        return found[0] if found else None

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        if not self.capabilities.txt:
            raise self.error(f"cannot read TXT records: octoDNS class {self.class_path} lacks TXT")
        rec = self._txt_record(self._populate(zone), name)
        return bridge.txt_rrset(rec) if rec is not None else None

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> WriteToken:
        """One octoDNS plan: the zone as populated with only the TXT RRset at ``name``
        replaced; a plan touching anything else, or whose fresh read at ``name`` is not
        ``old``, is refused (nothing written)."""
        from octodns.record import Record
        from octodns.zone import Zone

        if not self.capabilities.txt:
            raise self.error(f"cannot write TXT records: octoDNS class {self.class_path} lacks TXT")
        existing = self._populate(zone)
        desired = Zone(zone.to_text(), [])
        root_ns = bool(getattr(self.octo_class, "SUPPORTS_ROOT_NS", False))
        for r in existing.records:
            if r._type == "TXT" and bridge.owner_of(r) == name:
                continue
            if r._type == "NS" and r.name == "" and not root_ns:
                continue  # octoDNS would refuse to plan it (and never touches it)
            desired.add_record(r, lenient=True)
        if new is not None:
            rel = name.relativize(zone).to_text() if name != zone else ""
            try:
                data = bridge.txt_data(new)
            except UnicodeDecodeError:
                raise self.error(
                    f"a TXT record at {name} is not ASCII text: octoDNS would rewrite it; "
                    "nothing was written"
                ) from None
            desired.add_record(Record.new(desired, rel, data))
        plan = self._call("plan", zone, self.octo.plan, desired)
        if plan is None:
            return WriteToken()
        outside = [
            c.record
            for c in plan.changes
            if c.record._type != "TXT" or bridge.owner_of(c.record) != name
        ]
        if outside:
            raise self.error(
                f"octoDNS {self.class_path} planned a change outside the TXT RRset at {name} "
                f"({outside[0].fqdn} {outside[0]._type}); refusing the write, nothing was written"
            )
        now = self._txt_record(plan.existing, name)
        if (bridge.txt_rrset(now) if now is not None else None) != old:
            raise self.error(
                f"the TXT RRset at {name} changed since it was read; nothing was written",
                ConcurrentChangeError,
            )
        self._call("apply", zone, self.octo.apply, plan)
        # done once the backend's own read holds it (an AXFR of BIND's inline-signed zone
        # lags the UPDATE): the next plan is built from that read
        if not self.poll(lambda: self.read_txt(zone, name) == new, 30.0):
            raise self.error(
                f"the TXT RRset at {name} was written but not read back within 30s; re-run to check"
            )
        return WriteToken()

    def after_part(self, part: ZoneChange, token: WriteToken) -> None:
        """Plan the next part only once the backend's read shows this one: the next desired
        zone is built from that read (an AXFR of BIND's inline-signed zone lags the UPDATE),
        and a stale one would make octoDNS plan to undo this part (refused)."""
        waited, step, limit = 0.0, 0.1, 30.0
        while not self.is_live(part.zone, [token]):
            if waited >= limit:
                raise self.error(
                    f"part of a split write to zone {part.zone} was applied but not read back "
                    f"within {limit:g}s; re-run to re-plan"
                )
            self.context.clock.sleep(step)
            waited += step

    def is_live(self, zone: dns.name.Name, tokens: Sequence[WriteToken]) -> bool:
        """True once the backend's own read (populate) holds what each plan asked for."""
        for t in tokens:
            if isinstance(t, Expected):
                now = self.read(zone, [o for o, _ in t.expect])
                if any(now.get(o) != new for o, new in t.expect):
                    return False
        return True


def _configure_validators() -> None:
    """Enable octoDNS's ``legacy`` record validators as its manager would (without a manager
    octoDNS enables them itself on the first record, with a warning)."""
    from octodns.record import Record

    if not Record.validators.configured:
        Record.validators.enable_sets({"legacy"})


__all__ = ["Expected", "OctoDnsProvider"]
