"""tlsarotate.config.nameservers: the address forms the config and --nameserver accept."""

from __future__ import annotations

import pytest

from tlsarotate.config.nameservers import Nameserver, parse_nameserver


@pytest.mark.parametrize(
    ("text", "address", "port"),
    [
        ("192.0.2.1", "192.0.2.1", 53),
        ("192.0.2.1:5353", "192.0.2.1", 5353),
        (" 192.0.2.1:53 ", "192.0.2.1", 53),
        ("2001:db8::1", "2001:db8::1", 53),
        ("[2001:db8::1]", "2001:db8::1", 53),
        ("[2001:db8::1]:5353", "2001:db8::1", 5353),
        ("::1", "::1", 53),
        ("[::ffff:192.0.2.1]:54", "::ffff:192.0.2.1", 54),
        # without brackets a last group is part of the IPv6 address, never a port
        ("2001:db8::1:5353", "2001:db8::1:5353", 53),
    ],
)
def test_parses(text: str, address: str, port: int) -> None:
    assert parse_nameserver(text) == Nameserver(address, port)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (Nameserver("192.0.2.1"), "192.0.2.1:53"),
        (Nameserver("192.0.2.1", 5353), "192.0.2.1:5353"),
        (Nameserver("2001:db8::1", 5353), "[2001:db8::1]:5353"),
    ],
)
def test_str_is_a_form_parse_reads_back(ns: Nameserver, text: str) -> None:
    assert str(ns) == text
    assert parse_nameserver(str(ns)) == ns


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ns1.example.test", "'ns1.example.test' is not an IP address (forms: 192.0.2.1, "),
        ("192.0.2.300", "'192.0.2.300' is not an IP address"),
        ("192.0.2.1:", "'192.0.2.1:' is not an IP address"),
        ("[192.0.2.1", "'[192.0.2.1' is not an IP address"),
        ("[2001:db8::1]:x", "'[2001:db8::1]:x' is not an IP address"),
        ("", "'' is not an IP address"),
        ("192.0.2.1:0", "port 0 out of range 1-65535"),
        ("[2001:db8::1]:70000", "port 70000 out of range 1-65535"),
    ],
)
def test_bad_input_is_one_line(text: str, needle: str) -> None:
    with pytest.raises(ValueError) as ei:
        parse_nameserver(text)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(needle), msg
