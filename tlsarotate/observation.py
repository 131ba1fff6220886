"""What the authoritative servers were seen to serve: the observer's result type.

The observer (:mod:`tlsarotate.authoritative`, DNS queries to every authoritative address) and the
trivial :class:`ProviderObserver` (trust the provider's own read, for a zone file with no
servers) both return an :class:`Observation`. The planner only ever looks at Observations, so it
stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate.change import TlsaRRset
from tlsarotate.cname import Cname


@dataclass(frozen=True)
class ServerAnswer:
    """One authoritative address's answer for every managed owner of a zone."""

    label: str  # "ns2.example.com 192.0.2.2" or "127.0.0.1:5300"
    address: str
    port: int = 53
    error: str | None = None  # the server did not answer usefully (timeout, REFUSED, ...)
    rrsets: Mapping[dns.name.Name, TlsaRRset | None] = field(default_factory=dict)
    serial: int | None = None
    # per owner: True when the answer (RRset or its denial of existence) carried RRSIGs that
    # validate against the zone's DNSKEY; False when missing or invalid; None when not checked
    signed: Mapping[dns.name.Name, bool | None] = field(default_factory=dict)
    sig_problem: str | None = None  # first signature problem, in words
    min_rrsig_expiry: float | None = None  # earliest RRSIG expiration seen (epoch seconds)
    # names served as a CNAME (no TLSA there: ``rrsets`` holds None; ``signed``: the CNAME's
    # RRSIG), and the in-zone names their chains lead to, asked as owners too (cname.py)
    cnames: Mapping[dns.name.Name, Cname] = field(default_factory=dict)

    def serves(
        self, expected: Mapping[dns.name.Name, TlsaRRset | None], require_signed: bool
    ) -> str | None:
        """None if this server serves ``expected`` (records only; TTL ignored), else why not."""
        if self.error:
            return f"{self.label}: {self.error}"
        serial = f"serial {self.serial}, " if self.serial is not None else ""
        for owner, want in expected.items():
            got = self.rrsets.get(owner)
            got_recs = got.records if got else frozenset()
            want_recs = want.records if want else frozenset()
            if got_recs != want_recs:
                return f"{self.label}: {serial}still serving a different RRset at {owner}"
            if require_signed and self.signed.get(owner) is False:
                why = f" ({self.sig_problem})" if self.sig_problem else ""
                return f"{self.label}: {serial}no valid RRSIG at {owner}{why}"
        return None


@dataclass(frozen=True)
class Observation:
    zone: dns.name.Name
    servers: tuple[ServerAnswer, ...]
    zone_signed: bool | None = None  # the zone has a DNSKEY RRset (None: not checked)
    source: str = "dns"  # "dns" or "provider"

    def lagging(
        self, expected: Mapping[dns.name.Name, TlsaRRset | None], require_signed: bool
    ) -> list[str]:
        """One line per server that does not (yet) serve ``expected``; empty when all do."""
        if not self.servers:
            return [f"no authoritative servers found for {self.zone}"]
        out = []
        for s in self.servers:
            why = s.serves(expected, require_signed)
            if why:
                out.append(why)
        return out

    def variants(self, owner: dns.name.Name) -> list[tuple[tuple[str, ...], frozenset[TLSA]]]:
        """The distinct RRsets the answering servers serve at ``owner`` (empty set: none),
        each with the labels of the servers serving it; more than one: they disagree."""
        groups: dict[frozenset[TLSA], list[str]] = {}
        for s in self.servers:
            if not s.error:
                rr = s.rrsets.get(owner)
                groups.setdefault(rr.records if rr else frozenset(), []).append(s.label)
        return [(tuple(labels), rrset) for rrset, labels in groups.items()]

    def served(self, owners: Iterable[dns.name.Name]) -> list[tuple[dict[str, list[str]], int]]:
        """What each answering server serves at ``owners`` (owner -> record texts; an owner
        without records is left out) and the largest TTL it serves them with."""
        out = []
        for s in self.servers:
            if s.error:
                continue
            recs: dict[str, list[str]] = {}
            ttl = 0
            for o in owners:
                rr = s.rrsets.get(o)
                if rr is not None and rr.records:
                    recs[o.to_text()] = sorted(rr.texts())
                    ttl = max(ttl, rr.ttl)
            out.append((recs, ttl))
        return out

    def max_ttl(self, owners: Iterable[dns.name.Name] | None = None) -> int:
        """The largest TTL any server returned for these owners (0 if none)."""
        wanted = None if owners is None else set(owners)
        best = 0
        for s in self.servers:
            for owner, rr in s.rrsets.items():
                if rr is not None and rr.ttl > best and (wanted is None or owner in wanted):
                    best = rr.ttl
        return best


class Observer(Protocol):
    def observe(self, zone: dns.name.Name, owners: Sequence[dns.name.Name]) -> Observation:
        """Ask every authoritative server of ``zone`` for the TLSA RRsets of ``owners``."""


class ProviderObserver:
    """For backends with no servers to ask (a local zone file, the demo): what the provider
    reads back after a successful write is what is served."""

    def __init__(self, provider: object, label: str) -> None:
        self.provider = provider
        self.label = label

    def observe(self, zone: dns.name.Name, owners: Sequence[dns.name.Name]) -> Observation:
        rrsets = self.provider.read(zone, owners)  # type: ignore[attr-defined]
        answer = ServerAnswer(
            label=f"provider {self.label}",
            address="",
            port=0,
            rrsets={o: rrsets.get(o) for o in owners},
            signed={o: None for o in owners},
        )
        return Observation(zone, (answer,), zone_signed=None, source="provider")
