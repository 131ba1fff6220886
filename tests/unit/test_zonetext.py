"""zonetext.parse reads the final block of plain TLSA lines itself (issue #16: the zone parse
was half of `plan`); the zone it returns must be the one dnspython's own parse of the whole
file gives, for any file, and a file dnspython refuses must still be refused."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.name
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsarotate.errors import ProviderError
from tlsarotate.providers import zonetext

ZONE = dns.name.from_text("z.test.")
HEAD = (
    "$TTL 300\n"
    "@ 3600 IN SOA ns1.z.test. admin.z.test. 2026120201 3600 600 86400 300\n"
    "@ IN NS ns1.z.test.\n"
    "ns1 IN A 127.0.0.1\n"
)

HEX = "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"
LINES = [
    f"_25._tcp.mx.z.test. 300 IN TLSA 3 1 1 {HEX}\n",
    f"_25._tcp.mx.z.test. 60 IN TLSA 3 0 1 {HEX.upper()}\n",
    f"_25._tcp.MX.z.test. 300 IN TLSA 2 1 1 {HEX[:-2]}01\n",
    f"_25._tcp.mx2.z.test. 300 IN TLSA 3 1 2 {HEX}{HEX}\n",
    f"_443._tcp.www.z.test. 120 in tlsa 3 1 1 {HEX}\n",
    f"_25._tcp.mx.z.test.\t300\tIN\tTLSA\t3\t1\t1\t{HEX[:-2]}02  \n",
    f"_25._tcp.mx.z.test. 300 IN TLSA 3 1 1 {HEX}\r\n",
    f"_25._tcp.mx.z.test. 300 IN TLSA 3 1 1 {HEX}",  # no final newline
    f"_25._tcp.mx.other.test. 300 IN TLSA 3 1 1 {HEX}\n",  # another zone: dnspython drops it
    f"_25._tcp.mx.z.test. 300 IN TLSA 256 1 1 {HEX}\n",  # out of range: dnspython refuses
    f"_25._tcp.mx.z.test. 300 IN TLSA 3 1 1 {HEX}a\n",  # odd hex: refused
    f"_25._tcp.mx.z.test. 3000000000 IN TLSA 3 1 1 {HEX}\n",
    f"{'a' * 64}.z.test. 300 IN TLSA 3 1 1 {HEX}\n",  # label too long
    f" 300 IN TLSA 3 1 1 {HEX[:-2]}03\n",  # inherits the owner above
    f"\t IN TLSA 3 1 1 {HEX[:-2]}04\n",  # inherits owner and TTL
    f"_25._tcp.mx.z.test. IN TLSA 3 1 1 {HEX[:-2]}05\n",  # the last or the $TTL's TTL
    f"_25._tcp.mx.z.test. 300 IN TLSA 3 1 1 ( {HEX[:32]}\n {HEX[32:]} )\n",
    f"_25._tcp.mx 300 IN TLSA 3 1 1 {HEX}\n",  # relative
    f"_25._tcp.mx.z.test. 300 IN TLSA 3 1 1 {HEX} ; a comment\n",
    "_25._tcp.mx.z.test. 300 IN CNAME mx.z.test.\n",
    "mx.z.test. 300 IN A 127.0.0.2\n",
    "$TTL 77\n",
    "$ORIGIN sub.z.test.\n",
    "; TLSA records below are managed by tlsarotate\n",
    "\n",
    "   \n",
    "  ; indented comment\n",
    "(\n",
    ")\n",
]


def dump(z: dns.zone.Zone) -> set[tuple[Any, ...]]:
    return {
        (name, rds.rdtype, rds.covers, rds.ttl, frozenset(rds))
        for name, node in z.nodes.items()
        for rds in node.rdatasets
    }


def both(text: str) -> tuple[Any, Any]:
    try:
        want: Any = dump(
            dns.zone.from_text(zonetext.lf(text), origin=ZONE, relativize=False, check_origin=True)
        )
    except dns.exception.DNSException:
        want = "refused"
    try:
        got: Any = dump(zonetext.parse(text, ZONE, "zone file f", f"f-{hash(text)}"))
    except ProviderError:
        got = "refused"
    return got, want


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=12))
def test_parse_gives_dnspythons_zone_for_any_tail(tail: list[str]) -> None:
    got, want = both(HEAD + "".join(tail))
    assert got == want


@pytest.mark.parametrize("line", LINES)
def test_each_line_alone_and_after_a_managed_block(line: str) -> None:
    for text in (HEAD + line, HEAD + LINES[0] + line + LINES[1], HEAD + line + LINES[0]):
        got, want = both(text)
        assert got == want, text


def test_the_block_tlsarotate_writes_is_read_without_dnspythons_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the design behind the figure: the head goes to dnspython, the managed block does not
    seen: list[str] = []
    real = dns.zone.from_text

    def spy(text: str, *a: Any, **kw: Any) -> dns.zone.Zone:
        seen.append(text)
        return real(text, *a, **kw)

    monkeypatch.setattr(dns.zone, "from_text", spy)
    block = "".join(LINES[:4]) + LINES[23] + LINES[4]
    z = zonetext.parse(HEAD + block, ZONE, "zone file f", "f-design")
    assert len(seen) == 1 and "TLSA" not in seen[0]
    assert seen[0].count("\n") == (HEAD + block).count("\n")  # line numbers kept
    rr = zonetext.tlsa(z, dns.name.from_text("_25._tcp.mx.z.test."))
    assert rr is not None and rr.ttl == 60 and len(rr.records) == 3


def test_an_error_above_the_block_says_what_dnspython_says_of_the_whole_file() -> None:
    text = HEAD + "bad 300 IN A not-an-address\n" + "".join(LINES[:3])
    with pytest.raises(dns.exception.DNSException) as whole:
        dns.zone.from_text(text, origin=ZONE, relativize=False, filename="f")
    with pytest.raises(ProviderError) as ours:
        zonetext.parse(text, ZONE, "zone file f", "f")
    assert str(ours.value) == f"zone file f: cannot parse as zone z.test.: {whole.value}"
    assert "f:" in str(whole.value)
