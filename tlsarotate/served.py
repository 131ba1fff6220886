"""What an endpoint served, and the protocol rules around it: the :class:`ServedChain` a TLS
handshake returns (:mod:`tlsarotate.handshake` does the I/O), how an endpoint is written, which
protocol ``auto`` means on a port and when RFC 7672's SMTP rules apply. Pure: judges
(:mod:`tlsarotate.probe_judge`, :mod:`tlsarotate.check.judge_endpoint`) import it without the
network code."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

STARTTLS_MODES = ("smtp", "imap", "pop3", "none", "auto")
# auto: the protocol that port speaks; every other port is taken as implicit TLS
AUTO_STARTTLS = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3"}


@dataclass(frozen=True)
class ServedChain:
    """What one address served. ``der`` is empty when ``error`` is set."""

    address: str
    port: int
    starttls: str  # the protocol actually used: smtp | imap | pop3 | none
    server_name: str | None = None  # the SNI sent (None: none sent)
    der: tuple[bytes, ...] = field(default=(), repr=False)  # leaf first, as sent
    tls_version: str | None = None  # "TLSv1.3"
    cipher: str | None = None
    error: str | None = None  # one line; None on success
    # the error means the address was not reached or did not answer in time (nothing could be
    # checked), not that it served something broken
    unreachable: bool = False
    # the handshake offered only what a certificate of this key type can serve (rsa, ecdsa:
    # tlsarotate.keytypes); None: whatever the server prefers
    key_type: str | None = None
    # the error came from the TLS handshake itself (the server was reached and spoke its
    # protocol): with ``key_type``, it serves no certificate of that type
    tls_refused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.der)

    @property
    def endpoint(self) -> str:
        return format_endpoint(self.address, self.port)


def format_endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def resolve_starttls(starttls: str, port: int) -> str:
    """``auto`` -> the protocol for ``port`` (smtp for 25/587, imap 143, pop3 110, else none)."""
    if starttls not in STARTTLS_MODES:
        raise ValueError(f"unknown starttls mode {starttls!r}")
    if starttls != "auto":
        return starttls
    return AUTO_STARTTLS.get(port, "none")


def speaks_smtp(starttls: str, port: int) -> bool:
    """The protocol is SMTP, so RFC 7672's DANE rules apply: STARTTLS smtp (asked for, on any
    port, or picked by ``auto`` for 25/587), or implicit TLS on 465, the SMTP submission
    service over TLS (RFC 8314 §7.3) whose SMTP clients (Postfix ``smtp_tls_wrappermode``,
    ``posttls-finger -w``) apply the same rules."""
    mode = resolve_starttls(starttls, port)
    return mode == "smtp" or (mode == "none" and port == 465)


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (brackets allowed), not a host name."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
