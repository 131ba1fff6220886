"""``tlsarotate check --output json``: the report as one JSON document.

::

    {
      "version": 1,                        # the schema's version (schemas/check.schema.json)
      "tool_version": str,                 # tlsarotate's version
      "status": "OK" | "WARNING" | "CRITICAL" | "UNKNOWN",
      "exit": 0 | 1 | 2 | 3,
      "summary": str,                      # the Nagios status text
      "checked_at": iso,
      "findings": [{"severity": "CRITICAL", "service": str, "owner": str|null,
                    "address": str|null, "message": str}],   # everything not OK
      "services": [{
        "name": str, "zone": str,
        "owners": [{"owner": str,
                    "records": ["3 1 1 <hex>", ...] | null,  # first answering server's RRset
                    "servers": [{"label": str, "error": str|null, "records": [...]|null,
                                 "signed": bool|null}],
                    "consistent": bool|null,     # null (and records null): no server answered
                    "signed": bool|null,
                    "rrsig_expiry": iso|null}],
        "endpoints": [{"host": str, "port": int, "owner": str, "address": str,
                       "ok": bool|null, "error": str|null, "summary": str|null,
                       "spki_sha256": str|null,
                       "key_type": "rsa"|"ecdsa"|null}],   # the handshake offered only this
                                 # key type (RSA and ECDSA slots: one entry per type); null: any
        "certificates": [{"slot": str,
                          "deployed": {"file": str, "spki_sha256": str, "not_after": iso|null,
                                       "not_after_unix": int|null,
                                       "expires_in_seconds": int|null},
                          "next": null | {... same ...},
                          "swap_readiness": null | {"ready": bool, "published": bool,
                                                    "missing": [str], "detail": str}}],
        "aliases": [{"alias": str, "owner": str,   # shared_owner: each host's TLSA name
                     "ok": bool|null, "problems": [str]}]   # ok null: not known
        "ca_set": {                        # only with ca_set configured
          "cas": [{"subject": str, "file": str, "not_after": iso, "not_after_unix": int,
                   "expires_in_seconds": int,
                   "published": bool|null}],  # its 2 x x records on every server, every owner
          "issuer_in_set": [{"slot": str, "in_set": bool}],   # each deployed certificate's
          "retired": [{"owner": str, "record": str}]}         # pins of CAs no longer in it
      }],
      "next_gate": null | {"file": str, "ok": bool, "missing": [str]},
      "tlsrpt": null | {"window_seconds": int, "reports": int, "failed_sessions": int,
                        "warn": int, "crit": int,
                        "failed": [{"policy_domain": str, "mx": str, "result_type": str,
                                    "sessions": int}]},   # null: no tlsrpt.dir configured
      "error": null,
      "perfdata": {"endpoints": int, "failing": int, "unknown": int, "owners": int,
                   "unpublished": int|null,     # null: a server did not answer (not known)
                   "warnings": int, "criticals": int,
                   "cert_expiry_min_seconds": int|null,          # earliest deployed certificate
                   "cert_expiry_no_next_min_seconds": int|null,  # ... of those with no next one
                   "rrsig_expiry_min_seconds": int|null,
                   "tlsrpt_failed": int|null,   # null: no reports directory configured
                   "broken_aliases": int|null,  # null: no shared_owner, or not known
                   "key_types_missing": int|null}   # handshakes of a configured key type
                                 # the server refused; null: no service has RSA and ECDSA slots
    }

When the check cannot run at all (config error, ...) the document has the same keys with
``"status": "UNKNOWN"``, ``"exit": 3``, ``"summary"`` and ``"error"`` the one-line reason, one
UNKNOWN finding, no services and ``"perfdata": null`` (:func:`error_json`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from tlsarotate import jsondoc, records, timefmt
from tlsarotate.check.report import (
    STATUS,
    UNKNOWN,
    CaSetReport,
    CertInfo,
    CertReport,
    CheckReport,
    EndpointReport,
    Finding,
    ServiceReport,
    TlsrptSummary,
)
from tlsarotate.served import ServedChain


def render(rep: CheckReport) -> str:
    return json.dumps(report_json(rep), indent=2) + "\n"


def render_error(reason: str, now: float) -> str:
    return json.dumps(error_json(reason, now), indent=2) + "\n"


def report_json(rep: CheckReport) -> dict[str, object]:
    gate = rep.next_gate
    return {
        **jsondoc.head("check"),
        "status": rep.status,
        "exit": rep.exit_code,
        "summary": rep.summary(),
        "checked_at": timefmt.iso(rep.checked_at),
        "findings": [_finding(f) for f in rep.findings],
        "services": [_service(r, rep.checked_at) for r in rep.services],
        "next_gate": (
            None
            if gate is None
            else {"file": gate.file, "ok": gate.ok, "missing": list(gate.missing)}
        ),
        "tlsrpt": _tlsrpt(rep.tlsrpt),
        "error": None,
        "perfdata": dataclasses.asdict(rep.perf),
    }


def error_json(reason: str, now: float) -> dict[str, object]:
    """The JSON document of a check that could not run (same keys as :func:`report_json`)."""
    return {
        **jsondoc.head("check"),
        "status": STATUS[UNKNOWN],
        "exit": UNKNOWN,
        "summary": reason,
        "error": reason,
        "checked_at": timefmt.iso(now),
        "findings": [
            {
                "severity": "UNKNOWN",
                "service": None,
                "owner": None,
                "address": None,
                "message": reason,
            }
        ],
        "services": [],
        "next_gate": None,
        "tlsrpt": None,
        "perfdata": None,
    }


def _tlsrpt(t: TlsrptSummary | None) -> dict[str, object] | None:
    if t is None:
        return None
    return {
        "window_seconds": int(t.window),
        "reports": t.reports,
        "failed_sessions": t.total,
        "warn": t.warn,
        "crit": t.crit,
        "failed": [
            {"policy_domain": d, "mx": mx, "result_type": rt, "sessions": n}
            for d, mx, rt, n in t.failed
        ],
    }


def _finding(f: Finding) -> dict[str, object]:
    return {
        "severity": STATUS[f.severity],
        "service": f.service,
        "owner": f.owner,
        "address": f.address,
        "message": f.message,
    }


def _service(r: ServiceReport, now: float) -> dict[str, object]:
    obs = r.observation
    owners = []
    for owner in r.service.owners:
        servers = []
        first: list[str] | None = None
        signed_vals: list[bool | None] = []
        for srv in obs.servers if obs else ():
            rr = srv.rrsets.get(owner)
            recs = None if srv.error else (rr.texts() if rr else [])
            if first is None and recs is not None:
                first = recs
            sig = srv.signed.get(owner)
            signed_vals.append(sig)
            servers.append({"label": srv.label, "error": srv.error, "records": recs, "signed": sig})
        owners.append(
            {
                "owner": owner.to_text(),
                "records": first,  # None: no server answered (not "no records")
                "servers": servers,
                "consistent": (
                    len(obs.variants(owner)) <= 1 if obs and first is not None else None
                ),
                "signed": (
                    None
                    if not signed_vals or any(v is None for v in signed_vals)
                    else all(signed_vals)
                ),
                "rrsig_expiry": timefmt.iso(
                    min(
                        (s.min_rrsig_expiry for s in obs.servers if s.min_rrsig_expiry),
                        default=None,
                    )
                    if obs
                    else None
                ),
            }
        )
    out: dict[str, object] = {
        "name": r.service.name,
        "zone": r.service.zone.to_text(),
        "owners": owners,
        "endpoints": [_endpoint(ep) for ep in r.endpoints],
        "certificates": [_cert(c, now) for c in r.certs],
        "aliases": [
            {
                "alias": a.name.to_text(),
                "owner": a.owner.to_text(),
                "ok": a.ok,
                "problems": list(a.problems),
            }
            for a in r.aliases
        ],
    }
    if r.ca_set is not None:  # only with ca_set configured
        out["ca_set"] = _ca_set(r.ca_set, now)
    return out


def _ca_set(c: CaSetReport, now: float) -> dict[str, object]:
    return {
        "cas": [
            {
                "subject": ca.subject,
                "file": ca.file,
                "not_after": timefmt.iso(ca.not_after),
                "not_after_unix": int(ca.not_after),
                "expires_in_seconds": int(ca.not_after - now),
                "published": ca.published,
            }
            for ca in c.cas
        ],
        "issuer_in_set": [{"slot": s, "in_set": ok} for s, ok in c.issuer_in_set],
        "retired": [{"owner": o, "record": t} for o, t in c.retired],
    }


def _endpoint(er: EndpointReport) -> dict[str, object]:
    ep = er.endpoint
    return {
        "host": ep.host.rstrip("."),
        "port": ep.port,
        "owner": ep.owner.to_text(),
        "address": ep.address,
        "ok": er.ok,
        "error": ep.served.error,
        "summary": er.summary,
        "spki_sha256": _leaf_spki(ep.served),
        "key_type": ep.key_type,
    }


def _leaf_spki(s: ServedChain) -> str | None:
    spki = records.spki_of_der(s.der[0]) if s.der else None
    return hashlib.sha256(spki).hexdigest() if spki is not None else None


def _cert(c: CertReport, now: float) -> dict[str, object]:
    sr = c.swap_readiness
    return {
        "slot": c.slot,
        "deployed": _cert_info(c.deployed, now),
        "next": _cert_info(c.next, now),
        "swap_readiness": (
            None
            if sr is None
            else {
                "ready": sr.ready,
                "published": sr.published,
                "missing": list(sr.missing),
                "detail": sr.detail,
            }
        ),
    }


def _cert_info(info: CertInfo | None, now: float) -> dict[str, object] | None:
    if info is None:
        return None
    exp = info.not_after
    return {
        "file": info.file,
        "spki_sha256": info.spki_sha256,
        "not_after": timefmt.iso(exp),
        "not_after_unix": int(exp) if exp is not None else None,
        "expires_in_seconds": int(exp - now) if exp is not None else None,
    }
