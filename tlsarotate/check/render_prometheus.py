"""``tlsarotate check --prometheus FILE``: the report as node-exporter textfile metrics.

Gauges. A yes/no metric is 1 or 0 only when it was seen; when it could not be observed its
sample is absent (never a made-up 1 or 0), and a companion metric that is always present says
why (``_observed``, ``_up``), so ``== 0`` alerts fire on real breakage and ``_observed == 0`` /
``_up == 0`` on blindness:

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
- both endpoint metrics carry a ``key_type`` label ("rsa", "ecdsa") for a service whose slots
  hold RSA and ECDSA certificates side by side: one handshake per type, so a type the server
  does not serve is ``endpoint_up 0`` and ``endpoint_dane_ok 0`` with that label
- ``tlsarotate_cert_expiry_timestamp_seconds{service,slot,which="deployed"|"next"}`` the
  certificate's notAfter as a Unix timestamp (alert on ``... - time() < 14*86400``; the old
  name ``tlsarotate_cert_expiry_seconds``, which held the same timestamp, is gone)
- ``tlsarotate_next_records_published{service,slot}`` 1 when the next certificate's records
  are on every server, 0 when one lacks them; absent when a server did not answer
- ``tlsarotate_tlsrpt_reports`` TLSRPT reports whose range ended within the window, and
  ``tlsarotate_tlsrpt_failed_sessions{policy_domain,mx,result_type}`` their failed sessions
  (only with ``tlsrpt`` in the config; ``mx`` is "" when a report does not name it)
- ``tlsarotate_tlsrpt_record_ok{service,owner}`` 1 when the service's TLSRPT record
  (``tlsrpt_record``, ``owner`` its ``_smtp._tls`` name) as the provider holds it is the
  configured one, 0 when it is missing or another; absent when it could not be read (a
  WARNING says why) or the service has none
- ``tlsarotate_tlsa_alias_ok{service,alias,owner}`` (only for services with ``shared_owner``)
  1 when every server serves the host's TLSA name ``alias`` as a CNAME (chain) to the shared
  ``owner``, validly signed; 0 when one does not (its senders see other records, or none);
  absent when a server did not answer
- with ``ca_set`` (DANE-TA CA sets): ``tlsarotate_ca_set_expiry_timestamp_seconds{service,ca}``
  each pinned CA's notAfter, ``tlsarotate_ca_set_published{service,ca}`` 1 when every server
  serves its records at every owner, 0 when one does not (absent: not known),
  ``tlsarotate_ca_set_issuer_pinned{service,slot}`` 1 when the deployed certificate's issuer
  is in the set, 0 when not, and ``tlsarotate_ca_set_retired_records{service}`` the published
  records of CAs no longer in the set (awaiting retirement)
- ``tlsarotate_build_info{version}`` 1, the tlsarotate that wrote the file

Names follow Prometheus' conventions: ``_timestamp_seconds`` for Unix times, ``_seconds`` for
durations, ``_total`` for counters, ``_info`` for labels-only metrics; the rest are unitless
(yes/no, the status code).
"""

from __future__ import annotations

from collections.abc import Callable

