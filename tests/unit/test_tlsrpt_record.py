"""tlsarotate.tlsrpt.record: the rua URIs RFC 8460 §3 allows, the record's text and strings,
and what the TXT RRset at ``_smtp._tls`` becomes (only TLSRPT records replaced)."""

from __future__ import annotations

import dns.name
import pytest

from tlsarotate.change import TxtRRset
from tlsarotate.tlsrpt import record

NAME = record.owner(dns.name.from_text("example.test."))
OTHER = (b"site-verification=abc",)


def txt(ttl: int, *recs: tuple[bytes, ...]) -> TxtRRset:
    return TxtRRset.of(ttl, recs)


def test_owner_is_under_smtp_tls() -> None:
    assert NAME.to_text() == "_smtp._tls.example.test."


@pytest.mark.parametrize(
    "uri",
    [
        "mailto:tlsrpt@example.test",
        "MAILTO:tlsrpt@example.test",
        "mailto:tlsrpt@example.test?subject=x",
        "https://reports.example.test/v1/tlsrpt",
        "https://reports.example.test:8443/a%2Cb",
    ],
)
def test_good_rua(uri: str) -> None:
    assert record.rua_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("http://reports.example.test/", "use mailto: or https:"),
        ("ftp://x.example.test/", "use mailto: or https:"),
        ("tlsrpt@example.test", "use mailto: or https:"),
        ("mailto:", "not a mailto: address"),
        ("mailto:a@b", "not a mailto: address"),
        ("https://", "names a host"),
        ("https:/path", "names a host"),
        ("https://a.example.test/x;y", "%2C and %3B"),
        ("mailto:a@example.test,mailto:b@example.test", "%2C and %3B"),
        ("mailto:a b@example.test", "no spaces"),
        ("https://a.example.test/\x00", "no spaces or control characters"),
        ("mailto:r\u00e9@example.test", "a URI is ASCII"),
    ],
)
def test_bad_rua(uri: str, needle: str) -> None:
    problem = record.rua_problem(uri)
    assert problem is not None and needle in problem and "\n" not in problem


def test_text_and_strings() -> None:
    assert record.text(["mailto:a@example.test", "https://r.example.test/"]) == (
        "v=TLSRPTv1; rua=mailto:a@example.test,https://r.example.test/"
    )
    long = "v=TLSRPTv1; rua=" + ",".join(f"mailto:r{i}@example.test" for i in range(30))
    parts = record.strings(long)
    assert len(parts) == 3 and all(len(p) <= 255 for p in parts)
    assert b"".join(parts) == long.encode()


@pytest.mark.parametrize(
    ("rec", "yes"),
    [
        ((b"v=TLSRPTv1; rua=mailto:a@example.test",), True),
        ((b"v=TLSRPTv1;rua=mailto:a@example.test",), True),
        ((b"v=TLSRPTv1", b"; rua=mailto:a@example.test"), True),  # strings are joined
        ((b"v=TLSRPTv10; rua=x",), False),
        ((b"v=spf1 -all",), False),
        ((b" v=TLSRPTv1; rua=x",), False),
    ],
)
def test_is_tlsrpt(rec: tuple[bytes, ...], yes: bool) -> None:
    assert record.is_tlsrpt(rec) is yes


RUA = ["mailto:tlsrpt@example.test"]
OURS = (b"v=TLSRPTv1; rua=mailto:tlsrpt@example.test",)


def test_plan_missing_adds_with_the_service_ttl() -> None:
    p = record.plan("mail", NAME, None, RUA, 3600)
    assert p.state == record.MISSING and p.pending
    assert p.new == txt(3600, OURS)


def test_plan_keeps_other_records_and_their_ttl() -> None:
    old = (b"v=TLSRPTv1; rua=mailto:old@example.test",)
    p = record.plan("mail", NAME, txt(600, OTHER, old), RUA, 3600)
    assert p.state == record.DIFFERENT
    assert p.new == txt(600, OTHER, OURS)
    assert p.published() == ["v=TLSRPTv1; rua=mailto:old@example.test"]
    lines = record.lines(p)
    assert f'  - {NAME} 600 IN TXT "v=TLSRPTv1; rua=mailto:old@example.test"' in lines
    assert f'  + {NAME} 600 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"' in lines
    assert not any("site-verification" in line for line in lines)


def test_plan_only_others_is_missing() -> None:
    p = record.plan("mail", NAME, txt(600, OTHER), RUA, 3600)
    assert p.state == record.MISSING and p.new == txt(600, OTHER, OURS)


def test_plan_ok_also_when_split_differently() -> None:
    split = (b"v=TLSRPTv1; ", b"rua=mailto:tlsrpt@example.test")
    for current in (txt(300, OURS), txt(300, OTHER, OURS), txt(300, split)):
        p = record.plan("mail", NAME, current, RUA, 3600)
        assert p.state == record.OK and not p.pending and p.new == current
        assert record.lines(p) == [
            f"  tlsrpt_record: TXT {NAME} holds the configured TLSRPT record"
        ]
        assert record.as_json(p)["write"] is None


def test_two_tlsrpt_records_are_one_too_many() -> None:
    """RFC 8460 §3: with several TLSRPT records none applies; ours replaces them all."""
    p = record.plan(
        "mail", NAME, txt(300, OURS, (b"v=TLSRPTv1; rua=mailto:x@example.test",)), RUA, 1
    )
    assert p.state == record.DIFFERENT and p.new == txt(1, OURS)  # none other: the service TTL
