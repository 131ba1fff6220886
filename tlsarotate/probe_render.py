"""The render step of ``probe``: a :class:`~tlsarotate.probe_judge.ProbeReport` as text
(:func:`render_text`) or as JSON (:func:`render_json`; the document is :func:`report_json`,
its schema in :mod:`tlsarotate.probe`). Pure: no I/O.
"""

from __future__ import annotations

import json

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import jsondoc, keytypes, records, timefmt
from tlsarotate.certinfo import CertInfo, chain_info
from tlsarotate.dane import RecordCheck
from tlsarotate.probe_judge import RANK, AddressResult, ProbeReport
from tlsarotate.served import format_endpoint
from tlsarotate.tlsaanswer import ResolverAnswer, TlsaServerAnswer
from tlsarotate.verdict import AUTHENTICATED, FAILS, NO_DANE, Verdict

VERDICT_WORD = {AUTHENTICATED: "OK", FAILS: "FAIL", NO_DANE: "NO DANE"}


def _texts(rrset: frozenset[TLSA]) -> list[str]:
    return [records.to_text(r) for r in sorted(rrset, key=records.sort_key)]


# ---------------------------------------------------------------------------------------------
# JSON


def render_json(rep: ProbeReport) -> str:
    return json.dumps(report_json(rep), indent=2) + "\n"


def report_json(rep: ProbeReport) -> dict[str, object]:
    t = rep.tlsa
    first = t.variants[0][1] if t.variants else frozenset()
    return {
        **jsondoc.head("probe"),
        "host": rep.host,
        "port": rep.port,
        "owner": rep.owner.to_text(),
        "starttls": rep.starttls,
        "smtp": rep.smtp,
        "tlsa": {
            "source": t.source,
            "zone": t.zone.to_text() if t.zone else None,
            "records": _texts(first),
            "variants": [
                {"servers": list(labels), "records": _texts(rs)} for labels, rs in t.variants
            ],
            "dnssec": t.dnssec,
            "servers": [_server_json(s) for s in t.servers],
            "min_rrsig_expiry": timefmt.iso(t.min_rrsig_expiry),
            "resolver": _resolver_json(t.resolver) if t.resolver is not None else None,
            "cname_chain": _names(t.cname_chain),
            "host_cname_chain": _names(t.host_cname_chain),
            "host_expansion": t.host_expansion,
        },
        "addresses": [_address_json(a) for a in rep.addresses],
        "key_types": rep.key_types,
        "not_served": [
            {"address": n.address, "port": n.port, "key_type": n.key_type, "reason": n.reason}
            for n in rep.not_served
        ],
        "problems": list(t.problems),
        "insecure": list(t.insecure),
        "errors": [*rep.errors, *t.errors],
        "dane": rep.dane,
        "ok": rep.exit_code == 0,
        "exit": rep.exit_code,
    }


def _server_json(s: TlsaServerAnswer) -> dict[str, object]:
    return {
        "label": s.label,
        "address": s.address,
        "port": s.port,
        "error": s.error,
        "records": s.records,
        "signed": s.signed,
    }


def _resolver_json(r: ResolverAnswer) -> dict[str, object]:
    return {
        "server": r.server,
        "rcode": r.rcode,
        "ad": r.ad,
        "records": r.records,
        "error": r.error,
        "cname_chain": _names(r.cname_chain),
    }


def _names(chain: list[dns.name.Name] | None) -> list[str] | None:
    return [n.to_text() for n in chain] if chain else None


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
        "key_type": a.key_type,
        "key_type_offered": s.key_type,
        "chain": [cert_json(c) for c in chain_info(s.der)] if s.der else [],
        "verdicts": [{"servers": list(labels), **verdict_json(v)} for labels, v in a.verdicts],
        "saved_chain": a.saved,
    }


def cert_json(c: CertInfo) -> dict[str, object]:
    return {
        "depth": c.depth,
        "subject": c.subject,
        "issuer": c.issuer,
        "not_before": c.not_before.isoformat(),
        "not_after": c.not_after.isoformat(),
        "key_type": c.key_type,
        "spki_sha256": c.spki_sha256,
        "cert_sha256": c.cert_sha256,
        "names": list(c.names),
        "ca": c.is_ca,
    }


def verdict_json(v: Verdict) -> dict[str, object]:
    return {
        "dane": v.dane,
        "ok": v.ok,
        "summary": v.summary,
        "records": [_record_json(r) for r in v.records],
        "warnings": list(v.warnings),
    }


def _record_json(r: RecordCheck) -> dict[str, object]:
    return {
        "record": r.record,
        "usable": r.usable,
        "considered": r.considered,
        "matched": r.matched,
        "authenticates": r.authenticates,
        "reason": r.reason,
    }


# ---------------------------------------------------------------------------------------------
# text


