"""TLSRPT (RFC 8460) test reports: the RFC's own example, reports shaped like the ones large
senders mail (Google, Microsoft), and hostile inputs (a gzip bomb made on the fly)."""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import json
import zlib
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

from tlsarotate import timefmt

# RFC 8460 Appendix B, as the RFC prints it
RFC_EXAMPLE: dict[str, Any] = {
    "organization-name": "Company-X",
    "date-range": {
        "start-datetime": "2016-04-01T00:00:00Z",
        "end-datetime": "2016-04-01T23:59:59Z",
    },
    "contact-info": "sts-reporting@company-x.example",
    "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
    "policies": [
        {
            "policy": {
                "policy-type": "sts",
                "policy-string": [
                    "version: STSv1",
                    "mode: testing",
                    "mx: *.mail.company-y.example",
                    "max_age: 86400",
                ],
                "policy-domain": "company-y.example",
                "mx-host": ["*.mail.company-y.example"],
            },
            "summary": {
                "total-successful-session-count": 5326,
                "total-failure-session-count": 303,
            },
            "failure-details": [
                {
                    "result-type": "certificate-expired",
                    "sending-mta-ip": "2001:db8:abcd:0012::1",
                    "receiving-mx-hostname": "mx1.mail.company-y.example",
                    "failed-session-count": 100,
                },
                {
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "2001:db8:abcd:0013::1",
                    "receiving-mx-hostname": "mx2.mail.company-y.example",
                    "receiving-ip": "203.0.113.56",
                    "failed-session-count": 200,
                    "additional-information": "https://reports.company-x.example/"
                    "report_info?id=5065427c-23d3#StarttlsNotSupported",
                },
                {
                    "result-type": "validation-failure",
                    "sending-mta-ip": "198.51.100.62",
                    "receiving-ip": "203.0.113.58",
                    "receiving-mx-hostname": "mx-backup.mail.company-y.example",
                    "failed-session-count": 3,
                    "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED",
                },
            ],
        }
    ],
}


def rfc_example(domain: str | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(RFC_EXAMPLE)
    if domain is not None:
        doc["policies"][0]["policy"]["policy-domain"] = domain
    return doc


def report(
    domain: str,
    start: float,
    end: float,
    failures: Sequence[tuple[str, str, str, int]] = (),  # (result-type, sender ip, mx, count)
    *,
    org: str = "Google Inc.",
    report_id: str = "2026-11-30T00:00:00Z_example.test",
    successful: int = 1000,
    policy_type: str = "tlsa",
    mx: Sequence[str] = ("mx1.example.test",),
) -> dict[str, Any]:
    """A report as large senders write it (one policy; a tlsa policy lists the records)."""
    return {
        "organization-name": org,
        "date-range": {"start-datetime": timefmt.iso(start), "end-datetime": timefmt.iso(end)},
        "contact-info": "smtp-tls-reporting@google.com",
        "report-id": report_id,
        "policies": [
            {
                "policy": {
                    "policy-type": policy_type,
                    "policy-string": ["3 1 1 " + "ab" * 32],
                    "policy-domain": domain,
                    "mx-host": list(mx),
                },
                "summary": {
                    "total-successful-session-count": successful,
                    "total-failure-session-count": sum(f[3] for f in failures),
                },
                "failure-details": [
                    {
                        "result-type": rt,
                        "sending-mta-ip": ip,
                        "receiving-mx-hostname": host,
                        "receiving-ip": "192.0.2.25",
                        "failed-session-count": n,
                    }
                    for rt, ip, host, n in failures
                ],
            }
        ],
    }


def _b64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def google_mail(doc: dict[str, Any], domain: str = "example.test") -> bytes:
    """The message Google sends: multipart/report, the gzip JSON as application/tlsrpt+gzip."""
    dr = doc["date-range"]
    name = f"google.com!{domain}!{dr['start-datetime'][:10]}!{dr['end-datetime'][:10]}.json.gz"
    body = gzip.compress(json.dumps(doc).encode())
    return (
        "From: noreply-smtp-tls-reporting@google.com\n"
        f"To: tlsrpt@{domain}\n"
        f"Date: {formatdate(0)}\n"
        f"Subject: Report Domain: {domain} Submitter: google.com Report-ID: <{doc['report-id']}>\n"
        "TLS-Report-Domain: " + domain + "\n"
        "TLS-Report-Submitter: google.com\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; boundary="000000000000b0b0"; report-type="tlsrpt"\n'
        "\n"
        "--000000000000b0b0\n"
        'Content-Type: text/plain; charset="UTF-8"\n'
        "\n"
        "This is an aggregate TLS report from google.com\n"
        "\n"
        "--000000000000b0b0\n"
        f'Content-Type: application/tlsrpt+gzip; name="{name}"\n'
        f'Content-Disposition: attachment; filename="{name}"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n" + _b64(body) + "\n--000000000000b0b0--\n"
    ).encode()


def microsoft_mail(doc: dict[str, Any], domain: str = "example.test") -> bytes:
    """Microsoft's shape: multipart/mixed with CRLF lines, the file named with Unix times and a
    unique id (RFC 8460 §5.1), the name only in Content-Type, an upper-case type."""
    name = f"enterprise.protection.outlook.com!{domain}!1764460800!1764547199!a1b2c3.json.gz"
    body = gzip.compress(json.dumps(doc).encode())
    text = (
        "From: TLSRPT@microsoft.com\n"
        f"To: tlsrpt@{domain}\n"
        f"Subject: [TLSRPT] Report Domain: {domain} Submitter: enterprise.protection.outlook.com\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="_002_MS_"\n'
        "\n"
        "--_002_MS_\n"
        "Content-Type: text/html; charset=us-ascii\n"
        "\n"
        "<p>TLS report</p>\n"
        "--_002_MS_\n"
        f'Content-Type: Application/TLSRPT+GZIP; name="{name}"\n'
        "Content-Transfer-Encoding: base64\n"
        "\n" + _b64(body) + "\n--_002_MS_--\n"
    )
    return text.replace("\n", "\r\n").encode()


def mbox(*messages: bytes) -> bytes:
    out = b""
    for m in messages:
        body = b"\n".join(
            (b">" + line if line.startswith(b"From ") else line)
            for line in m.replace(b"\r\n", b"\n").split(b"\n")
        )
        out += b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n" + body + b"\n\n"
    return out


@functools.lru_cache(maxsize=4)
def zip_bomb(size: int = 1 << 30, members: bool = True) -> bytes:
    """A small gzip file that decompresses to ``size`` zero bytes. ``members``: 1 MiB gzip
    members one after another (valid gzip, as ``gzip -d`` reads it; 1 GiB in about 1 MB, made
    in milliseconds); else one member (slower to make: keep ``size`` small)."""
    if members:
        one = gzip.compress(bytes(1 << 20), compresslevel=9)
        return one * (size >> 20)
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join([*(c.compress(zeros) for _ in range(size >> 20)), c.flush()])
