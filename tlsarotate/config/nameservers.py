"""Name server addresses as the config and the command line write them: ``192.0.2.1``,
``192.0.2.1:5353``, ``2001:db8::1``, ``[2001:db8::1]:5353``."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORT = 53
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?")
_IPV4_PORT = re.compile(r"([0-9.]+)(?::(\d+))?")


@dataclass(frozen=True)
class Nameserver:
    address: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


def parse_nameserver(text: str) -> Nameserver:
    """The :class:`Nameserver` ``text`` names; raises ValueError with the reason in words (one
    line, quoting ``text``)."""
    t = text.strip()
    addr, port = t, DEFAULT_PORT
    m = _BRACKETED.fullmatch(t) or _IPV4_PORT.fullmatch(t)
    if m:
        addr, port = m.group(1), int(m.group(2) or DEFAULT_PORT)
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address (forms: 192.0.2.1, "
            "192.0.2.1:5353, 2001:db8::1, [2001:db8::1]:5353)"
        ) from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1-65535")
    return Nameserver(addr, port)
