"""``tlsarotate check --output nagios``: one plugin status line with perfdata.

Thresholds follow the plugin range syntax and alert exactly when the check does
(:data:`PERF_THRESHOLDS`).
"""

from __future__ import annotations

from tlsarotate.check.judge import CERT_WARN_SECONDS, RRSIG_WARN_SECONDS
from tlsarotate.check.report import CheckReport

# Nagios plugin range syntax (monitoring-plugins guidelines, "Threshold and ranges"): a label
# alerts when its value lies OUTSIDE the range. "N:" alerts below N, "0" alerts above 0 (and below
# 0), "" never alerts. Each pair (warning, critical) alerts exactly when check's own logic does.
PERF_THRESHOLDS: dict[str, tuple[str, str]] = {
    "failing": ("", "0"),  # an endpoint failing DANE: CRITICAL
    "unpublished": ("", "0"),  # an owner whose records reject a deployed certificate: CRITICAL
    "warnings": ("0", ""),
    "criticals": ("", "0"),
    "broken_aliases": ("", "0"),  # shared_owner: a host TLSA name not leading to it: CRITICAL
    # a configured key type (RSA and ECDSA slots) an endpoint does not serve: CRITICAL
    "key_types_missing": ("", "0"),
    # seconds left of the earliest certificate with no next one: WARNING below 14 days
    "cert_expiry": (f"{CERT_WARN_SECONDS}:", ""),
    # seconds left of the earliest RRSIG: WARNING below 3 days, CRITICAL once expired
    "rrsig_expiry": (f"{RRSIG_WARN_SECONDS}:", "0:"),
}


def render(rep: CheckReport) -> str:
    """One status line with perfdata. A value that is not known (the ``unpublished`` count when
    a server did not answer, an expiry with nothing to expire) is left out, never guessed."""
    p = rep.perf
    items: list[tuple[str, int | None, str]] = [
        ("endpoints", p.endpoints, ""),
        ("failing", p.failing, ""),
        ("unknown", p.unknown, ""),
        ("owners", p.owners, ""),
        ("unpublished", p.unpublished, ""),
        ("warnings", p.warnings, ""),
        ("criticals", p.criticals, ""),
        ("cert_expiry", p.cert_expiry_no_next_min_seconds, "s"),
        ("rrsig_expiry", p.rrsig_expiry_min_seconds, "s"),
        ("tlsrpt_failed", p.tlsrpt_failed, ""),
        ("broken_aliases", p.broken_aliases, ""),
        ("key_types_missing", p.key_types_missing, ""),
    ]
    thresholds = dict(PERF_THRESHOLDS)
    if rep.tlsrpt is not None:  # the configured thresholds: WARNING from warn, CRITICAL from crit
        thresholds["tlsrpt_failed"] = (str(rep.tlsrpt.warn - 1), str(rep.tlsrpt.crit - 1))
    perf = []
    for label, value, uom in items:
        if value is None:
            continue
        warn, crit = thresholds.get(label, ("", ""))
        perf.append(f"{label}={value}{uom};{warn};{crit}".rstrip(";"))
    return f"TLSAROTATE {rep.status} - {rep.summary()} | {' '.join(perf)}\n"


def render_unknown(reason: str) -> str:
    """The status line of a check that could not run (no perfdata)."""
    return f"TLSAROTATE UNKNOWN - {reason.replace('|', '/')}\n"  # "|" starts perfdata
