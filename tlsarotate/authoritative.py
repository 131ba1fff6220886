"""Ask every authoritative server of a zone what it serves: :class:`DnsObserver`.

Which servers
    By default the zone's NS RRset (looked up through ``resolver``), each NS name resolved to
    every A and AAAA address, each address asked on ``port`` (53). A Service's configured
    ``nameservers`` replace that set (``replace=True``, the default: a lab zone that is not
    delegated, or the exact list you want to wait for) or are added to it (``replace=False``:
    hidden primaries that are not in NS). An NS name with no address, or an NS lookup that
    fails, becomes a :class:`ServerAnswer` with an ``error`` so the engine keeps waiting
    rather than proceeding without confirmation.

What is asked
    Straight to each address, no recursion (RD=0), EDNS with the DO bit, UDP with TCP fallback:
    the SOA (serial; an answer without the AA flag is an error: the server does not serve the
    zone), the DNSKEY RRset, and for every owner its TLSA RRset. RRSIGs over the TLSA RRset, or
    over the NSEC/NSEC3 records denying it, are validated with :func:`dns.dnssec.validate`
    against the DNSKEY RRset fetched from that same server, at ``clock.now()``.
    ``zone_signed`` is True when any server returned a DNSKEY RRset. An owner served as a
    CNAME is recorded in ``ServerAnswer.cnames`` (its RRSIG validated likewise) and its target,
    when inside the zone, is asked in turn (:mod:`tlsarotate.cname`).

Servers are asked concurrently (one thread each); a server that fails a query gets
``ServerAnswer(error="timeout after 3s")`` (or the rcode) and the remaining owners are not
asked. Every query goes through :meth:`DnsObserver._query` (counted in ``queries``), which a
test or a fault harness can wrap.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.RRSIG import RRSIG

from tlsarotate.change import TlsaRRset
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.cname import MAX_CHAIN, Cname
from tlsarotate.config import Nameserver
from tlsarotate.errors import ObserverError
from tlsarotate.observation import Observation, ServerAnswer

DENIAL_TYPES = (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)


def hostport(address: str, port: int) -> str:
    """``192.0.2.1:53`` or ``[2001:db8::1]:53``."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True)
class Target:
    """One address to ask (``error`` set: a server that could not even be found)."""

    label: str
    address: str
    port: int
    error: str | None = None


class _QueryFailed(Exception):
    """A query to one server failed; ``str()`` is the ServerAnswer error text."""


@dataclass
class _Sigs:
    """Signature bookkeeping for one server."""

    problem: str | None = None
    min_expiry: float | None = None

    def note_problem(self, text: str) -> None:
        if self.problem is None:
            self.problem = text

    def note_expiry(self, sigs: dns.rrset.RRset) -> None:
        for sig in sigs:
            if isinstance(sig, RRSIG):
                exp = float(sig.expiration)
                self.min_expiry = exp if self.min_expiry is None else min(self.min_expiry, exp)


@dataclass
class _Answer:
    rrsets: dict[dns.name.Name, TlsaRRset | None] = field(default_factory=dict)
    signed: dict[dns.name.Name, bool | None] = field(default_factory=dict)
    cnames: dict[dns.name.Name, Cname] = field(default_factory=dict)

    def served_by(self, t: Target, serial: int | None, sigs: _Sigs) -> ServerAnswer:
        """What server ``t`` was seen to serve: these answers, its serial, its signatures."""
        return ServerAnswer(
            label=t.label,
            address=t.address,
            port=t.port,
            rrsets=self.rrsets,
            serial=serial,
            signed=self.signed,
            sig_problem=sigs.problem,
            min_rrsig_expiry=sigs.min_expiry,
            cnames=self.cnames,
        )


