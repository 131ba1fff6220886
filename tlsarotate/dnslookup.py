"""The DNS client of probe, check and verify: the addresses of a host, the zone of a name, and
the TLSA RRset of an owner as every authoritative server serves it (signed or not) and as a
validating resolver answers it (the AD bit).

:func:`lookup_tlsa` returns a :class:`TlsaAnswer`: the RRset variants the servers serve and
what the DNS side alone means for DANE (RFC 7672 §2.2): ``problems`` (bogus: an RRSIG that
does not validate, a validating resolver answering SERVFAIL: DANE fails), ``insecure`` (an
unsigned zone, records without the AD bit: no DANE) and ``errors`` (could not check).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import replace

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from tlsarotate import cname, records
from tlsarotate.authoritative import DnsObserver
from tlsarotate.config import Nameserver
from tlsarotate.errors import ObserverError, TlsarotateError
from tlsarotate.observation import Observation, Observer, ServerAnswer
from tlsarotate.served import is_ip
from tlsarotate.tlsaanswer import ResolverAnswer, TlsaAnswer, TlsaServerAnswer

NameserverObserverFactory = Callable[..., Observer]


def stub_resolver(server: Nameserver | None, timeout: float) -> dns.resolver.Resolver | None:
    """A stub resolver asking ``server`` (None: the system's, from /etc/resolv.conf)."""
    if server is None:
        return None
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [server.address]
    res.port = server.port
    res.lifetime = timeout
    return res


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
        res = stub_resolver(resolver, timeout)
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
            owner, resolver=stub_resolver(resolver, timeout), lifetime=timeout
        )
    except dns.resolver.NoRootSOA:
        raise ObserverError(f"cannot find the zone of {owner}: no DNS server answered") from None
    except (dns.exception.DNSException, OSError) as e:
        raise ObserverError(f"cannot find the zone of {owner}: {e}") from None


def nameserver_observer(
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
        resolver=stub_resolver(resolver, timeout),
        replace=replace,
    )


def lookup_tlsa(
    owner: dns.name.Name,
    timeout: float,
    nameservers: Sequence[Nameserver] = (),
    resolver: Nameserver | None = None,
    observer_factory: NameserverObserverFactory = nameserver_observer,
) -> TlsaAnswer:
    """Ask every authoritative server (through the observer) and, with ``resolver``, the
    validating resolver too. A CNAME at ``owner`` (RFC 7671 §7: a shared ``_dane`` RRset) is
    followed, each step's RRSIG validated, into other zones too (their own servers)."""
    ans = TlsaAnswer(source="dns")
    _lookup(ans, owner, timeout, nameservers, resolver, observer_factory, [owner])
    if resolver is not None:
        _ask_resolver(ans, owner, resolver, timeout)
    return ans


def lookup_host_tlsa(
    host: str,
    port: int,
    timeout: float,
    nameservers: Sequence[Nameserver] = (),
    resolver: Nameserver | None = None,
    observer_factory: NameserverObserverFactory = nameserver_observer,
) -> tuple[dns.name.Name, TlsaAnswer]:
    """The TLSA owner and RRset of ``host`` on ``port``, its name CNAME-expanded as RFC 7671
    §7 and RFC 7672 §2.2.2 ask: when ``host`` is a CNAME (chain) and every step is
    DNSSEC-signed, the TLSA base domain is the chain's end; failing that (no TLSA records
    there, or an expansion that is not secure), ``host`` itself."""
    original = records.owner_name(host, port)
    chain, expansion = expand_host(host, timeout, nameservers, resolver, observer_factory)
    if chain is not None and expansion == "secure":
        expanded = records.owner_name(chain[-1].to_text(), port)
        ans = lookup_tlsa(expanded, timeout, nameservers, resolver, observer_factory)
        found = any(rs for _, rs in ans.variants) or ans.problems or ans.errors
        if found:
            ans.host_cname_chain, ans.host_expansion = chain, expansion
            return expanded, ans
        expansion = f"secure, but {expanded.to_text()} holds no TLSA records"
    ans = lookup_tlsa(original, timeout, nameservers, resolver, observer_factory)
    ans.host_cname_chain, ans.host_expansion = chain, expansion
    return original, ans