def render_text(rep: ProbeReport) -> str:
    out = _tlsa_lines(rep)
    for a in rep.addresses:
        out.append("")
        out += _address_lines(a)
    if rep.not_served:
        out.append("")
    for n in rep.not_served:
        out.append(
            f"{format_endpoint(n.address, n.port)}: serves no {keytypes.label(n.key_type)} "
            f"certificate ({n.reason})"
        )
    out.append("")
    out.append("result: " + result_line(rep))
    return "\n".join(out) + "\n"


def _tlsa_lines(rep: ProbeReport) -> list[str]:
    out: list[str] = []
    t = rep.tlsa
    where = t.source
    if t.source == "dns":
        answering = [s for s in t.servers if not s.error]
        if not answering:
            where = "dns, no authoritative server answered"
        else:
            agree = "servers agree" if len(t.variants) <= 1 else "SERVERS DISAGREE"
            where = f"dns, {len(answering)} of {len(t.servers)} server(s) answered, {agree}"
            where += f", DNSSEC {t.dnssec}"
    if t.host_cname_chain:
        out.append(
            f"host {rep.host} is a CNAME: {' -> '.join(map(str, t.host_cname_chain))} "
            f"(expansion {t.host_expansion}): TLSA base domain "
            f"{rep.owner.parent().parent().to_text()}"
        )
    if t.cname_chain:
        out.append(f"{rep.owner.to_text()} is a CNAME: {' -> '.join(map(str, t.cname_chain))}")
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
    r = t.resolver
    if r is not None and not r.error:  # (an error is listed with the others below)
        ad = "AD set (validated)" if r.ad else "no AD bit (NOT validated)"
        via = f", via {' -> '.join(map(str, r.cname_chain))}" if r.cname_chain else ""
        out.append(f"resolver {r.server}: {r.rcode}, {ad}{via}")
    for p in t.problems:
        out.append(f"DNS PROBLEM: {p}")
    for p in t.insecure:
        out.append(f"NO DANE: {p}")
    for e in [*rep.errors, *t.errors]:
        out.append(f"error: {e}")
    return out


def _address_lines(a: AddressResult) -> list[str]:
    out: list[str] = []
    s = a.served
    proto = "implicit TLS" if s.starttls == "none" else f"{s.starttls} STARTTLS"
    head = f"{s.endpoint} ({proto})"
    if s.error:
        return [f"{head}: ERROR {s.error}"]
    kind = f", {keytypes.label(a.key_type)} certificate" if a.key_type else ""
    out.append(f"{head}: {s.tls_version}, {s.cipher}{kind}")
    out.append("  served chain:")
    for c in chain_info(s.der):
        out.append(f"    {c.depth} subject {c.subject}")
        out.append(f"      issuer {c.issuer}")
        out.append(
            f"      valid {c.not_before:%Y-%m-%d %H:%M} to {c.not_after:%Y-%m-%d %H:%M} UTC, "
            f"{c.key_type}, SPKI sha256 {c.spki_sha256}"
        )
    several = len(a.verdicts) > 1
    for labels, v in a.verdicts:
        if several:
            out.append(f"  against the RRset of {', '.join(labels)}:")
        for rc in v.records:
            out.append(f"    {_record_state(rc):<9} {rc.reason}")
        if several:
            out.append(f"    -> {VERDICT_WORD[v.dane]}: {v.summary}")
        for w in v.warnings:
            out.append(f"  warning: {w}")
    if a.dane is not None:
        out.append(f"  => {VERDICT_WORD[a.dane]}: {a.summary}")
    if a.saved:
        out.append(f"  chain saved to {a.saved}")
    return out


def _record_state(rc: RecordCheck) -> str:
    if rc.authenticates:
        return "MATCH"
    if not rc.usable:
        return "unusable"
    if not rc.considered:
        return "ignored"
    return "NO MATCH"


def result_line(rep: ProbeReport) -> str:
    """One line that agrees with every per-address verdict and with the exit code."""
    n = len(rep.addresses)
    count = {d: sum(1 for a in rep.addresses if a.dane == d) for d in RANK}
    unreachable = sum(1 for a in rep.addresses if not a.served.ok)
    # several key types served by one address (RSA and ECDSA): one result per handshake
    several = len({a.served.address for a in rep.addresses}) < n
    unit = "handshake(s) (one per key type and address)" if several else "address(es)"
    if rep.exit_code == 0:
        return f"all {n} {unit} pass DANE (authenticated)"
    parts = []
    if rep.tlsa.problems:
        parts.append("DNS makes DANE fail for every address: a DANE sender defers mail")
    elif count[FAILS]:
        parts.append(f"{count[FAILS]} of {n} {unit} fail DANE: a DANE sender defers mail")
    if count[NO_DANE]:
        parts.append(
            f"no DANE for {count[NO_DANE]} of {n} {unit}: a sender delivers without "
            "DANE authentication"
        )
    if count[AUTHENTICATED] and parts:
        parts.append(f"{count[AUTHENTICATED]} of {n} authenticated")
    if unreachable:
        parts.append(f"{unreachable} of {n} {unit} could not be probed")
    if not parts:
        parts.append("could not check" if n else "no addresses to probe")
    return "; ".join(parts)
