"""tlsarotate.tlsrpt.validate: RFC 8460 documents in, typed reports or one line out; the policy
domains a configuration serves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.tlsrpt_reports import report, rfc_example
from tlsarotate.tlsrpt.validate import (
    ReportInvalid,
    foreign_policies,
    parse_report,
    served_domains,
)

T0 = 1_764_460_800.0  # 2025-11-30T00:00:00Z


def test_the_rfc_example_report() -> None:
    r = parse_report(rfc_example(), "rfc.json")
    assert (r.organization, r.report_id, r.source) == (
        "Company-X",
        "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        "rfc.json",
    )
    assert r.end - r.start == 86399
    (p,) = r.policies
    assert (p.policy_type, p.policy_domain, p.successful, p.failed) == (
        "sts",
        "company-y.example",
        5326,
        303,
    )
    assert p.mx_hosts == ("*.mail.company-y.example",)
    assert [(f.result_type, f.sessions, f.receiving_mx_hostname) for f in p.failures] == [
        ("certificate-expired", 100, "mx1.mail.company-y.example"),
        ("starttls-not-supported", 200, "mx2.mail.company-y.example"),
        ("validation-failure", 3, "mx-backup.mail.company-y.example"),
    ]
    assert p.failures[2].failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    assert p.failures[1].receiving_ip == "203.0.113.56"


def test_a_tlsa_report_names_are_normalised() -> None:
    doc = report(
        "Example.TEST.", T0, T0 + 86399, [("tlsa-invalid", "192.0.2.1", "MX1.example.test.", 7)]
    )
    (p,) = parse_report(doc, "g").policies
    assert p.policy_type == "tlsa" and p.policy_domain == "example.test"
    assert p.failures[0].receiving_mx_hostname == "mx1.example.test"


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    doc = rfc_example()
    node: Any = doc
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


BAD: list[tuple[Any, str]] = [
    ([1, 2], "the report is not a JSON object"),
    (_with(["date-range"], KeyError), "'date-range' is missing"),
    (
        _with(["date-range", "end-datetime"], "yesterday"),
        "date-range.'end-datetime' is not an RFC 3339 date-time: \"yesterday\"",
    ),
    (
        _with(["date-range", "end-datetime"], "2016-03-01T00:00:00Z"),
        "date-range ends before it starts",
    ),
    (_with(["policies"], {}), "'policies' is not a list: {}"),
    (_with(["report-id"], 5), "'report-id' is not a string: 5"),
    (
        _with(["policies", 0, "policy", "policy-type"], "dmarc"),
        "policies[0].policy.'policy-type' is not tlsa, sts or no-policy-found: \"dmarc\"",
    ),
    (
        _with(["policies", 0, "summary", "total-failure-session-count"], -1),
        "policies[0].summary.'total-failure-session-count' is not a session count: -1",
    ),
    (
        _with(["policies", 0, "summary", "total-failure-session-count"], True),
        "policies[0].summary.'total-failure-session-count' is not a session count: true",
    ),
    (
        _with(["policies", 0, "failure-details", 0, "result-type"], "oops"),
        "policies[0].failure-details[0].'result-type' is not an RFC 8460 result type: \"oops\"",
    ),
    (
        _with(["policies", 0, "failure-details", 1, "failed-session-count"], "200"),
        "policies[0].failure-details[1].'failed-session-count' is not a session count: \"200\"",
    ),
    (
        _with(["policies", 0, "policy", "mx-host"], [1]),
        "policies[0].policy.'mx-host' holds a value that is not a string",
    ),
    (_with(["policies", 0, "policy"], "sts"), "policies[0].policy is not a JSON object"),
]


@pytest.mark.parametrize(("doc", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_each_schema_error_is_one_line(doc: Any, message: str) -> None:
    with pytest.raises(ReportInvalid) as ei:
        parse_report(doc, "x")
    assert str(ei.value) == message


def test_wrong_policy_domains_are_named_and_ours_are_not() -> None:
    served = served_domains([("mail", "example.test.", ["mx1.example.test."])])
    assert served == {"example.test": "mail", "mx1.example.test": "mail"}
    assert foreign_policies(parse_report(report("example.test", T0, T0 + 1), "x"), served) == []
    (line,) = foreign_policies(parse_report(rfc_example(), "x"), served)
    assert line == (
        "policy domain 'company-y.example' is not served by any configured service "
        "(example.test, mx1.example.test); skipped"
    )
