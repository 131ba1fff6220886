"""``tlsarotate check``: DNS and live endpoints against the configured certificates (Nagios).

For every selected service:

- every authoritative server (the observer; the service's ``nameservers`` when set) serves the
  TLSA RRset of every owner, validly signed (unless ``allow_unsigned``), with RRSIGs that do not
  expire within :data:`RRSIG_WARN_SECONDS`;
- the published RRset accepts each deployed certificate (every parameter combination present
  has a record matching it: :func:`tlsarotate.records.accepts`), and each configured parameter's
  record for it is published;
- every live endpoint (every address of every host and port, probed concurrently) serves a
  chain that a DANE client accepts (:func:`tlsarotate.dane.diagnose`) AND that every present
  combination matches (``records.accepts``);
- the next certificate's records are published on every server (:func:`swap_readiness`);
- a deployed certificate that expires within :data:`CERT_WARN_SECONDS` with no next one is a
  warning.

``--next CERT --no-live`` is the CI gate: CRITICAL (exit 2) when deploying CERT now would break
DANE because one of its records (for a configured parameter) is not published on every server.

Exit codes are Nagios': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (DNS or endpoint unreachable,
errors). CRITICAL wins over UNKNOWN, UNKNOWN over WARNING.

JSON output (``--output json``)::

    {
      "version": str,                      # tlsarotate's version
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
                       "spki_sha256": str|null}],
        "certificates": [{"slot": str,
                          "deployed": {"file": str, "spki_sha256": str, "not_after": iso|null,
                                       "not_after_unix": int|null,
                                       "expires_in_seconds": int|null},
                          "next": null | {... same ...},
                          "swap_readiness": null | {"ready": bool, "published": bool,
                                                    "missing": [str], "detail": str}}]
      }],
      "next_gate": null | {"file": str, "ok": bool, "missing": [str]},
      "error": null,
      "perfdata": {"endpoints": int, "failing": int, "unknown": int, "owners": int,
                   "unpublished": int|null,     # null: a server did not answer (not known)
                   "warnings": int, "criticals": int,
                   "cert_expiry_min_seconds": int|null,          # earliest deployed certificate
                   "cert_expiry_no_next_min_seconds": int|null,  # ... of those with no next one
                   "rrsig_expiry_min_seconds": int|null}
    }

When the check cannot run at all (config error, ...) the document has the same keys with
``"status": "UNKNOWN"``, ``"exit": 3``, ``"summary"`` and ``"error"`` the one-line reason, one
UNKNOWN finding, no services and ``"perfdata": null`` (:func:`error_json`).

Nagios perfdata (``--output nagios``) thresholds follow the plugin range syntax and alert exactly
when the check does: :data:`PERF_THRESHOLDS`.

Prometheus (``--prometheus FILE``): a node-exporter textfile written atomically; see
:func:`render_prometheus` for the metric names.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import __version__, config, material, phases, planner, records, timefmt
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.config import Config, Service
from tlsarotate.dane import diagnose, not_after, short, short_record
from tlsarotate.engine import load_slots, make_providers, plan_input
from tlsarotate.errors import RecordError, TlsarotateError
from tlsarotate.fsutil import atomic_write
from tlsarotate.observation import Observation
from tlsarotate.probe import resolve_addresses
from tlsarotate.providers.base import Provider, ProviderContext
from tlsarotate.service_observer import ObserverFactory, observer_for
from tlsarotate.state import State, make_store
from tlsarotate.tlsprobe import ServedChain, fetch_chain, format_endpoint, speaks_smtp

log = logging.getLogger(__name__)

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
CERT_WARN_SECONDS = 14 * 86400  # deployed certificate expires soon and no next one is set
RRSIG_WARN_SECONDS = 3 * 86400  # an RRSIG over a TLSA answer expires soon
MAX_WORKERS = 256  # endpoints are I/O bound: 200 endpoints in one round
# endpoint errors that mean "could not check" (UNKNOWN) rather than "DANE is broken" (CRITICAL)
_UNREACHABLE = (
    "connection refused",
    "timeout",
    "no route",
    "address not available",
    "connection reset",
)


@dataclass(frozen=True)
class Finding:
    severity: int
    service: str
    message: str
    owner: str | None = None
    address: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "severity": STATUS[self.severity],
            "service": self.service,
            "owner": self.owner,
            "address": self.address,
            "message": self.message,
        }


@dataclass(frozen=True)
class SwapReadiness:
    """Is it safe to install the next certificate now?

    For now: ``published`` = every record the next certificate needs (one per configured
    parameter, at every owner) is served by every authoritative server. The rollover planner
    adds "old enough" (the old RRset's TTL has run out since the records appeared); until it is
    wired in, ``ready`` equals ``published`` and ``detail`` says that the TTL wait is not checked.
    """

    ready: bool
    published: bool
    missing: tuple[str, ...]
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "published": self.published,
            "missing": list(self.missing),
            "detail": self.detail,
        }


def needed_records(
    service: Service, cert: material.Material
) -> tuple[list[tuple[dns.name.Name, TLSA]], list[str]]:
    """(owner, record) for every owner and configured parameter; plus parameters that can not
    be built from this material (e.g. usage 2 without a CA certificate), in words."""
    out: list[tuple[dns.name.Name, TLSA]] = []
    problems: list[str] = []
    for p in service.params:
        try:
            rd = records.build(cert, p)
        except RecordError as e:
            problems.append(f"{p}: {e}")
            continue
        out += [(owner, rd) for owner in service.owners]
    return out, problems


def missing_on_servers(obs: Observation, needed: Sequence[tuple[dns.name.Name, TLSA]]) -> list[str]:
    """``"_25._tcp.mx. 3 1 1 ab12… on ns2 …"`` for each needed record a server does not serve."""
    out: list[str] = []
    if not obs.servers:
        return [f"no authoritative servers found for {obs.zone}"]
    for owner, rd in needed:
        lacking = []
        for s in obs.servers:
            if s.error:
                lacking.append(f"{s.label} ({s.error})")
                continue
            rr = s.rrsets.get(owner)
            if rr is None or rd not in rr.records:
                lacking.append(s.label)
        if lacking:
            everywhere = len(lacking) == len(obs.servers)
            where = "on any server" if everywhere else "on " + ", ".join(lacking)
            out.append(f"{owner} {short_record(rd)} is not published {where}")
    return out


def next_unfit(service: Service, cert: material.Material, now: float) -> list[material.Unfit]:
    """What would make the planner refuse to swap ``cert`` in for ``service`` (or note it)."""
    usages = {p.usage for p in service.params}
    return material.unfit(cert, now, service.hosts, usages, service.next_min_validity)


def swap_readiness(
    service: Service,
    next_cert: material.Material,
    obs: Observation,
    state: State | None = None,
    now: float | None = None,
    safety_margin: int = 60,
    slots: tuple[planner.SlotInput, ...] | None = None,
) -> SwapReadiness:
    """Is it safe to install the next certificate now? Its records must be published on every
    authoritative server, and (with the service's rollover ``state``) the planner must agree
    that caches can no longer hold an RRset without them -- else "no, in 1h12m". ``slots``
    are the service's certificates as the planner sees them (None: not all readable)."""
    needed, problems = needed_records(service, next_cert)
    missing = [*problems, *missing_on_servers(obs, needed)]
    published = not missing
    when = now if now is not None else SystemClock().now()
    blockers = [u.reason for u in next_unfit(service, next_cert, when) if u.blocking]
    if blockers:
        # what the planner would block on, whatever DNS says
        return SwapReadiness(
            False, published, tuple(missing), "the next certificate: " + "; ".join(blockers)
        )
    if not published:
        detail = f"{len(missing)} record(s) of the next certificate missing"
        return SwapReadiness(False, False, tuple(missing), detail)
    if state is None or state.rebuilt or slots is None:
        why = (
            "no rollover state yet: `tlsarotate apply` records it"
            if slots is not None
            else ("not every certificate of the service is readable")
        )
        return SwapReadiness(
            False,
            True,
            (),
            f"published on every server, but how long caches may still hold older records is "
            f"not known ({why})",
        )
    first = next((s for s in obs.servers if not s.error), None)
    published_rr = {o: rr for o, rr in (first.rrsets.items() if first else ()) if rr is not None}
    plan = planner.plan(plan_input(service, slots, published_rr, obs, state, when, safety_margin))
    if plan.phase == phases.SWAP:
        return SwapReadiness(True, True, (), "published and old enough")
    if plan.phase == phases.WAIT_TTL and plan.ready_at is not None:
        return SwapReadiness(
            False,
            True,
            (),
            f"in {timefmt.duration(plan.ready_at - when)} "
            f"(caches may hold the old RRset until {timefmt.iso(plan.ready_at)})",
        )
    return SwapReadiness(False, True, (), plan.summary)


# ---------------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    service: str
    host: str
    port: int
    owner: dns.name.Name
    address: str
    starttls: str
    served: ServedChain | None = None
    ok: bool | None = None
    summary: str | None = None


@dataclass
class ServiceReport:
    service: Service
    observation: Observation | None = None
    observe_error: str | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    certs: list[dict[str, object]] = field(default_factory=list)
    # owners seen serving records that reject a deployed certificate (not: badly signed)
    unpublished: set[str] = field(default_factory=set)


@dataclass
class CheckReport:
    checked_at: float
    services: list[ServiceReport]
    findings: list[Finding]
    next_gate: dict[str, object] | None = None
    perf: dict[str, int | None] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        sev = {f.severity for f in self.findings}
        for s in (CRITICAL, UNKNOWN, WARNING):
            if s in sev:
                return s
        return OK

    @property
    def status(self) -> str:
        return STATUS[self.exit_code]

    def summary(self) -> str:
        n = self.perf.get("endpoints") or 0
        failing = self.perf.get("failing") or 0
        code = self.exit_code
        parts: list[str] = []
        if failing:
            parts.append(f"{failing} of {n} endpoints fail DANE")
        worst = [f for f in self.findings if f.severity == code]
        other = [f for f in worst if f.address is None or not failing]
        if code == OK:
            what = f"{n} endpoints pass DANE" if n else "DNS matches the certificates"
            parts.append(f"{what}, {self.perf.get('owners') or 0} owner(s) published and signed")
        elif other:
            parts.append(
                other[0].message + (f" (+{len(other) - 1} more)" if len(other) > 1 else "")
            )
        text = "; ".join(parts)
        return text.replace("|", "/").replace("\n", " ")


def _provider(cfg: Config, service: Service) -> Provider:
    context = ProviderContext(base_dir=cfg.path.parent)
    return make_providers(cfg, context)[service.provider]


def _load(paths: config.CertPaths, where: str) -> tuple[material.Material | None, str | None]:
    try:
        return config.load_cert(paths), None
    except TlsarotateError as e:
        return None, f"{where}: {e}"


def run_check(
    cfg: Config,
    service_name: str | None = None,
    next_cert: str | None = None,
    live: bool = True,
    timeout: float = 10.0,
    clock: Clock | None = None,
    observer_for: ObserverFactory = observer_for,
    fetch: Callable[..., ServedChain] = fetch_chain,
) -> CheckReport:
    clock = clock or SystemClock()
    now = clock.now()
    now_dt = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    services = cfg.select(service_name)
    findings: list[Finding] = []
    reports = [ServiceReport(s) for s in services]
    gate_cert = material.load(next_cert) if next_cert else None
    store = make_store(cfg)

    def observe(rep: ServiceReport) -> None:
        s = rep.service
        try:
            observer = observer_for(s, lambda: _provider(cfg, s), timeout)
            rep.observation = observer.observe(s.zone, s.owners)
        except TlsarotateError as e:
            rep.observe_error = str(e)

    def addresses(s: Service, host: str) -> tuple[list[str], str | None]:
        try:
            return resolve_addresses(host, timeout, None, s.nameservers), None
        except TlsarotateError as e:
            return [], str(e)

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        obs_futs = [pool.submit(observe, r) for r in reports]
        addr_futs = {
            (i, h): pool.submit(addresses, r.service, h)
            for i, r in enumerate(reports)
            if live
            for h in r.service.hosts
        }
        for f in obs_futs:
            f.result()
        for (i, host), fut in addr_futs.items():
            rep = reports[i]
            s = rep.service
            addrs, err = fut.result()
            if err:
                findings.append(Finding(UNKNOWN, s.name, f"{host}: {err}"))
            v = next((slot.verify for slot in s.certificates if slot.verify), None)
            for port in s.ports:
                # verify.starttls names the protocol of ITS port; every other port: by number
                starttls = (
                    v.starttls if v is not None and port == (v.port or s.ports[0]) else "auto"
                )
                owner = records.owner_name(host, port, s.protocol)
                for a in addrs:
                    rep.endpoints.append(Endpoint(s.name, host, port, owner, a, starttls))
        ep_futs = [
            (ep, pool.submit(fetch, ep.address, ep.port, ep.starttls, timeout, ep.host.rstrip(".")))
            for r in reports
            for ep in r.endpoints
        ]
        for ep, efut in ep_futs:
            ep.served = efut.result()

    owners_total = 0
    unpublished = 0
    rrsig_min: float | None = None
    cert_min: float | None = None
    cert_alone_min: float | None = None  # of the certificates with no next one (warned about)
    gate_missing: list[str] = []
    for rep in reports:
        s = rep.service
        owners_total += len(s.owners)
        obs = rep.observation
        if obs is None:
            findings.append(
                Finding(UNKNOWN, s.name, f"zone {s.zone}: {rep.observe_error or 'no answer'}")
            )
        else:
            f_dns, rmin = _dns_findings(s, obs, now)
            findings += f_dns
            if rmin is not None:
                rrsig_min = rmin if rrsig_min is None else min(rrsig_min, rmin)
        # certificates
        deployed_leaves: set[bytes] = set()
        try:
            state: State | None = store.load(s.name)
        except TlsarotateError as e:
            findings.append(Finding(UNKNOWN, s.name, f"rollover state: {e}"))
            state = None
        try:
            slot_inputs: tuple[planner.SlotInput, ...] | None = load_slots(s)
        except TlsarotateError:
            slot_inputs = None  # the unreadable file is reported per certificate below
        for slot in s.certificates:
            dep, err = _load(slot.deployed, f"certificate {slot.name!r} (deployed)")
            entry: dict[str, object] = {"slot": slot.name, "deployed": None, "next": None}
            entry["swap_readiness"] = None
            if err or dep is None:
                findings.append(Finding(UNKNOWN, s.name, err or "unreadable"))
                rep.certs.append(entry)
                continue
            deployed_leaves.add(dep.chain_der[0])
            exp = not_after(dep.leaf).timestamp() if dep.leaf is not None else None
            entry["deployed"] = _cert_json(slot.deployed.describe(), dep, exp, now)
            nxt = None
            if slot.next is not None:
                nxt, nerr = _load(slot.next, f"certificate {slot.name!r} (next)")
                if nerr:
                    findings.append(Finding(WARNING, s.name, nerr))
                if nxt is not None and nxt.same_as(dep):
                    nxt = None  # already deployed (as after every rollover): nothing is next
            if exp is not None:
                cert_min = exp if cert_min is None else min(cert_min, exp)
                if nxt is None:
                    cert_alone_min = exp if cert_alone_min is None else min(cert_alone_min, exp)
                left = exp - now
                if left < CERT_WARN_SECONDS and nxt is None:
                    when = (
                        f"expired {timefmt.duration(-left)} ago"
                        if left < 0
                        else f"expires in {timefmt.duration(left)}"
                    )
                    findings.append(
                        Finding(
                            WARNING,
                            s.name,
                            f"certificate {slot.name!r} ({slot.deployed.describe()}) {when} "
                            "and no next certificate is configured",
                        )
                    )
            if nxt is not None and slot.next is not None:
                nexp = not_after(nxt.leaf).timestamp() if nxt.leaf is not None else None
                entry["next"] = _cert_json(slot.next.describe(), nxt, nexp, now)
                findings += [
                    Finding(
                        WARNING,
                        s.name,
                        f"next certificate {slot.name!r} ({slot.next.describe()}) {u.reason}"
                        + ("; it will not be swapped in" if u.blocking else ""),
                    )
                    for u in next_unfit(s, nxt, now)
                ]
            if obs is not None:
                failed = _deployed_findings(s, slot.name, dep, obs, findings)
                rep.unpublished |= failed
                unpublished += len(failed)
                if nxt is not None:
                    entry["swap_readiness"] = swap_readiness(
                        s, nxt, obs, state, now, cfg.safety_margin, slot_inputs
                    ).to_json()
            rep.certs.append(entry)
        if gate_cert is not None and gate_cert.leaf is not None:  # (a bare key: records only)
            for u in next_unfit(s, gate_cert, now):
                if u.blocking:
                    gate_missing.append(f"service {s.name}: the certificate {u.reason}")
                else:
                    findings.append(Finding(WARNING, s.name, f"{next_cert}: {u.reason}"))
        if gate_cert is not None and obs is not None:
            needed, problems = needed_records(s, gate_cert)
            gate_missing += problems + missing_on_servers(obs, needed)
        elif gate_cert is not None:
            gate_missing.append(f"service {s.name}: {rep.observe_error or 'DNS not observed'}")
        # live endpoints
        for ep in rep.endpoints:
            _judge_endpoint(ep, obs, deployed_leaves, findings, now_dt)

    gate = None
    if gate_cert is not None:
        assert next_cert is not None
        gate = {"file": next_cert, "ok": not gate_missing, "missing": gate_missing}
        for m in gate_missing:
            findings.append(
                Finding(
                    CRITICAL,
                    ",".join(r.service.name for r in reports),
                    f"deploying {next_cert} now would break DANE: {m}",
                )
            )
    eps = [ep for r in reports for ep in r.endpoints]
    judged = all(_publication_judged(r) for r in reports)

    def seconds_left(t: float | None) -> int | None:
        # floor, not int(): -0.5 s left is expired (CRITICAL), and must not print as 0
        return math.floor(t - now) if t is not None else None

    perf: dict[str, int | None] = {
        "endpoints": len(eps),
        "failing": sum(1 for ep in eps if ep.ok is False),
        "unknown": sum(1 for ep in eps if ep.ok is None),
        "owners": owners_total,
        # a count of 0 would claim "published" where a server did not answer: unknown is null
        "unpublished": unpublished if judged else None,
        "warnings": sum(1 for f in findings if f.severity == WARNING),
        "criticals": sum(1 for f in findings if f.severity == CRITICAL),
        "cert_expiry_min_seconds": seconds_left(cert_min),
        "cert_expiry_no_next_min_seconds": seconds_left(cert_alone_min),
        "rrsig_expiry_min_seconds": seconds_left(rrsig_min),
    }
    return CheckReport(now, reports, findings, gate, perf)


def _dns_answered(r: ServiceReport) -> bool:
    """Did every authoritative server of the service's zone answer (so what they serve is
    known, not assumed)?"""
    obs = r.observation
    return obs is not None and bool(obs.servers) and all(not s.error for s in obs.servers)


def _publication_judged(r: ServiceReport) -> bool:
    """Could the published records be judged against every deployed certificate: every
    server answered and every deployed certificate was read?"""
    return _dns_answered(r) and all(c.get("deployed") is not None for c in r.certs)


def _cert_json(file: str, m: material.Material, exp: float | None, now: float) -> dict[str, object]:
    return {
        "file": file,
        "spki_sha256": m.spki_sha256,
        "not_after": timefmt.iso(exp),
        "not_after_unix": int(exp) if exp is not None else None,
        "expires_in_seconds": int(exp - now) if exp is not None else None,
    }


def _dns_findings(s: Service, obs: Observation, now: float) -> tuple[list[Finding], float | None]:
    out: list[Finding] = []
    rmin: float | None = None
    if not obs.servers:
        out.append(Finding(UNKNOWN, s.name, f"no authoritative servers found for {s.zone}"))
    for srv in obs.servers:
        if srv.error:
            out.append(Finding(UNKNOWN, s.name, f"{srv.label}: {srv.error}"))
        if srv.min_rrsig_expiry is not None:
            rmin = srv.min_rrsig_expiry if rmin is None else min(rmin, srv.min_rrsig_expiry)
    if obs.zone_signed is False and not s.allow_unsigned:
        out.append(
            Finding(
                CRITICAL,
                s.name,
                f"zone {s.zone} is not DNSSEC-signed: DANE clients ignore its TLSA records",
            )
        )
    for owner in s.owners:
        o = owner.to_text()
        variants = obs.variants(owner)
        if len(variants) > 1:
            desc = "; ".join(f"{', '.join(lbl)}: {len(rr)} record(s)" for lbl, rr in variants)
            out.append(Finding(WARNING, s.name, f"{o}: servers disagree ({desc})", owner=o))
        if not s.allow_unsigned:
            for srv in obs.servers:
                if not srv.error and srv.signed.get(owner) is False:
                    why = f" ({srv.sig_problem})" if srv.sig_problem else ""
                    out.append(
                        Finding(
                            CRITICAL, s.name, f"{o}: no valid RRSIG on {srv.label}{why}", owner=o
                        )
                    )
    if rmin is not None:
        left = rmin - now
        if left < 0:
            out.append(
                Finding(
                    CRITICAL,
                    s.name,
                    f"zone {s.zone}: an RRSIG expired {timefmt.duration(left)} ago",
                )
            )
        elif left < RRSIG_WARN_SECONDS:
            out.append(
                Finding(
                    WARNING, s.name, f"zone {s.zone}: an RRSIG expires in {timefmt.duration(left)}"
                )
            )
    return out, rmin


def _deployed_findings(
    s: Service, slot: str, dep: material.Material, obs: Observation, findings: list[Finding]
) -> set[str]:
    """The published RRsets against a deployed certificate; returns the owners that fail."""
    bad_owners: set[str] = set()
    needed, problems = needed_records(s, dep)
    for p in problems:
        findings.append(Finding(WARNING, s.name, f"certificate {slot!r}: {p}"))
    for owner in s.owners:
        o = owner.to_text()
        failed = False
        for labels, rrset in obs.variants(owner):
            where = ", ".join(labels)
            if not rrset:
                findings.append(
                    Finding(CRITICAL, s.name, f"{o}: no TLSA records on {where}", owner=o)
                )
                failed = True
                continue
            bad = records.unmatched_combos(rrset, dep.chain_der)  # deployed: always a chain
            if bad:
                combos = ", ".join(str(p) for p in bad)
                findings.append(
                    Finding(
                        CRITICAL,
                        s.name,
                        f"{o}: the deployed certificate {slot!r} (SPKI {short(dep.spki_sha256)}) "
                        f"matches no {combos} record served by {where}",
                        owner=o,
                    )
                )
                failed = True
        missing = missing_on_servers(obs, [(ow, rd) for ow, rd in needed if ow == owner])
        for m in missing:
            findings.append(Finding(WARNING, s.name, f"certificate {slot!r}: {m}", owner=o))
        if failed:
            bad_owners.add(o)
    return bad_owners


def _judge_endpoint(
    ep: Endpoint,
    obs: Observation | None,
    deployed_leaves: set[bytes],
    findings: list[Finding],
    now: dt.datetime,
) -> None:
    s = ep.served
    o = ep.owner.to_text()
    label = f"{o} at {format_endpoint(ep.address, ep.port)}"
    assert s is not None
    if not s.ok:
        err = s.error or "no certificate"
        sev = UNKNOWN if err.startswith(_UNREACHABLE) else CRITICAL
        ep.ok = None if sev == UNKNOWN else False
        ep.summary = err
        findings.append(Finding(sev, ep.service, f"{label}: {err}", owner=o, address=ep.address))
        return
    if obs is None or all(srv.error for srv in obs.servers):
        ep.summary = "TLSA records unknown (DNS not observed)"
        return
    problems: list[str] = []
    summaries: list[str] = []
    for labels, rrset in obs.variants(ep.owner):
        v = diagnose(s.der, rrset, ep.host, smtp=speaks_smtp(ep.starttls, ep.port), now=now)
        summaries.append(v.summary)
        suffix = "" if len(labels) == len(obs.servers) else f" (RRset of {', '.join(labels)})"
        if not v.ok:
            problems.append(v.summary + suffix)
        elif bad := records.unmatched_combos(rrset, s.der):
            combos = ", ".join(str(p) for p in bad)
            problems.append(
                f"no {combos} record matches the served chain{suffix}; "
                f"clients still accept it via another record, but every published parameter "
                "combination must match"
            )
    ep.ok = not problems
    ep.summary = problems[0] if problems else (summaries[0] if summaries else None)
    for p in problems:
        findings.append(Finding(CRITICAL, ep.service, f"{label}: {p}", owner=o, address=ep.address))
    if deployed_leaves and s.der[0] not in deployed_leaves:
        findings.append(
            Finding(
                WARNING,
                ep.service,
                f"{label} serves a certificate that is not the deployed file (reload pending?)",
                owner=o,
                address=ep.address,
            )
        )


# ---------------------------------------------------------------------------------------------
# output


def report_json(rep: CheckReport) -> dict[str, object]:
    services = []
    for r in rep.services:
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
                servers.append(
                    {"label": srv.label, "error": srv.error, "records": recs, "signed": sig}
                )
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
        services.append(
            {
                "name": r.service.name,
                "zone": r.service.zone.to_text(),
                "owners": owners,
                "endpoints": [
                    {
                        "host": ep.host.rstrip("."),
                        "port": ep.port,
                        "owner": ep.owner.to_text(),
                        "address": ep.address,
                        "ok": ep.ok,
                        "error": ep.served.error if ep.served else None,
                        "summary": ep.summary,
                        "spki_sha256": _leaf_spki(ep.served),
                    }
                    for ep in r.endpoints
                ],
                "certificates": r.certs,
            }
        )
    return {
        "version": __version__,
        "status": rep.status,
        "exit": rep.exit_code,
        "summary": rep.summary(),
        "checked_at": timefmt.iso(rep.checked_at),
        "findings": [f.to_json() for f in rep.findings],
        "services": services,
        "next_gate": rep.next_gate,
        "error": None,
        "perfdata": rep.perf,
    }


def _leaf_spki(s: ServedChain | None) -> str | None:
    spki = records.spki_of_der(s.der[0]) if s is not None and s.der else None
    return hashlib.sha256(spki).hexdigest() if spki is not None else None


def render_text(rep: CheckReport) -> str:
    out = []
    for r in rep.services:
        out.append(f"service {r.service.name} (zone {r.service.zone}):")
        for owner in r.service.owners:
            mine = [
                f
                for f in rep.findings
                if f.service == r.service.name and f.owner == owner.to_text()
            ]
            state = max((f.severity for f in mine), default=OK, key=_rank)
            out.append(f"  {STATUS[state]:<8} {owner}")
        for ep in r.endpoints:
            est = "OK" if ep.ok else ("UNKNOWN" if ep.ok is None else "CRITICAL")
            out.append(
                f"  {est:<8} {ep.owner} at {format_endpoint(ep.address, ep.port)}: {ep.summary}"
            )
        for c in r.certs:
            sr = c.get("swap_readiness")
            if isinstance(sr, dict):
                verdict = f"yes ({sr['detail']})" if sr["ready"] else f"no, {sr['detail']}"
                out.append(f"  next certificate {c['slot']!r}: safe to swap now: {verdict}")
                for m in sr["missing"]:  # type: ignore[attr-defined]
                    out.append(f"    missing: {m}")
    if rep.next_gate is not None:
        ok = rep.next_gate["ok"]
        out.append(
            f"next certificate {rep.next_gate['file']}: "
            + ("all its records are published on every server" if ok else "NOT safe to deploy")
        )
    problems = sorted(rep.findings, key=lambda f: -_rank(f.severity))
    if problems:
        out.append("")
    for f in problems:
        out.append(f"{STATUS[f.severity]}: {f.message}")
    out.append("")
    out.append(f"TLSAROTATE {rep.status} - {rep.summary()}")
    return "\n".join(out) + "\n"


_RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


def _rank(sev: int) -> int:
    return _RANK[sev]


# Nagios plugin range syntax (monitoring-plugins guidelines, "Threshold and ranges"): a label
# alerts when its value lies OUTSIDE the range. "N:" alerts below N, "0" alerts above 0 (and below
# 0), "" never alerts. Each pair (warning, critical) alerts exactly when check's own logic does.
PERF_THRESHOLDS: dict[str, tuple[str, str]] = {
    "failing": ("", "0"),  # an endpoint failing DANE: CRITICAL
    "unpublished": ("", "0"),  # an owner whose records reject a deployed certificate: CRITICAL
    "warnings": ("0", ""),
    "criticals": ("", "0"),
    # seconds left of the earliest certificate with no next one: WARNING below 14 days
    "cert_expiry": (f"{CERT_WARN_SECONDS}:", ""),
    # seconds left of the earliest RRSIG: WARNING below 3 days, CRITICAL once expired
    "rrsig_expiry": (f"{RRSIG_WARN_SECONDS}:", "0:"),
}


def render_nagios(rep: CheckReport) -> str:
    """One status line with perfdata. A value that is not known (the ``unpublished`` count when
    a server did not answer, an expiry with nothing to expire) is left out, never guessed."""
    p = rep.perf
    items: list[tuple[str, int | None, str]] = [
        ("endpoints", p.get("endpoints"), ""),
        ("failing", p.get("failing"), ""),
        ("unknown", p.get("unknown"), ""),
        ("owners", p.get("owners"), ""),
        ("unpublished", p.get("unpublished"), ""),
        ("warnings", p.get("warnings"), ""),
        ("criticals", p.get("criticals"), ""),
        ("cert_expiry", p.get("cert_expiry_no_next_min_seconds"), "s"),
        ("rrsig_expiry", p.get("rrsig_expiry_min_seconds"), "s"),
    ]
    perf = []
    for label, value, uom in items:
        if value is None:
            continue
        warn, crit = PERF_THRESHOLDS.get(label, ("", ""))
        perf.append(f"{label}={value}{uom};{warn};{crit}".rstrip(";"))
    return f"TLSAROTATE {rep.status} - {rep.summary()} | {' '.join(perf)}\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(rep: CheckReport) -> str:
    """Metrics (gauges). A yes/no metric is 1 or 0 only when it was seen; when it could not be
    observed its sample is absent (never a made-up 1 or 0), and a companion metric that is
    always present says why (``_observed``, ``_up``), so ``== 0`` alerts fire on real breakage
    and ``_observed == 0`` / ``_up == 0`` on blindness:

    - ``tlsarotate_check_status`` 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also when the check
      could not run at all: then only this and the timestamp are written)
    - ``tlsarotate_check_timestamp_seconds`` when the check ran
    - ``tlsarotate_tlsa_observed{service,owner}`` 1 when every authoritative server answered
    - ``tlsarotate_tlsa_published{service,owner}`` 1 when every server serves records that
      accept every deployed certificate at this owner; 0 when a server was seen serving records
      that do not (or none, or unsigned ones); absent when neither is known (a server did not
      answer, a deployed certificate could not be read)
    - ``tlsarotate_tlsa_signed{service,owner}`` 1 when every server's answer validates, 0 when
      one does not; absent when a server did not answer or signatures were not checked
    - ``tlsarotate_tlsa_rrsig_expiry_timestamp_seconds{service,zone}`` earliest RRSIG expiry
    - ``tlsarotate_endpoint_up{service,owner,address}`` 1 when a chain was fetched
    - ``tlsarotate_endpoint_dane_ok{service,owner,address}`` 1 ok, 0 fails DANE (absent when
      the endpoint could not be reached or its TLSA records are not known)
    - ``tlsarotate_cert_expiry_timestamp_seconds{service,slot,which="deployed"|"next"}`` the
      certificate's notAfter as a Unix timestamp (alert on ``... - time() < 14*86400``);
      ``tlsarotate_cert_expiry_seconds`` is the same value under its old name (deprecated)
    - ``tlsarotate_next_records_published{service,slot}`` 1 when the next certificate's records
      are on every server, 0 when one lacks them; absent when a server did not answer
    """
    lines: list[str] = []

    def metric(name: str, help_: str) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} gauge")

    def sample(name: str, value: float | int, **labels: str) -> None:
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    metric("tlsarotate_check_status", "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    sample("tlsarotate_check_status", rep.exit_code)
    metric("tlsarotate_check_timestamp_seconds", "when the check ran")
    sample("tlsarotate_check_timestamp_seconds", int(rep.checked_at))
    metric("tlsarotate_tlsa_observed", "1 when every authoritative server answered")
    for r in rep.services:
        for owner in r.service.owners:
            sample(
                "tlsarotate_tlsa_observed",
                int(_dns_answered(r)),
                service=r.service.name,
                owner=owner.to_text(),
            )
    metric(
        "tlsarotate_tlsa_published",
        "1 when every server serves records accepting every deployed certificate "
        "(absent: not known)",
    )
    for r in rep.services:
        judged = _publication_judged(r)
        for owner in r.service.owners:
            o = owner.to_text()
            bad = o in r.unpublished  # a signing problem is tlsarotate_tlsa_signed's
            if bad or judged:
                sample("tlsarotate_tlsa_published", int(not bad), service=r.service.name, owner=o)
    metric(
        "tlsarotate_tlsa_signed",
        "1 when every server's TLSA answer has a valid RRSIG (absent: not known)",
    )
    for r in rep.services:
        obs = r.observation
        for owner in r.service.owners:
            vals = [s.signed.get(owner) for s in obs.servers if not s.error] if obs else []
            if False in vals or (_dns_answered(r) and all(v is True for v in vals)):
                sample(
                    "tlsarotate_tlsa_signed",
                    int(False not in vals),
                    service=r.service.name,
                    owner=owner.to_text(),
                )
    metric("tlsarotate_tlsa_rrsig_expiry_timestamp_seconds", "earliest RRSIG expiry")
    for r in rep.services:
        exps = [s.min_rrsig_expiry for s in (r.observation.servers if r.observation else ())]
        known = [e for e in exps if e is not None]
        if known:
            sample(
                "tlsarotate_tlsa_rrsig_expiry_timestamp_seconds",
                int(min(known)),
                service=r.service.name,
                zone=r.service.zone.to_text(),
            )
    metric("tlsarotate_endpoint_up", "1 when the endpoint served a certificate chain")
    for r in rep.services:
        for ep in r.endpoints:
            sample(
                "tlsarotate_endpoint_up",
                int(bool(ep.served and ep.served.ok)),
                service=r.service.name,
                owner=ep.owner.to_text(),
                address=ep.address,
            )
    metric("tlsarotate_endpoint_dane_ok", "1 when the served chain passes DANE")
    for r in rep.services:
        for ep in r.endpoints:
            if ep.ok is not None:
                sample(
                    "tlsarotate_endpoint_dane_ok",
                    int(ep.ok),
                    service=r.service.name,
                    owner=ep.owner.to_text(),
                    address=ep.address,
                )
    expiries = [
        (str(c["slot"]), which, ts, r.service.name)
        for r in rep.services
        for c in r.certs
        for which in ("deployed", "next")
        if isinstance(info := c.get(which), dict)
        and isinstance(ts := info.get("not_after_unix"), int)
    ]
    for name, help_ in (
        ("tlsarotate_cert_expiry_timestamp_seconds", "certificate notAfter (Unix time)"),
        (
            "tlsarotate_cert_expiry_seconds",
            "deprecated name of tlsarotate_cert_expiry_timestamp_seconds",
        ),
    ):
        metric(name, help_)
        for slot, which, ts, svc in expiries:
            sample(name, ts, service=svc, slot=slot, which=which)
    metric(
        "tlsarotate_next_records_published",
        "1 when the next certificate's records are on every server (absent: not known)",
    )
    for r in rep.services:
        for c in r.certs:
            sr = c.get("swap_readiness")
            # a server that did not answer is "missing" to swap_readiness (never swap blind),
            # but to the metric it is unknown, not a 0
            if isinstance(sr, dict) and (sr["published"] or _dns_answered(r)):
                sample(
                    "tlsarotate_next_records_published",
                    int(bool(sr["published"])),
                    service=r.service.name,
                    slot=str(c["slot"]),
                )
    return "\n".join(lines) + "\n"


def cmd_check(args: argparse.Namespace) -> int:
    """Run the check and print it in the chosen format. An error that stops the check (a
    config error, an unwritable --prometheus file, even a bug) is UNKNOWN (exit 3) in every
    format: text and json print their UNKNOWN report on stdout (and the one-line error on
    stderr), nagios its status line, and the --prometheus file gets status 3."""
    try:
        if args.timeout <= 0:
            raise TlsarotateError(f"--timeout {args.timeout:g} must be positive")
        if args.prometheus:
            parent = Path(args.prometheus).absolute().parent
            if not parent.is_dir():
                raise TlsarotateError(
                    f"--prometheus {args.prometheus}: directory {parent} not found"
                )
        cfg = config.load(args.config)
        rep = run_check(
            cfg,
            service_name=args.service,
            next_cert=args.next,
            live=not args.no_live,
            timeout=args.timeout,
        )
        if args.output == "json":
            out = json.dumps(report_json(rep), indent=2) + "\n"
        elif args.output == "nagios":
            out = render_nagios(rep)
        else:
            out = render_text(rep)
        if args.prometheus:
            _write_textfile(args.prometheus, render_prometheus(rep))
    except TlsarotateError as e:
        return _unknown(args, str(e))
    except Exception as e:  # a bug must not read as WARNING (exit 1) to the monitoring
        log.debug("check failed", exc_info=True)
        return _unknown(args, f"internal error: {type(e).__name__}: {e}")
    sys.stdout.write(out)
    return rep.exit_code


def _unknown(args: argparse.Namespace, reason: str) -> int:
    """The check could not run: report UNKNOWN in the chosen output format."""
    msg = " ".join(reason.split())  # one line
    if args.prometheus:
        # never leave node-exporter serving the last OK: the check itself is UNKNOWN now
        with contextlib.suppress(TlsarotateError):
            _write_textfile(args.prometheus, _unknown_textfile())
    status_line = f"TLSAROTATE UNKNOWN - {msg.replace('|', '/')}\n"  # "|" starts perfdata
    if args.output == "nagios":
        sys.stdout.write(status_line)
        return UNKNOWN
    if args.output == "json":
        sys.stdout.write(json.dumps(error_json(msg, SystemClock().now()), indent=2) + "\n")
    else:
        sys.stdout.write(status_line)
    sys.stderr.write(f"tlsarotate: error: {msg}\n")
    return UNKNOWN


def error_json(reason: str, now: float) -> dict[str, object]:
    """The JSON document of a check that could not run (same keys as :func:`report_json`)."""
    return {
        "version": __version__,
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
        "perfdata": None,
    }


def _write_textfile(path: str, text: str) -> None:
    try:
        atomic_write(path, text.encode())
    except OSError as e:
        raise TlsarotateError(f"--prometheus {path}: cannot write: {e.strerror}") from None


def _unknown_textfile() -> str:
    return (
        "# HELP tlsarotate_check_status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n"
        "# TYPE tlsarotate_check_status gauge\n"
        f"tlsarotate_check_status {UNKNOWN}\n"
        "# HELP tlsarotate_check_timestamp_seconds when the check ran\n"
        "# TYPE tlsarotate_check_timestamp_seconds gauge\n"
        f"tlsarotate_check_timestamp_seconds {int(SystemClock().now())}\n"
    )