def expand_host(
    host: str,
    timeout: float,
    nameservers: Sequence[Nameserver] = (),
    resolver: Nameserver | None = None,
    observer_factory: NameserverObserverFactory = nameserver_observer,
) -> tuple[list[dns.name.Name] | None, str | None]:
    """The CNAME chain at ``host`` (None: it is no alias) and whether its expansion is secure
    ("secure", or in words why not), as its zones' authoritative servers serve it: the same
    walk as a TLSA owner's (each CNAME's RRSIG validated, across zones)."""
    name = dns.name.from_text(host.rstrip(".") + ".")
    ans = TlsaAnswer(source="dns")
    _lookup(ans, name, timeout, nameservers, None, observer_factory, [name])
    if not ans.cname_chain:
        return None, None
    why = [*ans.problems, *ans.insecure, *ans.errors]
    if not why and ans.dnssec != "signed":
        why = [f"DNSSEC {ans.dnssec}"]
    return list(ans.cname_chain), "secure" if not why else f"not secure ({why[0]})"


def _lookup(
    ans: TlsaAnswer,
    name: dns.name.Name,
    timeout: float,
    nameservers: Sequence[Nameserver],
    resolver: Nameserver | None,
    observer_factory: NameserverObserverFactory,
    seen: list[dns.name.Name],
) -> None:
    """The TLSA RRset at ``name`` as its zone's servers serve it; ``seen``: the chain so far
    (its last name is ``name``)."""
    try:
        zone = find_zone(name, timeout, resolver, nameservers)
        if ans.zone is None:
            ans.zone = zone
        observer = observer_factory(nameservers, timeout, resolver)
        obs = observer.observe(zone, [name])
    except TlsarotateError as e:
        ans.errors.append(str(e))
        return
    limit = cname.MAX_CHAIN - (len(seen) - 1)
    chains = {i: cname.follow(name, s.cnames, limit) for i, s in enumerate(obs.servers)}
    here: list[ServerAnswer] = []  # the chain ends in this zone: judged as this zone's answer
    onward: dict[dns.name.Name, list[ServerAnswer]] = {}  # it leaves the zone: follow it there
    for i, s in enumerate(obs.servers):
        ch = chains[i]
        problem = ch.problem
        if problem is None and set(ch.names[1:]) & set(seen):
            problem = f"CNAME loop: {' -> '.join(n.to_text() for n in [*seen, *ch.names[1:]])}"
        if s.error or not ch.steps:
            here.append(s)
        elif problem is not None:
            line = f"{s.label}: {problem}: resolvers answer SERVFAIL, DANE clients defer"
            if line not in ans.problems:
                ans.problems.append(line)
        elif ch.end.is_subdomain(zone):
            here.append(_through(s, name, ch))
        else:
            _cname_steps(ans, obs, s, ch)
            onward.setdefault(ch.end, []).append(s)
    first = next((chains[i] for i, s in enumerate(obs.servers) if not s.error), None)
    if first is not None and first.steps and not first.problem:
        ans.cname_chain = [*(ans.cname_chain or [seen[0]]), *first.names[1:]]
    if here:
        _add_observation(ans, replace(obs, servers=tuple(here)), name)
    for end in onward:
        _lookup(ans, end, timeout, nameservers, resolver, observer_factory, [*seen, end])
        if obs.zone_signed is False:
            ans.dnssec = "unsigned"


def _through(s: ServerAnswer, name: dns.name.Name, ch: cname.Chain) -> ServerAnswer:
    """``s`` as a client sees it at ``name``: the RRset at the chain's end, signed when every
    step (each CNAME, and the end's RRset or its denial) is."""
    steps = [s.signed.get(n) for n in ch.names]
    signed = False if False in steps else (None if None in steps else True)
    return replace(s, rrsets={name: s.rrsets.get(ch.end)}, signed={name: signed})


