"""An example third-party provider: TLSA RRsets kept in a JSON file.

File layout: ``{"zones": {"example.test.": {"_25._tcp.mx.example.test.": {"ttl": 300,
"records": ["3 1 1 <hex>", ...]}}}}``. A zone must exist in the file. Each write is one atomic
file replacement; the file has no prerequisites of its own, so the base workflow checks every
``OwnerChange.old`` against a fresh read first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import dns.name

from tlsarotate import records
from tlsarotate.change import TlsaRRset, ZoneChange
from tlsarotate.errors import ConfigError
from tlsarotate.fsutil import atomic_write
from tlsarotate.providers import Capabilities, Option, Provider, ProviderContext, WriteToken


class JsonFileProvider(Provider):
    type_name: ClassVar[str] = "example"
    options: ClassVar[Mapping[str, Option]] = {
        "path": Option(str, required=True, path=True, help="the JSON file holding the zones"),
    }
    capabilities: ClassVar[Capabilities] = Capabilities(atomic=True, prerequisites=False)

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.path = Path(self.opts["path"])  # resolved against context.base_dir by the base
        self.writes = 0

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        if not Path(str(options["path"])).is_file():
            raise ConfigError(f"{options['path']}: no such file", key="path")

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise self.error(f"{self.path}: {e}") from None
        return data

    def _zone(self, data: dict[str, Any], zone: dns.name.Name) -> dict[str, Any]:
        zones: dict[str, Any] = data.setdefault("zones", {})
        if zone.to_text() not in zones:
            raise self.error(f"no zone {zone} in {self.path}")
        z: dict[str, Any] = zones[zone.to_text()]
        return z

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        z = self._zone(self._load(), zone)
        out = {}
        for o in owners:
            entry = z.get(o.to_text())
            if entry and entry["records"]:
                out[o] = TlsaRRset.of(
                    entry["ttl"], [records.from_text(t) for t in entry["records"]]
                )
        return out

    def write(self, part: ZoneChange) -> WriteToken:
        data = self._load()
        z = self._zone(data, part.zone)
        for ch in part.changes:
            if ch.new is None:
                z.pop(ch.owner.to_text(), None)
            else:
                z[ch.owner.to_text()] = {"ttl": ch.new.ttl, "records": ch.new.texts()}
        atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        self.writes += 1
        return WriteToken()
