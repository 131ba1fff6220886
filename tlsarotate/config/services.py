"""One entry of ``services:``: the zone and provider, the owners (hosts x ports), the TLSA
parameters, the certificate slots and how the rollover observes and treats the owners."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dns.name
import yaml

from tlsarotate import caset, material, records, safety
from tlsarotate.config import slots
from tlsarotate.config.model import CertSlot, ProviderConfig, Service, TlsrptRecord
from tlsarotate.config.nameservers import Nameserver, parse_nameserver
from tlsarotate.config.schema import NAME_RE, SERVICE_KEYS, TLSRPT_RECORD_KEYS
from tlsarotate.config.yamlnode import Entries, YamlFile
from tlsarotate.errors import RecordError


def service(
    doc: YamlFile, node: yaml.Node, kp: str, providers: Mapping[str, ProviderConfig]
) -> Service:
    m = doc.mapping(node, kp, SERVICE_KEYS)
    name = doc.string(m["name"][1], f"{kp}.name")
    if not NAME_RE.match(name):
        raise doc.err(m["name"][1], f"{kp}.name", "use letters, digits, '.', '_' and '-' only")
    zone = doc.fqdn(m["zone"][1], f"{kp}.zone")
    prov = doc.string(m["provider"][1], f"{kp}.provider")
    if prov not in providers:
        known = ", ".join(providers) or "none defined"
        raise doc.err(
            m["provider"][1], f"{kp}.provider", f"unknown provider {prov!r} (providers: {known})"
        )

    def host(n: yaml.Node, k: str) -> str:
        h = doc.fqdn(n, k)
        if not h.is_subdomain(zone):
            raise doc.err(n, k, f"host {h.to_text()} is not inside zone {zone.to_text()}")
        return h.to_text()

    hosts = doc.sequence(m["hosts"][1], f"{kp}.hosts", host)
    ports: tuple[int, ...] = (25,)
    if "ports" in m:
        ports = doc.sequence(
            m["ports"][1], f"{kp}.ports", lambda n, k: doc.integer(n, k, 1, 65535, "port")
        )
    proto = "tcp"
    if "protocol" in m:
        proto = doc.string(m["protocol"][1], f"{kp}.protocol")
        if proto not in ("tcp", "udp", "sctp"):
            raise doc.err(m["protocol"][1], f"{kp}.protocol", "must be tcp, udp or sctp")
    ttl = doc.integer(m["ttl"][1], f"{kp}.ttl", 1, 2147483647, "ttl") if "ttl" in m else 3600
    params = (
        _params(doc, m["records"][1], f"{kp}.records")
        if "records" in m
        else tuple(records.parse_params(p) for p in records.DEFAULT_PARAMS)
    )
    if ("certificate" in m) == ("certificates" in m):
        raise doc.err(node, kp, "give exactly one of certificate (one) or certificates (a list)")
    if "certificate" in m:
        certs: tuple[CertSlot, ...] = (
            slots.slot(doc, m["certificate"][1], f"{kp}.certificate", "default"),
        )
    else:
        # a slot without a name is called after its place in the list: "0", "1", ...
        certs = tuple(
            slots.slot(doc, n, k, str(i))
            for i, (n, k) in enumerate(doc.elements(m["certificates"][1], f"{kp}.certificates"))
        )
        names = [s.name for s in certs]
        if len(set(names)) != len(names):
            raise doc.err(
                m["certificates"][1], f"{kp}.certificates", "certificate names must be unique"
            )
    allow_unsigned = (
        doc.boolean(m["allow_unsigned"][1], f"{kp}.allow_unsigned")
        if "allow_unsigned" in m
        else False
    )
    observe = "dns"
    if "observe" in m:
        observe = doc.string(m["observe"][1], f"{kp}.observe")
        if observe not in ("dns", "provider"):
            raise doc.err(m["observe"][1], f"{kp}.observe", "must be dns or provider")
    observe_read = "query"
    if "observe_read" in m:
        observe_read = doc.string(m["observe_read"][1], f"{kp}.observe_read")
        if observe_read not in ("query", "axfr"):
            raise doc.err(m["observe_read"][1], f"{kp}.observe_read", "must be query or axfr")
        if observe != "dns":
            raise doc.err(
                m["observe_read"][1],
                f"{kp}.observe_read",
                "only meaningful with observe: dns (the servers are asked)",
            )
    ns: tuple[Nameserver, ...] = ()
    if "nameservers" in m:
        ns = doc.sequence(
            m["nameservers"][1], f"{kp}.nameservers", lambda n, k: _nameserver(doc, n, k)
        )
    ns_mode = "replace"
    if "nameservers_mode" in m:
        ns_mode = doc.string(m["nameservers_mode"][1], f"{kp}.nameservers_mode")
        if ns_mode not in ("replace", "add"):
            raise doc.err(
                m["nameservers_mode"][1], f"{kp}.nameservers_mode", "must be replace or add"
            )
        if not ns:
            raise doc.err(
                m["nameservers_mode"][1],
                f"{kp}.nameservers_mode",
                "only meaningful together with nameservers",
            )
    owners_mode = "shared"
    if "owners" in m:
        owners_mode = doc.string(m["owners"][1], f"{kp}.owners")
        if owners_mode not in ("shared", "exclusive"):
            raise doc.err(
                m["owners"][1],
                f"{kp}.owners",
                "must be shared (keep other writers' records) or exclusive (remove every "
                "record this service does not account for)",
            )
    min_validity = float(material.DEFAULT_MIN_VALIDITY)
    if "next_min_days" in m:
        days = doc.number(
            m["next_min_days"][1], f"{kp}.next_min_days", 0, 365, "next_min_days", "days"
        )
        min_validity = days * 86400
    limits = safety.Limits(
        doc.integer(m["max_stale_removals"][1], f"{kp}.max_stale_removals", 0, 10000, "count")
        if "max_stale_removals" in m
        else safety.DEFAULT_MAX_STALE_REMOVALS,
        doc.number(
            m["max_stale_share"][1],
            f"{kp}.max_stale_share",
            0,
            1,
            "share",
            "the RRset's share (0-1)",
        )
        if "max_stale_share" in m
        else safety.DEFAULT_MAX_STALE_SHARE,
    )
    tlsrpt_record = (
        _tlsrpt_record(doc, m["tlsrpt_record"][1], f"{kp}.tlsrpt_record", zone, providers[prov])
        if "tlsrpt_record" in m
        else None
    )
    shared = _shared_owner(doc, m, kp, zone, hosts, ports, proto, observe)
    ca_set = _ca_set(doc, m, kp, params)
    return Service(
        name,
        zone,
        prov,
        hosts,
        ports,
        proto,
        ttl,
        params,
        certs,
        allow_unsigned,
        observe,
        ns,
        ns_mode,
        owners_mode,
        min_validity,
        limits,
        tlsrpt_record,
        shared,
        ca_set=ca_set,
        observe_read=observe_read,
    )


def _shared_owner(
    doc: YamlFile,
    m: Entries,
    kp: str,
    zone: dns.name.Name,
    hosts: tuple[str, ...],
    ports: tuple[int, ...],
    proto: str,
    observe: str,
) -> dns.name.Name | None:
    """``shared_owner:``: a name inside the zone, none of the hosts' base names, and only with
    ``observe: dns`` (the CNAMEs are checked on the authoritative servers)."""
    if "shared_owner" not in m:
        return None
    node, k = m["shared_owner"][1], f"{kp}.shared_owner"
    owner = doc.fqdn(node, k)
    if not owner.is_subdomain(zone):
        raise doc.err(node, k, f"{owner.to_text()} is not inside zone {zone.to_text()}")
    if owner == zone:
        raise doc.err(node, k, "the zone apex cannot be the shared owner")
    if any(owner == records.owner_name(h, p, proto) for h in hosts for p in ports):
        raise doc.err(
            node, k, f"{owner.to_text()} is a host's own TLSA name: it must be a CNAME to this"
        )
    if observe != "dns":
        raise doc.err(
            node,
            k,
            "needs observe: dns (each host's CNAME is checked on the authoritative servers)",
        )
    return owner


def _ca_set(
    doc: YamlFile, m: Entries, kp: str, params: tuple[records.Params, ...]
) -> tuple[Path, ...]:
    """``ca_set:``: the files (or directories) of the CA certificates usage 0/2 records pin."""
    if "ca_set" not in m:
        return ()
    node = m["ca_set"][1]
    if not caset.ta_params(params):
        raise doc.err(
            node,
            f"{kp}.ca_set",
            'only meaningful with a usage 2 (DANE-TA) or 0 entry in records, e.g. "2 1 1"',
        )
    paths = doc.sequence(node, f"{kp}.ca_set", doc.path)
    if len(set(paths)) != len(paths):
        raise doc.err(node, f"{kp}.ca_set", "names a file twice")
    return paths


def _params(doc: YamlFile, node: yaml.Node, kp: str) -> tuple[records.Params, ...]:
    """``records:``: distinct "usage selector mtype" triples."""

    def param(n: yaml.Node, k: str) -> records.Params:
        try:
            return records.parse_params(str(doc.scalar(n, k)))
        except RecordError as e:
            raise doc.err(n, k, str(e)) from None

    params = doc.sequence(node, kp, param)
    seen: set[records.Params] = set()
    for i, p in enumerate(params):
        if p in seen:
            raise doc.err(node.value[i], f"{kp}[{i}]", f"duplicate {p}")
        seen.add(p)
    return params


def _nameserver(doc: YamlFile, node: yaml.Node, kp: str) -> Nameserver:
    try:
        return parse_nameserver(str(doc.scalar(node, kp)))
    except ValueError as e:
        raise doc.err(node, kp, str(e)) from None


def _tlsrpt_record(
    doc: YamlFile, node: yaml.Node, kp: str, zone: dns.name.Name, pc: ProviderConfig
) -> TlsrptRecord:
    """``tlsrpt_record: {domain: D, rua: [URI, ...]}``: the TXT record at ``_smtp._tls.D``,
    inside the service's zone, written through its provider (which must manage TXT)."""
    from tlsarotate import providers as registry
    from tlsarotate.tlsrpt import record

    m = doc.mapping(node, kp, TLSRPT_RECORD_KEYS)
    domain = doc.fqdn(m["domain"][1], f"{kp}.domain") if "domain" in m else zone
    if "domain" in m and not domain.is_subdomain(zone):
        raise doc.err(
            m["domain"][1], f"{kp}.domain", f"{domain} is not inside zone {zone.to_text()}"
        )

    def uri(n: yaml.Node, k: str) -> str:
        u = doc.string(n, k)
        problem = record.rua_problem(u)
        if problem:
            raise doc.err(n, k, problem)
        return u

    rua = doc.sequence(m["rua"][1], f"{kp}.rua", uri)
    problem = registry.get_class(pc.type).txt_problem(pc.options)
    if problem:
        raise doc.err(
            node,
            kp,
            f"provider {pc.name} ({pc.type}) {problem}; "
            "publish the TLSRPT record another way and remove tlsrpt_record",
        )
    return TlsrptRecord(domain, rua)
