"""A TLSRPT report (RFC 8460 §4.4) as typed, frozen values. No parsing, no I/O: built by
:mod:`tlsarotate.tlsrpt.validate`."""

from __future__ import annotations

from dataclasses import dataclass

#: RFC 8460 §4.3 result types (and the policy types of §4.4)
NEGOTIATION_RESULTS = (
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
)
POLICY_RESULTS = (
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
)
RESULT_TYPES = NEGOTIATION_RESULTS + POLICY_RESULTS
POLICY_TYPES = ("tlsa", "sts", "no-policy-found")
#: the failures a TLSA or certificate rollover can cause (the others have other causes)
ROLLOVER_RESULTS = frozenset(
    {
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
    }
)


@dataclass(frozen=True)
class Failure:
    """One ``failure-details`` entry: ``sessions`` sessions ended in ``result_type``."""

    result_type: str
    sessions: int
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None  # lower case, no trailing dot
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    additional_information: str | None = None
    failure_reason_code: str | None = None


@dataclass(frozen=True)
class PolicyResult:
    """One ``policies`` entry: a policy the sender applied and what came of it."""

    policy_type: str
    policy_domain: str  # lower case, no trailing dot
    policy_strings: tuple[str, ...]
    mx_hosts: tuple[str, ...]
    successful: int
    failed: int
    failures: tuple[Failure, ...]


@dataclass(frozen=True)
class Report:
    source: str  # where it was read: a file, "MAILDIR/cur/x (attachment y.json.gz)", "stdin"
    report_id: str
    organization: str
    contact_info: str
    start: float  # date-range start-datetime (Unix time)
    end: float  # date-range end-datetime
    policies: tuple[PolicyResult, ...]
