"""``observe_read: axfr``: the DNS observer reads each authoritative server with ONE zone
transfer per zone and observation instead of one TLSA query per owner:
:class:`TransferObserver`.

Same servers, same result
    The servers are those of :class:`~tlsarotate.authoritative.DnsObserver` (NS set or the
    configured ``nameservers``). From each server's transfer (AXFR over TCP, signed with the
    provider's TSIG key when it has one) comes exactly what the per-owner queries give: the SOA
    serial; the DNSKEY RRset, whose RRSIGs and the SOA's are validated against it; per owner
    the TLSA RRset with its TTL and its RRSIGs validated against the DNSKEY RRset from the same
    transfer, at ``clock.now()``, by the same :meth:`DnsObserver._check`; an owner absent from
    the zone is denied by the NSEC records the server would send (the one at the owner for a
    name without TLSA, else the one covering the owner and the one covering the wildcard of
    its closest encloser), whose RRSIGs are validated the same way. The same
    :class:`~tlsarotate.observation.ServerAnswer` fields follow: rrsets, signed flags,
    ``sig_problem`` (the first problem, in the same order), ``min_rrsig_expiry``.

Asked per owner instead, from the same server
    an owner at a CNAME, under a delegation or DNAME, an empty non-terminal, a wildcard's
    reach, or absent from an NSEC3-signed zone (the hashed denials are the server's to choose):
    exactly the per-owner query path for that owner.

Never silently
    A server that refuses the transfer (REFUSED, NOTAUTH, a TSIG error, a malformed transfer)
    is asked one query per owner, and a warning says so (once per server and zone; it is not
    offered a transfer again by this observer). A transfer that times out or whose connection
    fails is also followed by the per-owner queries, with a warning each time.

Every transfer goes through :meth:`TransferObserver._transfer` (counted in ``queries`` as
``"AXFR"``), which a test can wrap, as :meth:`DnsObserver._query` for the queries.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from typing import Any

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.xfr
import dns.zone

from tlsarotate.authoritative import DnsObserver, Target, _Answer, _QueryFailed, _short, _Sigs
from tlsarotate.change import TlsaRRset
from tlsarotate.observation import ServerAnswer

log = logging.getLogger("tlsarotate.observer")

IN = dns.rdataclass.IN
_ANSWERED = (dns.xfr.TransferError, dns.tsig.PeerError, dns.exception.FormError)


class TransferObserver(DnsObserver):
    """:class:`DnsObserver` reading each server with one AXFR per zone (module docstring).
    ``key``: the TSIG key the transfers are signed with (None: unsigned)."""

    def __init__(self, *args: Any, key: dns.tsig.Key | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key
        self.refused: dict[tuple[str, int, dns.name.Name], str] = {}

    def _transfer(self, address: str, port: int, zone: dns.name.Name) -> dns.zone.Zone:
        """ONE AXFR of ``zone`` from one server (absolute names)."""
        with self._lock:
            self.queries["AXFR"] += 1
        z = dns.zone.Zone(zone, relativize=False)
        q, _ = dns.xfr.make_query(z, keyring=self.key)
        dns.query.inbound_xfr(
            address, z, q, port=port, timeout=self.timeout, lifetime=self.timeout * 10
        )
        return z

    def _observe_one(
        self, t: Target, zone: dns.name.Name, owners: list[dns.name.Name]
    ) -> tuple[ServerAnswer, bool | None]:
        where = (t.address, t.port, zone)
        if t.error or where in self.refused:
            return super()._observe_one(t, zone, owners)
        try:
            z = self._transfer(t.address, t.port, zone)
        except _ANSWERED as e:
            why = _refusal(e)
            self.refused[where] = why
            log.warning(
                "observe_read axfr: %s refused the transfer of %s (%s); asking it one TLSA "
                "query per owner instead",
                t.label,
                zone,
                why,
            )
            return super()._observe_one(t, zone, owners)
        except (dns.exception.DNSException, OSError, EOFError) as e:
            log.warning(
                "observe_read axfr: the transfer of %s from %s failed (%s); asking it one TLSA "
                "query per owner instead",
                zone,
                t.label,
                _short(e),
            )
            return super()._observe_one(t, zone, owners)
        try:
            return self._from_transfer(t, zone, owners, z)
        except _QueryFailed as e:  # an owner asked by query (see the module docstring) failed
            return ServerAnswer(t.label, t.address, t.port, error=str(e)), None

    def _from_transfer(
        self, t: Target, zone: dns.name.Name, owners: list[dns.name.Name], z: dns.zone.Zone
    ) -> tuple[ServerAnswer, bool | None]:
        sigs = _Sigs()
        got = _Answer()
        soa = z.get_rrset(zone, dns.rdatatype.SOA)
        if soa is None:
            return ServerAnswer(t.label, t.address, t.port, error=f"no SOA for {zone}"), None
        serial = int(soa[0].serial)
        keys = z.get_rrset(zone, dns.rdatatype.DNSKEY)
        if keys is not None:
            self._check(_sigs_over(z, zone, dns.rdatatype.DNSKEY), keys, zone, keys, sigs)
            self._check(_sigs_over(z, zone, dns.rdatatype.SOA), soa, zone, keys, sigs)
        chain = _Nsec(z, zone)
        for owner in owners:
            if owner in got.rrsets:  # already asked, on a CNAME chain (shared_owner's aliases)
                continue
            if _needs_query(z, zone, owner, chain):
                self._observe_owner(t, zone, owner, keys, got, sigs)
                continue
            tlsa = z.get_rrset(owner, dns.rdatatype.TLSA)
            if tlsa is not None and len(tlsa):
                got.rrsets[owner] = TlsaRRset.from_rdataset(tlsa)
                got.signed[owner] = self._check(
                    _sigs_over(z, owner, dns.rdatatype.TLSA), tlsa, zone, keys, sigs
                )
                continue
            got.rrsets[owner] = None
            denials = chain.denials(owner)
            if not denials:
                got.signed[owner] = False
                if keys is not None:
                    sigs.note_problem(f"no NSEC/NSEC3 denial for {owner} TLSA")
                continue
            ok = True
            for rr in denials:
                section = _sigs_over(z, rr.name, dns.rdatatype.NSEC)
                ok = self._check(section, rr, zone, keys, sigs) and ok
            got.signed[owner] = ok
        # (a CNAME is asked by query (_needs_query), its chain followed: got.cnames)
        return got.served_by(t, serial, sigs), keys is not None


class _Nsec:
    """The zone's names and NSEC chain, in canonical order."""

    def __init__(self, z: dns.zone.Zone, zone: dns.name.Name) -> None:
        self.z = z
        self.zone = zone
        self.nsec3 = bool(
            z.get_rdataset(zone, dns.rdatatype.NSEC3PARAM)
            or any(rds.rdtype == dns.rdatatype.NSEC3 for node in z.nodes.values() for rds in node)
        )
        self.names = sorted(
            n for n, node in z.nodes.items() if node.get_rdataset(IN, dns.rdatatype.NSEC)
        )
        # every name that exists: the nodes and the empty non-terminals above them
        self.existing: set[dns.name.Name] = set()
        for name in z.nodes:
            while name not in self.existing and name.is_subdomain(zone):
                self.existing.add(name)
                if name == zone:
                    break
                name = name.parent()

    def _at(self, name: dns.name.Name) -> dns.rrset.RRset | None:
        return self.z.get_rrset(name, dns.rdatatype.NSEC)

    def _covering(self, name: dns.name.Name) -> dns.rrset.RRset | None:
        i = bisect.bisect_right(self.names, name) - 1
        return self._at(self.names[i]) if self.names else None  # i == -1: the last one wraps

    def denials(self, owner: dns.name.Name) -> list[dns.rrset.RRset]:
        """The NSEC RRsets denying TLSA at ``owner`` (not a node of the zone, or a node
        without TLSA), as a server sends them; empty when the zone has no NSEC chain."""
        if not self.names:
            return []
        at = self._at(owner)
        if at is not None:
            return [at]  # NODATA: the owner's own NSEC
        out = []
        for name in (owner, dns.name.from_text("*", self._encloser(owner))):
            rr = self._covering(name)
            if rr is not None and rr not in out:
                out.append(rr)
        return out

    def _encloser(self, owner: dns.name.Name) -> dns.name.Name:
        name = owner
        while name not in self.existing and name != self.zone:
            name = name.parent()
        return name