from tlsarotate import __version__
from tlsarotate.check.facts import Endpoint
from tlsarotate.check.report import UNKNOWN, CheckReport, OwnerReport, ServiceReport


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, help_: str) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} gauge")

    def sample(self, name: str, value: float | int, **labels: str) -> None:
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _head(out: _Lines, status: int, checked_at: float) -> None:
    out.metric("tlsarotate_check_status", "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
    out.sample("tlsarotate_check_status", status)
    out.metric("tlsarotate_check_timestamp_seconds", "when the check ran")
    out.sample("tlsarotate_check_timestamp_seconds", int(checked_at))


def render_unknown(now: float) -> str:
    """The textfile of a check that could not run: status 3 and the timestamp only."""
    out = _Lines()
    _head(out, UNKNOWN, now)
    return out.text()


def render(rep: CheckReport) -> str:
    out = _Lines()
    metric, sample = out.metric, out.sample
    _head(out, rep.exit_code, rep.checked_at)
    metric("tlsarotate_build_info", "the tlsarotate that wrote this file")
    sample("tlsarotate_build_info", 1, version=__version__)

    def per_owner(
        name: str, help_: str, value: Callable[[ServiceReport, OwnerReport], bool | None]
    ) -> None:
        """A yes/no gauge per service and owner; an owner whose value is not known is absent."""
        metric(name, help_)
        for r in rep.services:
            for o in r.owners:
                v = value(r, o)
                if v is not None:
                    sample(name, int(v), service=r.service.name, owner=o.name.to_text())

    per_owner(
        "tlsarotate_tlsa_observed",
        "1 when every authoritative server answered",
        lambda r, o: r.dns_answered,
    )
    per_owner(
        "tlsarotate_tlsa_published",
        "1 when every server serves records accepting every deployed certificate "
        "(absent: not known)",
        lambda r, o: o.published,
    )
    per_owner(
        "tlsarotate_tlsa_signed",
        "1 when every server's TLSA answer has a valid RRSIG (absent: not known)",
        lambda r, o: o.signed,
    )
    if any(r.aliases for r in rep.services):
        metric(
            "tlsarotate_tlsa_alias_ok",
            "1 when every server serves the host's TLSA name as a CNAME to the shared owner "
            "(absent: not known)",
        )
        for r in rep.services:
            for a in r.aliases:
                if a.ok is not None:
                    sample(
                        "tlsarotate_tlsa_alias_ok",
                        int(a.ok),
                        service=r.service.name,
                        alias=a.name.to_text(),
                        owner=a.owner.to_text(),
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

    def endpoint_labels(r: ServiceReport, ep: Endpoint) -> dict[str, str]:
        kind = {"key_type": ep.key_type} if ep.key_type else {}
        return dict(service=r.service.name, owner=ep.owner.to_text(), address=ep.address, **kind)

    metric("tlsarotate_endpoint_up", "1 when the endpoint served a certificate chain")
    for r in rep.services:
        for er in r.endpoints:
            sample(
                "tlsarotate_endpoint_up",
                int(er.endpoint.served.ok),
                **endpoint_labels(r, er.endpoint),
            )
    metric("tlsarotate_endpoint_dane_ok", "1 when the served chain passes DANE")
    for r in rep.services:
        for er in r.endpoints:
            if er.ok is not None:
                sample("tlsarotate_endpoint_dane_ok", int(er.ok), **endpoint_labels(r, er.endpoint))
    expiries = [
        (c.slot, which, int(info.not_after), r.service.name)
        for r in rep.services
        for c in r.certs
        for which, info in (("deployed", c.deployed), ("next", c.next))
        if info is not None and info.not_after is not None
    ]
    name = "tlsarotate_cert_expiry_timestamp_seconds"
    metric(name, "certificate notAfter (Unix time)")
    for slot, which, ts, svc in expiries:
        sample(name, ts, service=svc, slot=slot, which=which)
    metric(
        "tlsarotate_next_records_published",
        "1 when the next certificate's records are on every server (absent: not known)",
    )
    for r in rep.services:
        for c in r.certs:
            sr = c.swap_readiness
            # a server that did not answer is "missing" to swap_readiness (never swap blind),
            # but to the metric it is unknown, not a 0
            if sr is not None and (sr.published or r.dns_answered):
                sample(
                    "tlsarotate_next_records_published",
                    int(sr.published),
                    service=r.service.name,
                    slot=c.slot,
                )
    metric(
        "tlsarotate_tlsrpt_record_ok",
        "1 when the TLSRPT TXT record is the configured one (absent: not read)",
    )
    for r in rep.services:
        rec = r.tlsrpt_record
        if rec is not None:
            sample(
                "tlsarotate_tlsrpt_record_ok",
                int(not rec.pending),
                service=r.service.name,
                owner=rec.name.to_text(),
            )
    _ca_sets(out, rep)
    t = rep.tlsrpt
    if t is not None:
        metric("tlsarotate_tlsrpt_reports", "TLSRPT reports whose range ended in the window")
        sample("tlsarotate_tlsrpt_reports", t.reports)
        metric(
            "tlsarotate_tlsrpt_failed_sessions",
            "failed sessions in the TLSRPT reports of the window",
        )
        for d, mx, rt, n in t.failed:
            sample("tlsarotate_tlsrpt_failed_sessions", n, policy_domain=d, mx=mx, result_type=rt)
    return out.text()


def _ca_sets(out: _Lines, rep: CheckReport) -> None:
    """The metrics of the services' ``ca_set`` (none when no service has one)."""
    sets = [(r.service.name, r.ca_set) for r in rep.services if r.ca_set is not None]
    if not sets:
        return
    name = "tlsarotate_ca_set_expiry_timestamp_seconds"
    out.metric(name, "notAfter of each CA certificate in ca_set (Unix time)")
    for svc, c in sets:
        for ca in c.cas:
            out.sample(name, int(ca.not_after), service=svc, ca=ca.subject)
    name = "tlsarotate_ca_set_published"
    out.metric(name, "1 when every server serves the CA's 2 x x records (absent: not known)")
    for svc, c in sets:
        for ca in c.cas:
            if ca.published is not None:
                out.sample(name, int(ca.published), service=svc, ca=ca.subject)
    name = "tlsarotate_ca_set_issuer_pinned"
    out.metric(name, "1 when the deployed certificate's issuer is in ca_set")
    for svc, c in sets:
        for slot, ok in c.issuer_in_set:
            out.sample(name, int(ok), service=svc, slot=slot)
    name = "tlsarotate_ca_set_retired_records"
    out.metric(name, "published records of CAs no longer in ca_set (awaiting retirement)")
    for svc, c in sets:
        out.sample(name, len(c.retired), service=svc)