class DnsObserver:
    """See the module docstring. ``nameservers``: a Service's configured servers."""

    def __init__(
        self,
        nameservers: Sequence[Nameserver] | None = None,
        *,
        timeout: float = 3.0,
        resolver: dns.resolver.Resolver | None = None,
        clock: Clock | None = None,
        replace: bool = True,
        port: int = 53,
        attempts: int = 2,
        max_workers: int = 16,
    ) -> None:
        self.nameservers = tuple(nameservers or ())
        self.timeout = float(timeout)
        self._resolver = resolver
        self.clock: Clock = clock or SystemClock()
        self.replace = replace
        self.port = port
        self.attempts = max(1, attempts)
        self.max_workers = max_workers
        self.queries: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    @property
    def resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.exception.DNSException as e:
                raise ObserverError(f"no usable resolver to find NS records: {e}") from None
        return self._resolver

    # ---- which servers -----------------------------------------------------------------
    def targets(self, zone: dns.name.Name) -> list[Target]:
        configured = [Target(str(ns), ns.address, ns.port) for ns in self.nameservers]
        if configured and self.replace:
            return configured
        found = self.discover(zone)
        seen = {(t.address, t.port) for t in found if not t.error}
        return found + [t for t in configured if (t.address, t.port) not in seen]

    def discover(self, zone: dns.name.Name) -> list[Target]:
        """The zone's NS names, each resolved to every A and AAAA address."""
        res = self.resolver
        try:
            ns = res.resolve(zone, dns.rdatatype.NS, raise_on_no_answer=True)
        except dns.exception.DNSException as e:
            return [Target(f"NS {zone}", "", 0, f"NS lookup failed: {_short(e)}")]
        out: list[Target] = []
        for name in sorted({rd.target for rd in ns}):
            label = name.to_text(omit_final_dot=True)
            addrs: list[str] = []
            problems: list[str] = []
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                try:
                    ans = res.resolve(name, rdtype, raise_on_no_answer=False)
                    addrs += sorted(rd.address for rd in ans.rrset or ())
                except dns.resolver.NXDOMAIN:
                    problems.append("NXDOMAIN")
                except dns.exception.DNSException as e:
                    problems.append(_short(e))
            if not addrs:
                why = f" ({problems[0]})" if problems else ""
                out.append(Target(label, "", 0, f"no A/AAAA address{why}"))
            for a in addrs:
                out.append(Target(f"{label} {hostport(a, self.port)}", a, self.port))
        return out

    # ---- asking ------------------------------------------------------------------------
    def _query(
        self, address: str, port: int, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.Message:
        """One query (RD=0, DO) to one server, UDP with TCP fallback, no retry."""
        with self._lock:
            self.queries[dns.rdatatype.to_text(rdtype)] += 1
        q = dns.message.make_query(qname, rdtype, want_dnssec=True, payload=1232)
        q.flags &= ~dns.flags.RD
        return dns.query.udp_with_fallback(q, address, port=port, timeout=self.timeout)[0]

    def _ask(
        self, t: Target, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.Message:
        last = ""
        for _ in range(self.attempts):
            try:
                return self._query(t.address, t.port, qname, rdtype)
            except dns.exception.Timeout:
                last = f"timeout after {self.timeout:g}s"
            except ConnectionRefusedError:
                last = "connection refused"
            except (dns.exception.DNSException, OSError, EOFError) as e:
                what = dns.rdatatype.to_text(rdtype)
                raise _QueryFailed(f"{what} query failed: {_short(e)}") from None
        raise _QueryFailed(last)

    def observe(self, zone: dns.name.Name, owners: Sequence[dns.name.Name]) -> Observation:
        targets = self.targets(zone)
        owners = list(owners)
        workers = max(1, min(self.max_workers, len(targets)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="observe") as pool:
            answers = list(pool.map(lambda t: self._observe_one(t, zone, owners), targets))
        signed_zone: bool | None = None
        for _answer, has_keys in answers:
            if has_keys is not None:
                signed_zone = bool(signed_zone) or has_keys
        return Observation(zone, tuple(a for a, _ in answers), zone_signed=signed_zone)

    def _observe_one(
        self, t: Target, zone: dns.name.Name, owners: list[dns.name.Name]
    ) -> tuple[ServerAnswer, bool | None]:
        if t.error:
            return ServerAnswer(t.label, t.address, t.port, error=t.error), None
        sigs = _Sigs()
        got = _Answer()
        serial: int | None = None
        try:
            soa = self._ask(t, zone, dns.rdatatype.SOA)
            _authoritative(soa, zone, "SOA")
            soa_rr = _find(soa.answer, zone, dns.rdatatype.SOA)
            if soa_rr is None:
                raise _QueryFailed(f"no SOA for {zone}")
            serial = int(soa_rr[0].serial)
            keys_msg = self._ask(t, zone, dns.rdatatype.DNSKEY)
            _authoritative(keys_msg, zone, "DNSKEY")
            keys = _find(keys_msg.answer, zone, dns.rdatatype.DNSKEY)
            if keys is not None:
                self._check(keys_msg.answer, keys, zone, keys, sigs)
                self._check(soa.answer, soa_rr, zone, keys, sigs)
            for owner in owners:
                if owner not in got.rrsets:  # else already asked on a CNAME chain
                    self._observe_owner(t, zone, owner, keys, got, sigs)
        except _QueryFailed as e:
            return ServerAnswer(t.label, t.address, t.port, error=str(e), serial=serial), None
        return got.served_by(t, serial, sigs), keys is not None

    def _observe_owner(
        self,
        t: Target,
        zone: dns.name.Name,
        owner: dns.name.Name,
        keys: dns.rrset.RRset | None,
        got: _Answer,
        sigs: _Sigs,
        depth: int = 0,
    ) -> None:
        r = self._ask(t, owner, dns.rdatatype.TLSA)
        rc = r.rcode()
        if rc == dns.rcode.SERVFAIL:
            # BIND answers SERVFAIL where the in-zone chain loops: the CNAME itself says why
            alt = self._ask(t, owner, dns.rdatatype.CNAME)
            if alt.rcode() == dns.rcode.NOERROR and _find(alt.answer, owner, dns.rdatatype.CNAME):
                r, rc = alt, dns.rcode.NOERROR
        if rc not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _QueryFailed(f"TLSA query for {owner} answered {dns.rcode.to_text(rc)}")
        _authoritative(r, zone, f"TLSA {owner}")
        cname = _find(r.answer, owner, dns.rdatatype.CNAME)
        if cname is not None:
            # an alias (RFC 7671 §7): no TLSA here; its target, when in this zone, is asked
            # as an owner too (each step's RRSIG validated on its own), loops and overlong
            # chains stop at a name already asked or after MAX_CHAIN steps (cname.follow)
            target = cname[0].target
            got.cnames[owner] = Cname(target, cname.ttl)
            got.rrsets[owner] = None
            got.signed[owner] = self._check(r.answer, cname, zone, keys, sigs)
            if target.is_subdomain(zone) and target not in got.rrsets and depth < MAX_CHAIN:
                self._observe_owner(t, zone, target, keys, got, sigs, depth + 1)
            return
        tlsa = _find(r.answer, owner, dns.rdatatype.TLSA) if rc == dns.rcode.NOERROR else None
        if tlsa is not None:
            got.rrsets[owner] = TlsaRRset.from_rdataset(tlsa)
            got.signed[owner] = self._check(r.answer, tlsa, zone, keys, sigs)
            return
        got.rrsets[owner] = None
        denials = [rr for rr in r.authority if rr.rdtype in DENIAL_TYPES]
        if not denials:
            got.signed[owner] = False
            if keys is not None:
                sigs.note_problem(f"no NSEC/NSEC3 denial for {owner} TLSA")
            return
        ok = True
        for rr in denials:
            ok = self._check(r.authority, rr, zone, keys, sigs) and ok
        got.signed[owner] = ok

    def _check(
        self,
        section: Sequence[dns.rrset.RRset],
        rrset: dns.rrset.RRset,
        zone: dns.name.Name,
        keys: dns.rrset.RRset | None,
        sigs: _Sigs,
    ) -> bool:
        """Do the RRSIGs over ``rrset`` in ``section`` validate against ``keys``?"""
        what = f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
        rrsigs = next(
            (
                rr
                for rr in section
                if rr.rdtype == dns.rdatatype.RRSIG
                and rr.name == rrset.name
                and rr.covers == rrset.rdtype
            ),
            None,
        )
        if rrsigs is None:
            sigs.note_problem(f"no RRSIG over {what}")
            return False
        sigs.note_expiry(rrsigs)
        if keys is None:
            sigs.note_problem(f"RRSIG over {what} but the server returned no DNSKEY")
            return False
        keyring: dict[dns.name.Name, dns.rdataset.Rdataset] = {zone: keys}
        now = self.clock.now()
        reasons: list[str] = []
        for sig in rrsigs:
            try:
                dns.dnssec.validate_rrsig(rrset, sig, keyring, now=now)  # type: ignore[arg-type]
                return True
            except dns.exception.ValidationFailure as e:
                reasons.append(str(e) or "verify failure")
            except Exception as e:  # unsupported algorithm, broken key, ...
                reasons.append(_short(e))
        sigs.note_problem(f"RRSIG over {what} does not validate ({reasons[0]})")
        return False


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _find(
    section: Sequence[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rr in section:
        if rr.name == name and rr.rdtype == rdtype:
            return rr
    return None


def _authoritative(r: dns.message.Message, zone: dns.name.Name, what: str) -> None:
    rc = r.rcode()
    if rc not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise _QueryFailed(f"{what} answered {dns.rcode.to_text(rc)} (does it serve {zone}?)")
    if not r.flags & dns.flags.AA:
        raise _QueryFailed(f"not authoritative for {zone} (no AA flag on the {what} answer)")