def _needs_query(z: dns.zone.Zone, zone: dns.name.Name, owner: dns.name.Name, c: _Nsec) -> bool:
    """Whether ``owner`` must be asked by query (see the module docstring)."""
    if not owner.is_subdomain(zone) or owner == zone:
        return True
    node = z.get_node(owner)
    if node is not None:
        if node.get_rdataset(IN, dns.rdatatype.CNAME) or node.get_rdataset(IN, dns.rdatatype.NS):
            return True
        if node.get_rdataset(IN, dns.rdatatype.TLSA) is None and c.nsec3:
            return True
    elif owner in c.existing or c.nsec3:
        return True  # an empty non-terminal, or a hashed denial
    name = owner
    while name != zone:
        name = name.parent()
        if name == zone:
            break
        if z.get_rdataset(name, dns.rdatatype.DNAME) or z.get_rdataset(name, dns.rdatatype.NS):
            return True
    if node is None:
        wildcard = dns.name.from_text("*", c._encloser(owner))
        if wildcard in c.existing:
            return True
    return False


def _sigs_over(
    z: dns.zone.Zone, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> Sequence[dns.rrset.RRset]:
    """The RRSIGs over ``name``/``rdtype`` in the transfer, as a one-RRset answer section."""
    sigs = z.get_rrset(name, dns.rdatatype.RRSIG, covers=rdtype)
    return [sigs] if sigs is not None else []


def _refusal(e: BaseException) -> str:
    if isinstance(e, dns.xfr.TransferError):
        return dns.rcode.to_text(e.rcode)
    if isinstance(e, dns.tsig.PeerError):
        return f"TSIG: {type(e).__name__}"
    return _short(e)


__all__ = ["TransferObserver"]
