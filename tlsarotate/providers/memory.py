"""An in-memory provider: for tests, the property-based invariant tests and fault injection.

Not useful from the command line (nothing survives the process). Every write is recorded in
``writes``; ``set`` changes a record behind the engine's back (a concurrent writer).
``part_size`` splits a write into parts of that many owners, each atomic, applied in order like
a large RFC 2136 write; ``fail_part`` (1-based) makes that part of the next write fail as a
timeout would, after the parts before it were applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import dns.name

from tlsarotate.change import TlsaRRset, ZoneChange
from tlsarotate.errors import ProviderError
from tlsarotate.providers.base import Capabilities, Option, Provider, ProviderContext, WriteResult


class MemoryProvider(Provider):
    type_name = "memory"
    options: ClassVar[Mapping[str, Option]] = {
        "zones": Option(list, help="zone names this provider serves (default: any)"),
    }
    capabilities = Capabilities(atomic=True, prerequisites=True)

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        context: ProviderContext | None = None,
    ) -> None:
        super().__init__(name, options or {}, context or ProviderContext())
        self.data: dict[dns.name.Name, dict[dns.name.Name, TlsaRRset]] = {}
        self.writes: list[ZoneChange] = []
        self.reads = 0
        self.part_size: int | None = None
        self.fail_part: int | None = None

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        self.reads += 1
        self._check_zone(zone)
        z = self.data.get(zone, {})
        return {o: z[o] for o in owners if o in z}

    def apply(self, change: ZoneChange) -> WriteResult:
        self._check_zone(change.zone)
        z = self.data.setdefault(change.zone, {})
        self.check_prerequisites(change, z)
        change = self.effective(change)
        if not change:
            return WriteResult(token=None)
        chs = list(change.changes)
        size = self.part_size or len(chs)
        parts = [chs[k : k + size] for k in range(0, len(chs), size)]
        for i, part in enumerate(parts, 1):
            if self.fail_part == i:
                self.fail_part = None
                raise ProviderError(
                    f"provider {self.name!r}: part {i} of {len(parts)} of the write to "
                    f"{change.zone} timed out; the parts before it were applied"
                )
            for ch in part:
                if ch.new is None:
                    z.pop(ch.owner, None)
                else:
                    z[ch.owner] = ch.new
            self.writes.append(ZoneChange(change.zone, tuple(part)))
        return WriteResult(token=len(self.writes))

    def _check_zone(self, zone: dns.name.Name) -> None:
        zones = self.opts.get("zones")
        if zones and zone not in {dns.name.from_text(str(z)) for z in zones}:
            raise ProviderError(f"provider {self.name!r}: no zone {zone} here")

    def set(self, zone: dns.name.Name, owner: dns.name.Name, rrset: TlsaRRset | None) -> None:
        """Change a record behind the engine's back (a concurrent writer, a human)."""
        z = self.data.setdefault(zone, {})
        if rrset is None:
            z.pop(owner, None)
        else:
            z[owner] = rrset


__all__ = ["MemoryProvider"]