def _cname_steps(ans: TlsaAnswer, obs: Observation, s: ServerAnswer, ch: cname.Chain) -> None:
    """The CNAMEs of ``ch`` served by ``s`` in a zone the chain leaves: signed?"""
    for n in ch.names[:-1]:
        if obs.zone_signed is False:
            line = (
                f"the CNAME at {n} is in zone {obs.zone}, which is not DNSSEC-signed: DANE "
                "clients ignore the TLSA records it leads to"
            )
            if line not in ans.insecure:
                ans.insecure.append(line)
        elif s.signed.get(n) is False:
            why = f" ({s.sig_problem})" if s.sig_problem else ""
            ans.problems.append(
                f"{s.label}: the CNAME at {n} has no valid RRSIG{why}: DANE clients treat it "
                "as bogus"
            )
            ans.dnssec = "invalid"


def _add_observation(ans: TlsaAnswer, obs: Observation, owner: dns.name.Name) -> None:
    """What the authoritative servers serve at ``owner``, and what that means for DANE."""
    signed_states: list[bool | None] = []
    # an unsigned zone has no RRSIGs at all: that is "insecure" (no DANE), not "bogus"
    unsigned = obs.zone_signed is False
    for s in obs.servers:
        rr = s.rrsets.get(owner)
        recs = sorted(rr.records, key=records.sort_key) if rr else []
        signed = s.signed.get(owner)
        texts = None if s.error else [records.to_text(r) for r in recs]
        ans.servers.append(TlsaServerAnswer(s.label, s.address, s.port, s.error, texts, signed))
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
    info = ResolverAnswer(str(resolver))
    ans.resolver = info
    try:
        r = dns.query.udp(q, resolver.address, port=resolver.port, timeout=timeout)
        if r.flags & dns.flags.TC:
            r = dns.query.tcp(q, resolver.address, port=resolver.port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as e:
        info.error = str(e) or type(e).__name__
        ans.errors.append(f"validating resolver {resolver}: {info.error}")
        return
    info.rcode = dns.rcode.to_text(r.rcode())
    info.ad = bool(r.flags & dns.flags.AD)
    info.records = [
        records.to_text(rd)
        for rrset in r.answer
        if rrset.rdtype == dns.rdatatype.TLSA
        for rd in sorted(rrset, key=records.sort_key)
    ]
    cnames = {
        rr.name: cname.Cname(rr[0].target, rr.ttl)
        for rr in r.answer
        if rr.rdtype == dns.rdatatype.CNAME
    }
    chain = cname.follow(owner, cnames)
    if chain.steps:
        info.cname_chain = list(chain.names)
    if info.rcode == "SERVFAIL":
        ans.problems.append(
            f"validating resolver {resolver} answers SERVFAIL for {owner} TLSA "
            "(DNSSEC bogus?): DANE clients defer delivery"
        )
    elif info.rcode == "NOERROR" and info.records and not info.ad:
        step = _insecure_step(chain, resolver, timeout) if chain.steps else None
        ans.insecure.append(
            f"validating resolver {resolver} returns the TLSA records without the AD bit"
            + (f" ({step})" if step else "")
            + ": DANE clients treat them as insecure and ignore them"
        )


def _insecure_step(chain: cname.Chain, resolver: Nameserver, timeout: float) -> str | None:
    """Which step of a CNAME chain the validating resolver does not call secure: each CNAME,
    then the TLSA RRset at its end, asked on its own (RFC 7671 §7: every step must be)."""
    asks = [(n, dns.rdatatype.CNAME) for n in chain.names[:-1]]
    for name, rdtype in [*asks, (chain.end, dns.rdatatype.TLSA)]:
        q = dns.message.make_query(name, rdtype, want_dnssec=True)
        q.flags |= dns.flags.RD | dns.flags.AD
        try:
            r = dns.query.udp(q, resolver.address, port=resolver.port, timeout=timeout)
        except (dns.exception.DNSException, OSError):
            return None
        if not r.flags & dns.flags.AD:
            what = "the CNAME" if rdtype == dns.rdatatype.CNAME else "the TLSA RRset"
            return f"{what} at {name} is not DNSSEC-secure"
    return None
