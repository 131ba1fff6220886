"""``tlsarotate probe HOST``: what every address of HOST serves, against the published TLSA.

Steps: resolve every A and AAAA of HOST; fetch the TLSA RRset of ``_PORT._tcp.HOST`` from
every authoritative server (or read it from ``--tlsa-from FILE``); connect to each address
concurrently (STARTTLS as needed) and take the full served chain; judge each chain with
:func:`tlsarotate.dane.diagnose` (re-exported here as :func:`diagnose`).

One verdict per address, the same in text and JSON (``dane``), as RFC 7672 §2.2 defines them:

- ``authenticated``: the TLSA RRset is DNSSEC-secure (or read from a file) and a usable record
  authenticates the served chain. A DANE sender delivers.
- ``fails``: the TLSA answer is bogus (an RRSIG that does not validate, a validating resolver
  answering SERVFAIL), or usable records exist and none authenticates the chain. A DANE sender
  defers the mail.
- ``none``: no DANE: the zone is unsigned, the resolver returns the records without the AD
  bit, there are no TLSA records, or none is usable (e.g. only ``1 1 1`` for SMTP). A sender
  delivers without DANE (opportunistic, unauthenticated TLS).

The rules follow the PROTOCOL, never the port (:func:`tlsarotate.handshake.speaks_smtp`):
STARTTLS smtp (``--starttls smtp`` on any port, or ``auto`` on 25/587) and implicit TLS on 465
(SMTP submission, RFC 8314) use RFC 7672's SMTP rules (usages 0 and 1 unusable); every other
protocol validates usages 0/1 with PKIX against ``$SSL_CERT_FILE`` or the system bundle.

Exit codes: 0 every address authenticated; 2 DANE fails for any address (or for all of
them, by DNS); 1 something could not be checked (an address unreachable, no DNS answer) when
nothing fails; 3 no DANE for some address (nothing fails, everything was checked): DANE does
not protect the endpoint, which a monitor should see, but mail still flows.

JSON output (``--output json``), one object::

    {
      "host": "mx.example.com",            # as given, without the trailing dot
      "port": 25,
      "owner": "_25._tcp.mx.example.com.",
      "starttls": "smtp",                  # protocol used: smtp | imap | pop3 | none
      "smtp": true,                        # RFC 7672 SMTP rules applied (see above)
      "tlsa": {
        "source": "dns" | "file:/path",
        "zone": "example.com." | null,
        "records": ["3 1 1 <hex>", ...],   # RRset judged (the first variant, sorted)
        "variants": [{"servers": ["ns1 ..."], "records": [...]}],   # >1: servers disagree
        "dnssec": "signed" | "unsigned" | "invalid" | "unknown",
        "servers": [{"label": str, "address": str, "port": int, "error": str|null,
                     "records": [...] | null, "signed": true|false|null}],
        "min_rrsig_expiry": "2030-01-01T00:00:00+00:00" | null,
        "resolver": null | {"server": "127.0.0.1:53", "rcode": "NOERROR", "ad": bool,
                            "records": [...], "error": str|null}
      },
      "addresses": [
        {"address": "192.0.2.1", "port": 25,
         "dane": "authenticated" | "fails" | "none" | null,   # null: not probed (error)
         "ok": bool,                       # dane == "authenticated"
         "summary": str | null,            # why, DNS and chain together
         "error": str|null,
         "tls_version": "TLSv1.3"|null, "cipher": str|null, "server_name": str|null,
         "chain": [{"depth": 0, "subject": str, "issuer": str, "not_before": iso,
                    "not_after": iso, "key_type": "EC P-256", "spki_sha256": hex,
                    "cert_sha256": hex, "names": [str], "ca": bool}],
         "verdicts": [{"servers": [...], "dane": str, "ok": bool, "summary": str,
                       "warnings": [str],     # the chain against one RRset variant
                       "records": [{"record": "3 1 1 <hex>", "usable": bool,
                                    "considered": bool, "matched": bool,
                                    "authenticates": bool, "reason": str}]}],
         "saved_chain": "/dir/file.pem" | null}
      ],
      "problems": [str],   # DNS-side reasons DANE fails for every address (bogus)
      "insecure": [str],   # DNS-side reasons there is no DANE (unsigned zone, no AD bit)
      "errors": [str],     # things that could not be checked
      "dane": "authenticated" | "fails" | "none" | null,   # fails > none > authenticated
      "ok": bool,          # exit == 0
      "exit": 0 | 1 | 2 | 3
    }
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records, timefmt
from tlsarotate.config import Nameserver, parse_nameserver
from tlsarotate.dane import (
    AUTHENTICATED,
    FAILS,
    NO_DANE,
    Trust,
    Verdict,
    describe,
    diagnose,
)
from tlsarotate.errors import ObserverError, RecordError, TlsarotateError
from tlsarotate.fsutil import atomic_write, read_text
from tlsarotate.handshake import ServedChain, fetch_chain, is_ip, resolve_starttls, speaks_smtp
from tlsarotate.observation import Observation, Observer
from tlsarotate.observer import DnsObserver

__all__ = ["ProbeReport", "cmd_probe", "run_probe"]

MAX_WORKERS = 256  # endpoints are I/O bound: 200 endpoints in one round


# ---------------------------------------------------------------------------------------------
# small parsers


def parse_server(text: str, what: str = "server") -> Nameserver:
    """``192.0.2.1``, ``192.0.2.1:5353``, ``2001:db8::1``, ``[2001:db8::1]:5353``."""
    try:
        return parse_nameserver(text)
    except ValueError as e:
        raise TlsarotateError(f"{what}: {e}") from None


def read_tlsa_file(path: str | Path, owner: dns.name.Name | None) -> list[TLSA]:
    """TLSA records from a file: ``3 1 1 <hex>`` lines or zone-file lines
    (``owner [ttl] [IN] TLSA 3 1 1 <hex>``). Zone-file lines for another owner are skipped.
    Blank lines and ``;``/``#`` comments are ignored."""
    p = Path(path)
    text = read_text(p, "TLSA file", error=RecordError)
    out: list[TLSA] = []
    other_owners = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        upper = [t.upper() for t in tokens]
        if "TLSA" in upper:
            i = upper.index("TLSA")
            rdata = " ".join(tokens[i + 1 :])
            first = tokens[0]
            if i > 0 and first.endswith(".") and owner is not None:
                try:
                    line_owner = dns.name.from_text(first)
                except dns.exception.DNSException:
                    raise RecordError(f"{p}:{n}: invalid owner name {first!r}") from None
                if line_owner != owner:
                    other_owners += 1
                    continue
        else:
            rdata = line
        try:
            out.append(records.from_text(rdata))
        except RecordError as e:
            raise RecordError(f"{p}:{n}: {e}") from None
    if not out:
        extra = f" for {owner} ({other_owners} line(s) for other owners)" if other_owners else ""
        raise RecordError(f"{p}: no TLSA records found{extra}")
    return out


