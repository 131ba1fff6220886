"""An in-memory provider: for tests, the property-based invariant tests and fault injection.

Not useful from the command line (nothing survives the process). Every write is recorded in
``writes``; ``set`` changes a record behind the engine's back (a concurrent writer).
``part_size`` splits a write into parts of that many owners, each atomic, applied in order like
a large RFC 2136 write; ``fail_part`` (1-based) makes that part of the next write fail as a
timeout would, after the parts before it were applied. Without native prerequisites, like a
REST API: :meth:`~tlsarotate.providers.base.Provider.apply` reads and checks first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import dns.name

from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    WriteToken,
)


@dataclass(frozen=True)
class Written(WriteToken):
    """The number of parts this provider has written so far, this one included."""

    count: int


class MemoryProvider(Provider):
    type_name = "memory"
    options: ClassVar[Mapping[str, Option]] = {
        "zones": Option(list, help="zone names this provider serves (default: any)"),
    }
    capabilities = Capabilities(atomic=True, prerequisites=False, txt=True)

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.data: dict[dns.name.Name, dict[dns.name.Name, TlsaRRset]] = {}
        self.writes: list[ZoneChange] = []
        self.txt: dict[tuple[dns.name.Name, dns.name.Name], TxtRRset] = {}
        self.txt_writes = 0
        self.reads = 0
        self.part_size: int | None = None
        self.fail_part: int | None = None
        self._part = 0

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        self.reads += 1
        self._check_zone(zone)
        z = self.data.get(zone, {})
        return {o: z[o] for o in owners if o in z}

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        self._check_zone(zone)
        return sorted(self.data.get(zone, {}))

    def parts(self, change: ZoneChange) -> list[ZoneChange]:
        chs = change.changes
        size = self.part_size or len(chs)
        self._part = 0
        return [ZoneChange(change.zone, chs[k : k + size]) for k in range(0, len(chs), size)]

    def write(self, part: ZoneChange) -> Written:
        self._check_zone(part.zone)
        self._part += 1
        if self.fail_part == self._part:
            self.fail_part = None
            raise self.error(f"the write to {part.zone} timed out")
        z = self.data.setdefault(part.zone, {})
        for ch in part.changes:
            if ch.new is None:
                z.pop(ch.owner, None)
            else:
                z[ch.owner] = ch.new
        self.writes.append(part)
        return Written(len(self.writes))

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        self._check_zone(zone)
        return self.txt.get((zone, name))

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> Written:
        self._check_zone(zone)
        self.set_txt(zone, name, new)
        self.txt_writes += 1
        return Written(len(self.writes) + self.txt_writes)

    def set_txt(self, zone: dns.name.Name, name: dns.name.Name, rrset: TxtRRset | None) -> None:
        """Change a TXT RRset behind the engine's back."""
        if rrset is None:
            self.txt.pop((zone, name), None)
        else:
            self.txt[(zone, name)] = rrset

    def _check_zone(self, zone: dns.name.Name) -> None:
        zones = self.opts.get("zones")
        if zones and zone not in {dns.name.from_text(str(z)) for z in zones}:
            raise self.error(f"no zone {zone} here")

    def set(self, zone: dns.name.Name, owner: dns.name.Name, rrset: TlsaRRset | None) -> None:
        """Change a record behind the engine's back (a concurrent writer, a human)."""
        z = self.data.setdefault(zone, {})
        if rrset is None:
            z.pop(owner, None)
        else:
            z[owner] = rrset


__all__ = ["MemoryProvider", "Written"]
