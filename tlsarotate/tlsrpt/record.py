"""A service's TLSRPT record (RFC 8460 §3): the ``_smtp._tls.DOMAIN`` TXT record
``v=TLSRPTv1; rua=URI[,URI...]`` that tells senders where to mail or post their reports.
Pure: the rua URIs checked, the record's text, what the TXT RRset at that name should become
(its other TXT records kept as they are, only TLSRPT records replaced), and how the published
RRset compares with the config.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import dns.name

from tlsarotate.change import TxtRRset

VERSION = b"v=TLSRPTv1"
PREFIX = dns.name.from_text("_smtp._tls", origin=None)
MAX_STRING = 255  # bytes in one TXT character-string (RFC 1035 §3.3)

OK, MISSING, DIFFERENT = "ok", "missing", "different"


def owner(domain: dns.name.Name) -> dns.name.Name:
    """``_smtp._tls.DOMAIN.``, where RFC 8460 §3 puts the record."""
    return PREFIX.concatenate(domain)


_ADDR = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def rua_problem(uri: str) -> str | None:
    """What is wrong with one rua URI (None: nothing): RFC 8460 §3 allows ``mailto:`` and
    ``https:`` only; a comma or semicolon (they separate URIs and fields) must be
    percent-encoded."""
    if any(c.isspace() for c in uri) or not uri.isprintable():
        return f"{uri!r}: a URI has no spaces or control characters"
    if not uri.isascii():
        return f"{uri!r}: a URI is ASCII (percent-encode the rest, RFC 3986)"
    if "," in uri or ";" in uri:
        return f"{uri!r}: ',' and ';' separate URIs and fields: write them %2C and %3B"
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in ("mailto", "https"):
        return f"{uri!r}: use mailto: or https: (RFC 8460 §3)"
    if scheme == "mailto":
        addr = urllib.parse.unquote(rest.split("?", 1)[0])
        if not _ADDR.fullmatch(addr):
            return f"{uri!r}: not a mailto: address (mailto:tlsrpt@example.com)"
        return None
    parsed = urllib.parse.urlsplit(uri)
    if not parsed.hostname or not rest.startswith("//"):
        return f"{uri!r}: an https: URI names a host (https://reports.example.com/v1/tlsrpt)"
    return None


def text(rua: Sequence[str]) -> str:
    """The record's text: ``v=TLSRPTv1; rua=mailto:a@example.com,https://...``."""
    return f"{VERSION.decode()}; rua={','.join(rua)}"


def strings(record_text: str) -> tuple[bytes, ...]:
    """The text as TXT character-strings of at most 255 bytes each (a reader joins them)."""
    raw = record_text.encode("ascii")
    return tuple(raw[i : i + MAX_STRING] for i in range(0, len(raw), MAX_STRING)) or (b"",)


def is_tlsrpt(record: Sequence[bytes]) -> bool:
    """Is this TXT record a TLSRPT record (``v=TLSRPTv1`` then a ``;`` or the end)?"""
    joined = b"".join(record)
    if not joined.startswith(VERSION):
        return False
    rest = joined[len(VERSION) :].lstrip(b" \t")
    return not rest or rest.startswith(b";")


@dataclass(frozen=True)
class TxtPlan:
    """The TXT RRset at ``name``: what is there, what it should be, and in a word how the two
    compare (``ok``, ``missing``: no TLSRPT record, ``different``: another one, or more)."""

    service: str
    name: dns.name.Name
    current: TxtRRset | None
    new: TxtRRset | None
    want: str  # the record's text as configured
    state: str

    @property
    def pending(self) -> bool:
        return self.state != OK

    def published(self) -> list[str]:
        """The TLSRPT records published at the name now, as text."""
        recs = self.current.sorted() if self.current else []
        return [b"".join(r).decode("ascii", "replace") for r in recs if is_tlsrpt(r)]

    def summary(self) -> str:
        if self.state == OK:
            return f"TXT {self.name} holds the configured TLSRPT record"
        if self.state == MISSING:
            return f"TXT {self.name} has no TLSRPT record; configured: {self.want!r}"
        found = ", ".join(repr(t) for t in self.published())
        return f"TXT {self.name} holds {found}; configured: {self.want!r}"


def plan(
    service: str, name: dns.name.Name, current: TxtRRset | None, rua: Sequence[str], ttl: int
) -> TxtPlan:
    """What the TXT RRset at ``name`` should become: every TLSRPT record in it replaced by the
    configured one, every other TXT record kept (and then its TTL too)."""
    want = text(rua)
    ours = strings(want)
    recs = current.records if current else frozenset()
    others = frozenset(r for r in recs if not is_tlsrpt(r))
    tlsrpt = recs - others
    if len(tlsrpt) == 1 and b"".join(next(iter(tlsrpt))) == want.encode():
        return TxtPlan(service, name, current, current, want, OK)
    state = MISSING if not tlsrpt else DIFFERENT
    keep_ttl = current.ttl if current is not None and others else ttl
    return TxtPlan(service, name, current, TxtRRset(keep_ttl, others | {ours}), want, state)


def lines(p: TxtPlan) -> list[str]:
    """``plan``'s text for the record: how it compares, and the records a write removes and
    adds (the other TXT records at the name stay)."""
    out = [f"  tlsrpt_record: {p.summary()}"]
    if p.state == OK:
        return out
    old = p.current or TxtRRset(0, frozenset())
    new = p.new or TxtRRset(0, frozenset())
    for sign, rr, recs in (
        ("-", old, old.records - new.records),
        ("+", new, new.records - old.records),
    ):
        out += [f"  {sign} {p.name} {rr.ttl} IN TXT {t}" for t in TxtRRset(rr.ttl, recs).texts()]
    return out


def as_json(p: TxtPlan) -> dict[str, object]:
    """``plan --output json``'s ``tlsrpt_record`` of a service."""
    return {
        "name": p.name.to_text(),
        "state": p.state,
        "configured": p.want,
        "published": p.published(),
        "txt": p.current.texts() if p.current else [],
        "write": None if not p.pending or p.new is None else p.new.texts(),
        "ttl": p.new.ttl if p.new is not None else None,
    }