# ---------------------------------------------------------------------------------------------
# DNS


def resolve_addresses(
    host: str,
    timeout: float,
    resolver: Nameserver | None = None,
    nameservers: Sequence[Nameserver] = (),
) -> list[str]:
    """Every A and AAAA of ``host``: from the validating ``resolver`` if given, else from the
    authoritative ``nameservers`` if given, else the system resolver (getaddrinfo, /etc/hosts)."""
    if is_ip(host):
        return [host]
    qname = dns.name.from_text(host.rstrip(".") + ".")
    if resolver is not None:
        res = _resolver(resolver, timeout)
        assert res is not None
        addrs: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                ans = res.resolve(qname, rdtype, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                raise ObserverError(f"{host}: no such host (NXDOMAIN from {resolver})") from None
            except (dns.exception.DNSException, OSError) as e:
                raise ObserverError(f"{host}: {rdtype} lookup via {resolver} failed: {e}") from None
            addrs += [r.to_text() for r in ans.rrset or ()]
        if not addrs:
            raise ObserverError(f"{host}: no A or AAAA records (resolver {resolver})")
        return addrs
    if nameservers:
        last = ""
        for ns in nameservers:
            got: list[str] = []
            try:
                for qtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    q = dns.message.make_query(qname, qtype)
                    q.flags &= ~dns.flags.RD
                    r = dns.query.udp(q, ns.address, port=ns.port, timeout=timeout)
                    if r.flags & dns.flags.TC:
                        r = dns.query.tcp(q, ns.address, port=ns.port, timeout=timeout)
                    if r.rcode() == dns.rcode.NXDOMAIN:
                        raise ObserverError(f"{host}: no such host (NXDOMAIN from {ns})")
                    for rrset in r.answer:
                        if rrset.rdtype == qtype:
                            got += [rd.to_text() for rd in rrset]
            except (dns.exception.DNSException, OSError) as e:
                last = f"{ns}: {e}"
                continue
            if got:
                return got
            last = f"{ns}: no A or AAAA records"
        raise ObserverError(f"{host}: address lookup failed ({last})")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ObserverError(f"{host}: address lookup failed: {e.strerror}") from None
    seen: list[str] = []
    for info in infos:
        a = str(info[4][0])
        if a not in seen:
            seen.append(a)
    return seen


def find_zone(
    owner: dns.name.Name,
    timeout: float,
    resolver: Nameserver | None = None,
    nameservers: Sequence[Nameserver] = (),
) -> dns.name.Name:
    """The zone that holds ``owner``: from the SOA the authoritative servers return, else via
    the resolver (``dns.resolver.zone_for_name``) -- but only when no ``nameservers`` were
    named: those are asked *instead of* the zone's NS set."""
    last = ""
    for ns in nameservers:
        name = owner
        try:
            while True:
                q = dns.message.make_query(name, dns.rdatatype.SOA)
                q.flags &= ~dns.flags.RD
                r = dns.query.udp(q, ns.address, port=ns.port, timeout=timeout)
                for section in (r.answer, r.authority):
                    for rrset in section:
                        if rrset.rdtype == dns.rdatatype.SOA:
                            return rrset.name
                if name == dns.name.root:
                    break
                name = name.parent()
            last = f"{ns}: no SOA for {owner} or above"
        except (dns.exception.DNSException, OSError) as e:
            last = f"{ns}: {e}"
    if nameservers:
        raise ObserverError(f"cannot find the zone of {owner} ({last})")
    try:
        return dns.resolver.zone_for_name(
            owner, resolver=_resolver(resolver, timeout), lifetime=timeout
        )
    except dns.resolver.NoRootSOA:
        raise ObserverError(f"cannot find the zone of {owner}: no DNS server answered") from None
    except (dns.exception.DNSException, OSError) as e:
        raise ObserverError(f"cannot find the zone of {owner}: {e}") from None


@dataclass
class TlsaAnswer:
    """What DNS (or a file) says the TLSA RRset is, with the problems found on the way."""

    source: str
    zone: dns.name.Name | None = None
    variants: list[tuple[tuple[str, ...], frozenset[TLSA]]] = field(default_factory=list)
    servers: list[dict[str, object]] = field(default_factory=list)
    dnssec: str = "unknown"
    min_rrsig_expiry: float | None = None
    resolver: dict[str, object] | None = None
    problems: list[str] = field(default_factory=list)  # bogus: DANE fails because of these
    insecure: list[str] = field(default_factory=list)  # DANE does not apply because of these
    errors: list[str] = field(default_factory=list)  # could not check


ObserverFactory = Callable[..., Observer]


def default_observer(
    nameservers: Sequence[Nameserver],
    timeout: float,
    resolver: Nameserver | None = None,
    replace: bool = True,
) -> DnsObserver:
    """The DNS observer: the given servers (instead of, or with ``replace=False`` besides, the
    zone's NS set), else the zone's NS set (found through ``resolver`` when given, else the
    system resolver)."""
    return DnsObserver(
        nameservers=tuple(nameservers) or None,
        timeout=timeout,
        resolver=_resolver(resolver, timeout),
        replace=replace,
    )


def _resolver(server: Nameserver | None, timeout: float) -> dns.resolver.Resolver | None:
    """A stub resolver asking ``server`` (None: the system's, from /etc/resolv.conf)."""
    if server is None:
        return None
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [server.address]
    res.port = server.port
    res.lifetime = timeout
    return res


def tlsa_from_dns(
    owner: dns.name.Name,
    timeout: float,
    nameservers: Sequence[Nameserver] = (),
    resolver: Nameserver | None = None,
    observer_factory: ObserverFactory = default_observer,
) -> TlsaAnswer:
    """Ask every authoritative server (through the observer) and, with ``resolver``, the
    validating resolver too."""
    ans = TlsaAnswer(source="dns")
    obs: Observation | None
    try:
        zone = find_zone(owner, timeout, resolver, nameservers)
        ans.zone = zone
        observer = observer_factory(nameservers, timeout, resolver)
        obs = observer.observe(zone, [owner])
    except TlsarotateError as e:
        ans.errors.append(str(e))
        obs = None
    if obs is not None:
        _digest_observation(ans, obs, owner)
    if resolver is not None:
        _ask_resolver(ans, owner, resolver, timeout)
    return ans


def _digest_observation(ans: TlsaAnswer, obs: Observation, owner: dns.name.Name) -> None:
    signed_states: list[bool | None] = []
    # an unsigned zone has no RRSIGs at all: that is "insecure" (no DANE), not "bogus"
    unsigned = obs.zone_signed is False
    for s in obs.servers:
        rr = s.rrsets.get(owner)
        recs = sorted(rr.records, key=records.sort_key) if rr else []
        signed = s.signed.get(owner)
        ans.servers.append(
            {
                "label": s.label,
                "address": s.address,
                "port": s.port,
                "error": s.error,
                "records": None if s.error else [records.to_text(r) for r in recs],
                "signed": signed,
            }
        )
        if s.error:
            ans.errors.append(f"authoritative server {s.label}: {s.error}")
            continue
        signed_states.append(signed)
        if signed is False and not unsigned:
            why = f" ({s.sig_problem})" if s.sig_problem else ""
            ans.problems.append(
                f"{s.label}: the TLSA answer at {owner} has no valid RRSIG{why}: "
                "DANE clients treat it as bogus"
            )
        if s.min_rrsig_expiry is not None:
            ans.min_rrsig_expiry = min(
                ans.min_rrsig_expiry or s.min_rrsig_expiry, s.min_rrsig_expiry
            )
    if not obs.servers:
        ans.errors.append(f"no authoritative servers found for {obs.zone}")
    ans.variants = obs.variants(owner)
    if unsigned:
        ans.dnssec = "unsigned"
        ans.insecure.append(
            f"zone {obs.zone} is not DNSSEC-signed: DANE clients ignore its TLSA records"
        )
    elif any(s is False for s in signed_states):
        ans.dnssec = "invalid"
    elif signed_states and all(s is True for s in signed_states):
        ans.dnssec = "signed"


def _ask_resolver(
    ans: TlsaAnswer, owner: dns.name.Name, resolver: Nameserver, timeout: float
) -> None:
    q = dns.message.make_query(owner, dns.rdatatype.TLSA, want_dnssec=True)
    q.flags |= dns.flags.RD | dns.flags.AD
    info: dict[str, object] = {"server": str(resolver), "rcode": None, "ad": False}
    info["records"] = []
    info["error"] = None
    try:
        r = dns.query.udp(q, resolver.address, port=resolver.port, timeout=timeout)
        if r.flags & dns.flags.TC:
            r = dns.query.tcp(q, resolver.address, port=resolver.port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as e:
        info["error"] = str(e) or type(e).__name__
        ans.errors.append(f"validating resolver {resolver}: {info['error']}")
        ans.resolver = info
        return
    rcode = dns.rcode.to_text(r.rcode())
    ad = bool(r.flags & dns.flags.AD)
    recs = [
        records.to_text(rd)
        for rrset in r.answer
        if rrset.rdtype == dns.rdatatype.TLSA
        for rd in sorted(rrset, key=records.sort_key)
    ]
    info.update(rcode=rcode, ad=ad, records=recs)
    ans.resolver = info
    if rcode == "SERVFAIL":
        ans.problems.append(
            f"validating resolver {resolver} answers SERVFAIL for {owner} TLSA "
            "(DNSSEC bogus?): DANE clients defer delivery"
        )
    elif rcode == "NOERROR" and recs and not ad:
        ans.insecure.append(
            f"validating resolver {resolver} returns the TLSA records without the AD bit: "
            "DANE clients treat them as insecure and ignore them"
        )


# ---------------------------------------------------------------------------------------------
# the report


RANK = {AUTHENTICATED: 0, NO_DANE: 1, FAILS: 2}  # the worse verdict wins
VERDICT_WORD = {AUTHENTICATED: "OK", FAILS: "FAIL", NO_DANE: "NO DANE"}


@dataclass
class AddressResult:
    served: ServedChain
    verdicts: list[tuple[tuple[str, ...], Verdict]]
    saved: str | None = None
    dane: str | None = None  # authenticated | fails | none; None: could not be judged
    summary: str | None = None  # why, in one line (DNS and chain together)

    @property
    def ok(self) -> bool:
        return self.dane == AUTHENTICATED


def address_verdict(
    tlsa: TlsaAnswer, verdicts: Sequence[tuple[tuple[str, ...], Verdict]]
) -> tuple[str | None, str | None]:
    """One verdict per address, from what DNS says and what the chain does (RFC 7672 §2.2):
    a bogus TLSA answer fails whatever the chain; an insecure one (unsigned zone, no AD bit)
    means no DANE; else the worst verdict over the RRset variants the servers serve."""
    worst = max((v for _, v in verdicts), key=lambda v: RANK[v.dane], default=None)
    if tlsa.problems:
        return FAILS, tlsa.problems[0]
    if tlsa.insecure:
        alone = f" (the records alone: {worst.summary})" if worst is not None else ""
        return NO_DANE, f"{tlsa.insecure[0]}{alone}"
    if worst is None:
        return None, None
    return worst.dane, worst.summary


@dataclass
class ProbeReport:
    host: str
    port: int
    owner: dns.name.Name
    starttls: str
    tlsa: TlsaAnswer
    addresses: list[AddressResult]
    errors: list[str] = field(default_factory=list)
    smtp: bool = False  # RFC 7672 rules applied (the protocol is SMTP)

    @property
    def dane(self) -> str | None:
        """The endpoint's verdict: ``fails`` if any address fails, else ``none`` if any
        address has no DANE, else ``authenticated`` if every address is; None: nothing
        could be judged."""
        known = [a.dane for a in self.addresses if a.dane is not None]
        if self.tlsa.problems or FAILS in known:
            return FAILS
        if NO_DANE in known or (self.tlsa.insecure and not known):
            return NO_DANE
        if known and len(known) == len(self.addresses):
            return AUTHENTICATED
        return None

    @property
    def incomplete(self) -> bool:
        return bool(
            self.errors
            or self.tlsa.errors
            or not self.addresses
            or any(a.dane is None for a in self.addresses)
        )

    @property
    def exit_code(self) -> int:
        """2 DANE fails (anywhere); 1 something could not be checked; 3 no DANE (a sender
        delivers without DANE authentication); 0 authenticated on every address."""
        if self.dane == FAILS:
            return 2
        if self.incomplete:
            return 1
        if self.dane == NO_DANE:
            return 3
        return 0

    def to_json(self) -> dict[str, object]:
        first = self.tlsa.variants[0][1] if self.tlsa.variants else frozenset()
        expiry = self.tlsa.min_rrsig_expiry
        return {
            "host": self.host,
            "port": self.port,
            "owner": self.owner.to_text(),
            "starttls": self.starttls,
            "smtp": self.smtp,
            "tlsa": {
                "source": self.tlsa.source,
                "zone": self.tlsa.zone.to_text() if self.tlsa.zone else None,
                "records": _texts(first),
                "variants": [
                    {"servers": list(labels), "records": _texts(rs)}
                    for labels, rs in self.tlsa.variants
                ],
                "dnssec": self.tlsa.dnssec,
                "servers": self.tlsa.servers,
                "min_rrsig_expiry": timefmt.iso(expiry),
                "resolver": self.tlsa.resolver,
            },
            "addresses": [_address_json(a) for a in self.addresses],
            "problems": list(self.tlsa.problems),
            "insecure": list(self.tlsa.insecure),
            "errors": [*self.errors, *self.tlsa.errors],
            "dane": self.dane,
            "ok": self.exit_code == 0,
            "exit": self.exit_code,
        }


def _texts(rrset: frozenset[TLSA]) -> list[str]:
    return [records.to_text(r) for r in sorted(rrset, key=records.sort_key)]


def _address_json(a: AddressResult) -> dict[str, object]:
    s = a.served
    return {
        "address": s.address,
        "port": s.port,
        "dane": a.dane,
        "ok": a.ok,
        "summary": a.summary,
        "error": s.error,
        "tls_version": s.tls_version,
        "cipher": s.cipher,
        "server_name": s.server_name,
        "chain": [c.to_json() for c in describe(s.der)] if s.der else [],
        "verdicts": [{"servers": list(labels), **v.to_json()} for labels, v in a.verdicts],
        "saved_chain": a.saved,
    }


def run_probe(
    host: str,
    port: int,
    starttls: str,
    timeout: float,
    tlsa_from: str = "dns",
    resolver: Nameserver | None = None,
    nameservers: Sequence[Nameserver] = (),
    save_chain: str | None = None,
    fetch: Callable[..., ServedChain] = fetch_chain,
    observer_factory: ObserverFactory = default_observer,
    addresses: Sequence[str] | None = None,
    trust: Trust | None = None,
) -> ProbeReport:
    """Everything ``probe`` does except printing. Raises TlsarotateError for bad input.

    ``addresses`` probes these instead of resolving ``host`` (a server not yet in DNS).
    ``trust``: PKIX trust anchors for usages 0/1 off SMTP (default :func:`system_trust`)."""
    host = host.rstrip(".")
    if not host:
        raise TlsarotateError("probe: empty host name")
    if not 1 <= port <= 65535:
        raise TlsarotateError(f"--port {port} out of range 1-65535")
    if not 0 < timeout <= 3600:
        raise TlsarotateError(f"--timeout {timeout:g} out of range (0, 3600] seconds")
    mode = resolve_starttls(starttls, port)
    if is_ip(host):
        if tlsa_from == "dns":
            raise TlsarotateError(
                f"{host} is an address: give the host name, whose _{port}._tcp TLSA records "
                "DNS holds (or use --tlsa-from FILE)"
            )
        owner = dns.name.from_text(f"_{port}._tcp.host.invalid.")
    else:
        try:
            owner = records.owner_name(host, port)
        except dns.exception.DNSException as e:
            raise TlsarotateError(f"invalid host name {host!r}: {e}") from None
    if save_chain:
        d = Path(save_chain)
        if not d.is_dir():
            raise TlsarotateError(f"--save-chain {d}: not a directory")
    file_owner = None if is_ip(host) else owner  # an address has no owner name: take every line
    file_records = read_tlsa_file(tlsa_from, file_owner) if tlsa_from != "dns" else None
    bad = [a for a in addresses or () if not is_ip(a)]
    if bad:
        raise TlsarotateError(f"--address {bad[0]!r} is not an IP address")

    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        tlsa_future: Future[TlsaAnswer] | None = None
        if file_records is None:
            tlsa_future = pool.submit(
                tlsa_from_dns, owner, timeout, nameservers, resolver, observer_factory
            )
        if addresses:
            addrs = list(dict.fromkeys(addresses))
        else:
            try:
                addrs = resolve_addresses(host, timeout, resolver, nameservers)
            except TlsarotateError as e:
                addrs = []
                errors.append(str(e))
        sni = None if is_ip(host) else host
        futures = [pool.submit(fetch, a, port, mode, timeout, sni) for a in addrs]
        served = [f.result() for f in futures]
        if tlsa_future is not None:
            tlsa = tlsa_future.result()
        else:
            tlsa = TlsaAnswer(source=f"file:{tlsa_from}")
            assert file_records is not None
            tlsa.variants = [(("file",), frozenset(file_records))]

    smtp = speaks_smtp(mode, port)
    results: list[AddressResult] = []
    for s in served:
        verdicts = (
            [
                (labels, diagnose(s.der, rrset, host, smtp=smtp, trust=trust))
                for labels, rrset in tlsa.variants
            ]
            if s.ok
            else []
        )
        saved = _save(save_chain, host, s) if save_chain and s.ok else None
        dane, summary = address_verdict(tlsa, verdicts) if s.ok else (None, None)
        results.append(AddressResult(s, verdicts, saved, dane, summary))
    return ProbeReport(host, port, owner, mode, tlsa, results, errors, smtp)


def _save(directory: str, host: str, s: ServedChain) -> str:
    pem = "".join(ssl.DER_cert_to_PEM_cert(d) for d in s.der).encode()
    name = f"{host}_{s.port}_{s.address}.pem".replace(":", "-")
    path = Path(directory) / name
    try:
        atomic_write(path, pem)
    except OSError as e:
        raise TlsarotateError(
            f"--save-chain {directory}: cannot write {name}: {e.strerror}"
        ) from None
    return str(path)


# ---------------------------------------------------------------------------------------------
# text output


def render_text(rep: ProbeReport) -> str:
    out: list[str] = []
    t = rep.tlsa
    where = t.source
    if t.source == "dns":
        answering = [s for s in t.servers if not s.get("error")]
        if not answering:
            where = "dns, no authoritative server answered"
        else:
            agree = "servers agree" if len(t.variants) <= 1 else "SERVERS DISAGREE"
            where = f"dns, {len(answering)} of {len(t.servers)} server(s) answered, {agree}"
            where += f", DNSSEC {t.dnssec}"
    out.append(f"{rep.owner.to_text()} TLSA ({where}):")
    if not t.variants:
        out.append("  (no answer)")
    for labels, rrset in t.variants:
        if len(t.variants) > 1:
            out.append(f"  served by {', '.join(labels)}:")
        if not rrset:
            out.append("    (no TLSA records)" if len(t.variants) > 1 else "  (no TLSA records)")
        for text in _texts(rrset):
            out.append(("    " if len(t.variants) > 1 else "  ") + text)
    if t.min_rrsig_expiry is not None:
        out.append(f"  earliest RRSIG expiry: {timefmt.iso(t.min_rrsig_expiry)}")
    if t.resolver is not None:
        r = t.resolver
        if not r.get("error"):  # (an error is listed with the others below)
            ad = "AD set (validated)" if r["ad"] else "no AD bit (NOT validated)"
            out.append(f"resolver {r['server']}: {r['rcode']}, {ad}")
    for p in t.problems:
        out.append(f"DNS PROBLEM: {p}")
    for p in t.insecure:
        out.append(f"NO DANE: {p}")
    for e in [*rep.errors, *t.errors]:
        out.append(f"error: {e}")
    for a in rep.addresses:
        s = a.served
        out.append("")
        proto = "implicit TLS" if s.starttls == "none" else f"{s.starttls} STARTTLS"
        head = f"{s.endpoint} ({proto})"
        if s.error:
            out.append(f"{head}: ERROR {s.error}")
            continue
        out.append(f"{head}: {s.tls_version}, {s.cipher}")
        out.append("  served chain:")
        for c in describe(s.der):
            out.append(f"    {c.depth} subject {c.subject}")
            out.append(f"      issuer {c.issuer}")
            out.append(
                f"      valid {c.not_before:%Y-%m-%d %H:%M} to {c.not_after:%Y-%m-%d %H:%M} UTC, "
                f"{c.key_type}, SPKI sha256 {c.spki_sha256}"
            )
        for labels, v in a.verdicts:
            several = len(a.verdicts) > 1
            if several:
                out.append(f"  against the RRset of {', '.join(labels)}:")
            for rc in v.records:
                state = (
                    "MATCH"
                    if rc.authenticates
                    else "unusable"
                    if not rc.usable
                    else "ignored"
                    if not rc.considered
                    else "NO MATCH"
                )
                out.append(f"    {state:<9} {rc.reason}")
            if several:
                out.append(f"    -> {VERDICT_WORD[v.dane]}: {v.summary}")
            for w in v.warnings:
                out.append(f"  warning: {w}")
        if a.dane is not None:
            out.append(f"  => {VERDICT_WORD[a.dane]}: {a.summary}")
        if a.saved:
            out.append(f"  chain saved to {a.saved}")
    out.append("")
    out.append("result: " + result_line(rep))
    return "\n".join(out) + "\n"


def result_line(rep: ProbeReport) -> str:
    """One line that agrees with every per-address verdict and with the exit code."""
    n = len(rep.addresses)
    count = {d: sum(1 for a in rep.addresses if a.dane == d) for d in RANK}
    unreachable = sum(1 for a in rep.addresses if not a.served.ok)
    if rep.exit_code == 0:
        return f"all {n} address(es) pass DANE (authenticated)"
    parts = []
    if rep.tlsa.problems:
        parts.append("DNS makes DANE fail for every address: a DANE sender defers mail")
    elif count[FAILS]:
        parts.append(f"{count[FAILS]} of {n} address(es) fail DANE: a DANE sender defers mail")
    if count[NO_DANE]:
        parts.append(
            f"no DANE for {count[NO_DANE]} of {n} address(es): a sender delivers without "
            "DANE authentication"
        )
    if count[AUTHENTICATED] and parts:
        parts.append(f"{count[AUTHENTICATED]} of {n} authenticated")
    if unreachable:
        parts.append(f"{unreachable} of {n} address(es) could not be probed")
    if not parts:
        parts.append("could not check" if n else "no addresses to probe")
    return "; ".join(parts)


def cmd_probe(args: argparse.Namespace) -> int:
    resolver = parse_server(args.resolver, "--resolver") if args.resolver else None
    nameservers = [parse_server(n, "--nameserver") for n in (args.nameserver or [])]
    rep = run_probe(
        args.host,
        args.port,
        args.starttls,
        args.timeout,
        tlsa_from=args.tlsa_from,
        resolver=resolver,
        nameservers=nameservers,
        save_chain=args.save_chain,
        addresses=args.address,
    )
    if args.output == "json":
        sys.stdout.write(json.dumps(rep.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render_text(rep))
    return rep.exit_code
