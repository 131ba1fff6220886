"""What DNS said the TLSA RRset of one owner is, as probe reports it: each authoritative
server's answer, the validating resolver's, and the problems found on the way. Pure data: the
lookup that fills it is :mod:`tlsarotate.dnslookup`; probe's judge reads it without the network
code."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA


@dataclass(frozen=True)
class TlsaServerAnswer:
    """What one authoritative server answered for the TLSA owner."""

    label: str
    address: str
    port: int
    error: str | None
    records: list[str] | None  # sorted record texts; None when ``error``
    signed: bool | None  # the RRset carries a valid RRSIG (None: not known)


@dataclass
class ResolverAnswer:
    """What the validating resolver answered for the TLSA owner."""

    server: str
    rcode: str | None = None  # None: no answer (``error``)
    ad: bool = False
    records: list[str] = field(default_factory=list)
    error: str | None = None
    cname_chain: list[dns.name.Name] | None = None  # the CNAMEs in its answer, owner first


@dataclass
class TlsaAnswer:
    """What DNS (or a file) says the TLSA RRset is, with the problems found on the way."""

    source: str  # "dns" | "file:PATH"
    zone: dns.name.Name | None = None
    variants: list[tuple[tuple[str, ...], frozenset[TLSA]]] = field(default_factory=list)
    servers: list[TlsaServerAnswer] = field(default_factory=list)
    dnssec: str = "unknown"  # signed | unsigned | invalid | unknown
    min_rrsig_expiry: float | None = None
    resolver: ResolverAnswer | None = None
    problems: list[str] = field(default_factory=list)  # bogus: DANE fails because of these
    insecure: list[str] = field(default_factory=list)  # DANE does not apply because of these
    errors: list[str] = field(default_factory=list)  # could not check
    # the CNAME chain from the owner to the name holding the records (RFC 7671 §7), as the
    # authoritative servers serve it; None: the owner holds them itself
    cname_chain: list[dns.name.Name] | None = None
    # the host name itself is a CNAME (chain) (RFC 7671 §7, RFC 7672 §2.2.2): the chain, host
    # first; ``host_expansion``: "secure" (the TLSA base domain is the chain's end, the host
    # name only if the end holds no TLSA records) or why it is not (the host name is used)
    host_cname_chain: list[dns.name.Name] | None = None
    host_expansion: str | None = None
