"""What a provider reads and writes: TLSA RRsets per owner and one zone's change set.

Modelled on octoDNS's Plan/Change: a :class:`ZoneChange` carries, for every owner it touches,
the RRset we read (``old``, used as a prerequisite so a concurrent change is detected, never
clobbered) and the RRset we want (``new``; ``None`` deletes it). A provider applies one
ZoneChange as one write (one UPDATE, one change batch, one batch request), unless it must be
split past the backend's limits; each part is atomic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dns.name
import dns.rdataset
from dns.rdataclass import IN
from dns.rdatatype import TXT as TXT_TYPE
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.TXT import TXT

from tlsarotate import records


@dataclass(frozen=True)
class TlsaRRset:
    ttl: int
    records: frozenset[TLSA]

    @classmethod
    def of(cls, ttl: int, rds: Iterable[TLSA]) -> TlsaRRset:
        return cls(int(ttl), frozenset(rds))

    @classmethod
    def from_rdataset(cls, rds: dns.rdataset.Rdataset) -> TlsaRRset:
        """The TLSA records of a dnspython rdataset (or RRset) with its TTL."""
        return cls.of(rds.ttl, [rd for rd in rds if isinstance(rd, TLSA)])

    def sorted(self) -> list[TLSA]:
        return sorted(self.records, key=records.sort_key)

    def texts(self) -> list[str]:
        return [records.to_text(rd) for rd in self.sorted()]

    def same_records(self, other: TlsaRRset | None) -> bool:
        return other is not None and self.records == other.records


@dataclass(frozen=True)
class TxtRRset:
    """The TXT RRset at one name, as a provider reads and writes it for
    :meth:`~tlsarotate.providers.base.Provider.write_txt`: each record is its character-strings
    (RFC 1035 §3.3.14; one record longer than 255 bytes is several strings)."""

    ttl: int
    records: frozenset[tuple[bytes, ...]]

    @classmethod
    def of(cls, ttl: int, recs: Iterable[Iterable[bytes]]) -> TxtRRset:
        return cls(int(ttl), frozenset(tuple(r) for r in recs))

    @classmethod
    def from_rdataset(cls, rds: dns.rdataset.Rdataset) -> TxtRRset:
        return cls.of(rds.ttl, [tuple(rd.strings) for rd in rds])

    def sorted(self) -> list[tuple[bytes, ...]]:
        return sorted(self.records)

    def rdatas(self) -> list[TXT]:
        return [TXT(IN, TXT_TYPE, r) for r in self.sorted()]

    def texts(self) -> list[str]:
        """Each record in zone-file form: ``"v=TLSRPTv1; rua=..." "more"``."""
        return [rd.to_text() for rd in self.rdatas()]

    def to_rdataset(self) -> dns.rdataset.Rdataset:
        rds = dns.rdataset.Rdataset(IN, TXT_TYPE)
        for rd in self.rdatas():
            rds.add(rd, self.ttl)
        return rds


Published = Mapping[dns.name.Name, TlsaRRset]
"""Owner -> RRset; an owner that is absent has no TLSA RRset."""


@dataclass(frozen=True)
class OwnerChange:
    owner: dns.name.Name
    old: TlsaRRset | None
    new: TlsaRRset | None

    @property
    def removed(self) -> list[TLSA]:
        old = self.old.records if self.old else frozenset()
        new = self.new.records if self.new else frozenset()
        return sorted(old - new, key=records.sort_key)

    @property
    def added(self) -> list[TLSA]:
        old = self.old.records if self.old else frozenset()
        new = self.new.records if self.new else frozenset()
        return sorted(new - old, key=records.sort_key)

    @property
    def ttl_changed(self) -> bool:
        return bool(self.old and self.new and self.old.ttl != self.new.ttl)


@dataclass(frozen=True)
class ZoneChange:
    zone: dns.name.Name
    changes: tuple[OwnerChange, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)


def published_digest(published: Published, owners: Iterable[dns.name.Name]) -> str:
    """A stable hash of what is published at these owners (records and TTLs)."""
    h = hashlib.sha256()
    for owner in sorted(owners):
        rr = published.get(owner)
        h.update(owner.to_text().encode() + b"\0")
        if rr is not None:
            h.update(str(rr.ttl).encode() + b"\0")
            for t in rr.texts():
                h.update(t.encode() + b"\0")
        h.update(b"\1")
    return h.hexdigest()
