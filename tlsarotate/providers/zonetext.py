"""Editing the TLSA RRsets of an RFC 1035 master file's text, keeping every other line byte for
byte (pure: text in, text out; the zone-file provider does the file I/O).

:func:`edit` cuts the removed TLSA records out where they stand, appends the new ones with
absolute owner names (in the file's own line ending), bumps the SOA serial where it stands, then
parses the result again and :func:`verify` compares it with the original RRset by RRset: if
anything but the intended TLSA RRsets and the serial differs, it raises and nothing is to be
written. Errors are :class:`~tlsarotate.errors.ProviderError` lines starting with ``where``
(``zone file PATH``). :func:`parse` remembers the last few texts it parsed (same text, same
zone: no second parse), so one command parses each zone file's text once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ProviderError

MARKER = "; TLSA records below are managed by tlsarotate"
_TTL_RE = re.compile(r"^(\d+[smhdwSMHDW]?)+$")
_CLASSES = {"IN", "CH", "HS", "CS", "ANY", "NONE"}


@dataclass
class _Rec:
    """One logical record of the file: its physical lines and what it is."""

    first: int  # index of the first physical line
    last: int  # index of the last physical line (parentheses may span lines)
    owner: dns.name.Name
    owner_explicit: bool
    rdtype: str
    tokens: list[tuple[int, int, int, str]]  # (line, start, end, text) of every token


def _tokenize_line(line: str, idx: int) -> tuple[list[tuple[int, int, int, str]], int]:
    """Tokens of one physical line, and the net parenthesis depth change."""
    toks: list[tuple[int, int, int, str]] = []
    depth = 0
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == ";":
            break
        if c in " \t\r\n":
            i += 1
            continue
        if c == "(":
            depth += 1
            i += 1
            continue
        if c == ")":
            depth -= 1
            i += 1
            continue
        start = i
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
        else:
            while i < n and line[i] not in " \t\r\n;()":
                i += 2 if line[i] == "\\" else 1
        toks.append((idx, start, min(i, n), line[start:i]))
    return toks, depth


def _scan(lines: list[str], origin: dns.name.Name) -> Iterator[_Rec]:
    """Walk the file's logical records, tracking $ORIGIN and the inherited owner."""
    cur_origin = origin
    last_owner: dns.name.Name | None = None
    i = 0
    while i < len(lines):
        first = i
        toks, depth = _tokenize_line(lines[i], i)
        while depth > 0 and i + 1 < len(lines):
            i += 1
            more, d = _tokenize_line(lines[i], i)
            toks += more
            depth += d
        last = i
        i += 1
        if not toks:
            continue
        head = toks[0][3]
        if head.startswith("$"):
            if head.upper() == "$ORIGIN" and len(toks) > 1:
                cur_origin = dns.name.from_text(toks[1][3], origin=cur_origin)
            continue
        explicit = lines[first][:1] not in (" ", "\t")
        rest = toks
        if explicit:
            owner_text = head
            owner = cur_origin if owner_text == "@" else dns.name.from_text(owner_text, cur_origin)
            rest = toks[1:]
            last_owner = owner
        elif last_owner is None:
            continue
        rdtype = ""
        for t in rest:
            word = t[3].upper()
            if word in _CLASSES or _TTL_RE.match(word):
                continue
            rdtype = word
            break
        yield _Rec(first, last, last_owner, explicit, rdtype, toks)


def lf(text: str) -> str:
    """The text as dnspython reads it: before 2.9.1 (the last for Python 3.10 is 2.8) its
    tokenizer fails on CRLF line ends ("unknown unit ''"). Line numbers stay the same."""
    return text.replace("\r\n", "\n")


def next_serial(old: int, now: float) -> int:
    today = int(dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y%m%d")) * 100
    if 1990010100 <= old <= 2999123199 and today > old:
        return today  # date-based serials stay date-based
    return (old + 1) % 2**32 or 1


# One record line exactly as :func:`edit` appends it (records.zone_line): an absolute owner of
# plain labels, a TTL, IN, TLSA, three numbers and one hex string, nothing else on the line.
_TAIL_LINE = re.compile(
    r"((?:[A-Za-z0-9_-]+\.)+)[ \t]+(\d{1,9})[ \t]+(?i:IN)[ \t]+(?i:TLSA)[ \t]+"
    r"(\d{1,3})[ \t]+(\d{1,3})[ \t]+(\d{1,3})[ \t]+([0-9A-Fa-f]+)[ \t]*(?:\r?\n)?"
)
_TAIL_SKIP = re.compile(r"[ \t]*(?:;[^\n]*)?(?:\r?\n)?")


def _split_tail(
    text: str, zone: dns.name.Name
) -> tuple[str, dict[dns.name.Name, list[tuple[int, TLSA]]]]:
    """``text`` cut in two: the head, for dnspython to parse, and the records of its tail.

    The tail is the longest run of final lines that are each one TLSA record written the way
    :func:`edit` appends them (or blank, or a comment): the block tlsarotate keeps at the end
    of a file. Nothing comes after those lines, so no later record can inherit their owner or
    TTL, and each is read on its own here, the result being the records dnspython would have
    added (:func:`parse`'s equivalence test compares the two on generated files). Any line of
    the tail that is not exactly that shape, a name in another zone, a value out of range:
    the tail ends above it and dnspython reads it with the head, errors and all."""
    lines = text.splitlines(keepends=True)
    k = len(lines)
    found: list[tuple[int, re.Match[str]]] = []
    while k > 0:
        line = lines[k - 1]
        m = _TAIL_LINE.fullmatch(line)
        if m is None:
            if _TAIL_SKIP.fullmatch(line) is None:
                break
        else:
            found.append((k - 1, m))
        k -= 1
    if not found:
        return text, {}
    names: dict[str, dns.name.Name] = {}
    rdatas: dict[tuple[str, ...], TLSA] = {}  # rdata are immutable: one object per text
    tail: list[tuple[int, str, int, TLSA]] = []
    for idx, m in found:
        owner_text, ttl, u, s, t, data = m.groups()
        try:
            owner = names.get(owner_text)
            if owner is None:
                owner = names[owner_text] = dns.name.from_text(owner_text)
            if not owner.is_subdomain(zone):
                raise ValueError("not in the zone")
            rd = rdatas.get((u, s, t, data))
            if rd is None:  # the owners of a service mostly hold the same records
                rd = rdatas[(u, s, t, data)] = TLSA(  # type: ignore[no-untyped-call]
                    dns.rdataclass.IN,
                    dns.rdatatype.TLSA,
                    int(u),
                    int(s),
                    int(t),
                    bytes.fromhex(data),
                )
        except (ValueError, dns.exception.DNSException):
            k = idx + 1  # dnspython reads this line and those above it
            break
        tail.append((idx, owner_text, int(ttl), rd))
    # lines of the tail become empty: line numbers in dnspython's errors stay the file's
    head = "".join(lines[:k]) + "\n" * (len(lines) - k)
    by_text: dict[str, list[tuple[int, TLSA]]] = {}  # keyed by text: a str keeps its hash
    for _, owner_text, ttl, rd in reversed(tail):  # in the file's order
        by_text.setdefault(owner_text, []).append((ttl, rd))
    by_owner: dict[dns.name.Name, list[tuple[int, TLSA]]] = {}
    for t, rrs in by_text.items():  # texts that differ in case only are one owner
        by_owner.setdefault(names[t], []).extend(rrs)
    return head, by_owner


# the last zones parsed, keyed by (filename, origin): (the exact text, its zone), newest last
_PARSED: OrderedDict[tuple[str, dns.name.Name], tuple[str, dns.zone.Zone]] = OrderedDict()
_PARSED_MAX = 16


def parse(text: str, zone: dns.name.Name, where: str, filename: str) -> dns.zone.Zone:
    """The zone ``text`` holds (``check_origin``: it must have the zone's SOA and NS).

    Parsing is the cost of every zone-file read, so the last few results are kept, keyed by
    the file's name and the zone and valid only for exactly the same ``text``: a file read
    again parses again only if its text changed (by anyone); the text :func:`edit` writes
    was parsed to verify it, so the read after our own write costs no parse either. The
    returned zone is shared: callers only look at it."""
    key = (filename, zone)
    hit = _PARSED.get(key)
    if hit is not None and hit[0] == text:
        _PARSED.move_to_end(key)
        return hit[1]
    head, tail = _split_tail(text, zone)
    z = _from_text(head, zone, where, filename)
    if any(_has_cname(z, owner) for owner in tail):
        z = _from_text(text, zone, where, filename)  # CNAME and other data: dnspython says
        tail = {}
    for owner, rrs in tail.items():
        rds = z.find_node(owner, create=True).find_rdataset(
            dns.rdataclass.IN, dns.rdatatype.TLSA, create=True
        )
        for ttl, rd in rrs:
            rds.add(rd, ttl)
    _PARSED[key] = (text, z)
    _PARSED.move_to_end(key)
    while len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return z


def _from_text(text: str, zone: dns.name.Name, where: str, filename: str) -> dns.zone.Zone:
    try:
        return dns.zone.from_text(
            lf(text), origin=zone, relativize=False, check_origin=True, filename=filename
        )
    except dns.exception.DNSException as e:
        raise ProviderError(f"{where}: cannot parse as zone {zone}: {e}") from None


def _has_cname(z: dns.zone.Zone, owner: dns.name.Name) -> bool:
    node = z.nodes.get(owner)  # (absolute names: get_node's name checks cost more than this)
    return (
        node is not None and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME) is not None
    )


def tlsa(z: dns.zone.Zone, owner: dns.name.Name) -> TlsaRRset | None:
    """The TLSA RRset at ``owner`` in ``z`` (None: none)."""
    node = z.nodes.get(owner)  # the zones here are parsed with relativize=False
    if node is None:
        return None
    rds = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA)
    if rds is None or len(rds) == 0:
        return None
    return TlsaRRset.from_rdataset(rds)


def edit(
    text: str, before: dns.zone.Zone, change: ZoneChange, now: float, where: str, filename: str
) -> tuple[str, int]:
    """The new text for ``change`` (owners that change only) and its new SOA serial;
    ``before`` is ``text`` parsed."""
    lines = {
        ch.owner: [records.zone_line(ch.owner, ch.new.ttl, rd) for rd in ch.new.sorted()]
        if ch.new is not None
        else []
        for ch in change.changes
    }
    new_text, serial, after = _edit(text, before, change.zone, "TLSA", lines, now, where, filename)
    verify(before, after, change, serial, where)
    return new_text, serial


def edit_txt(
    text: str,
    before: dns.zone.Zone,
    zone: dns.name.Name,
    name: dns.name.Name,
    new: TxtRRset | None,
    now: float,
    where: str,
    filename: str,
) -> tuple[str, int]:
    """The new text with the TXT RRset at ``name`` made ``new`` (every TXT record at that
    name is cut and ``new`` appended), and its new SOA serial; verified like :func:`edit`."""
    lines = {name: [f"{name} {new.ttl} IN TXT {t}" for t in new.texts()] if new else []}
    new_text, serial, after = _edit(text, before, zone, "TXT", lines, now, where, filename)
    _verify_rest(before, after, {(name, dns.rdatatype.TXT)}, serial, where, "TXT")
    if txt(after, name) != new:
        raise ProviderError(
            f"{where}: the edited file does not hold the intended TXT RRset at {name}; "
            "nothing was written"
        )
    return new_text, serial


def txt(z: dns.zone.Zone, name: dns.name.Name) -> TxtRRset | None:
    """The TXT RRset at ``name`` in ``z`` (None: none)."""
    node = z.get_node(name)
    rds = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TXT) if node is not None else None
    return TxtRRset.from_rdataset(rds) if rds is not None and len(rds) else None


def _edit(
    text: str,
    before: dns.zone.Zone,
    zone: dns.name.Name,
    rdtype: str,
    new_lines: dict[dns.name.Name, list[str]],
    now: float,
    where: str,
    filename: str,
) -> tuple[str, int, dns.zone.Zone]:
    """Cut every ``rdtype`` record at the owners of ``new_lines`` where it stands, append
    their new lines, bump the serial: the new text, its serial, and the text parsed."""
    touched = set(new_lines)
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    drop: set[int] = set()
    give_owner: dict[int, dns.name.Name] = {}
    soa: _Rec | None = None
    recs = list(_scan(lines, zone))
    for k, rec in enumerate(recs):
        if rec.rdtype == "SOA" and soa is None:
            soa = rec
        if rec.rdtype == rdtype and rec.owner in touched:
            drop.update(range(rec.first, rec.last + 1))
            if rec.owner_explicit:
                # the next record may inherit this owner: give it the owner explicitly
                for nxt in recs[k + 1 :]:
                    if nxt.owner_explicit:
                        break
                    if nxt.rdtype == rdtype and nxt.owner in touched:
                        continue
                    give_owner[nxt.first] = rec.owner
                    break
    if soa is None:
        raise ProviderError(f"{where}: no SOA record found")
    serial_tok = _serial_token(soa, where)
    new_serial = next_serial(int(serial_tok[3]), now)
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in drop:
            continue
        if i == serial_tok[0]:
            line = line[: serial_tok[1]] + str(new_serial) + line[serial_tok[2] :]
        if i in give_owner:
            line = give_owner[i].to_text() + line
        out.append(line)
    new_text = "".join(out)
    if new_text and not new_text.endswith("\n"):
        new_text += eol
    added = [line + eol for ls in new_lines.values() for line in ls]
    if added and MARKER not in new_text:
        new_text += MARKER + eol
    new_text += "".join(added)
    return new_text, new_serial, parse(new_text, zone, where, filename)


def _serial_token(soa: _Rec, where: str) -> tuple[int, int, int, str]:
    toks = soa.tokens if not soa.owner_explicit else soa.tokens[1:]
    k = 0
    while k < len(toks) and toks[k][3].upper() != "SOA":
        k += 1
    rdata = toks[k + 1 :]
    if len(rdata) < 3 or not rdata[2][3].isdigit():
        raise ProviderError(f"{where}: cannot find the SOA serial")
    return rdata[2]


def verify(
    before: dns.zone.Zone, after: dns.zone.Zone, change: ZoneChange, serial: int, where: str
) -> None:
    """Raise unless ``after`` is ``before`` with the TLSA RRsets of ``change`` and SOA
    ``serial``, nothing else changed."""
    touched = {ch.owner: ch.new for ch in change.changes}
    _verify_rest(before, after, {(o, dns.rdatatype.TLSA) for o in touched}, serial, where, "TLSA")
    for owner, want in touched.items():
        if tlsa(after, owner) != want:
            raise ProviderError(
                f"{where}: the edited file does not hold the intended TLSA "
                f"RRset at {owner}; nothing was written"
            )


def _verify_rest(
    before: dns.zone.Zone,
    after: dns.zone.Zone,
    edited: set[tuple[dns.name.Name, int]],
    serial: int,
    where: str,
    what: str,
) -> None:
    """Raise unless every RRset but the ``edited`` (name, type) ones and the SOA is the same
    in ``before`` and ``after``, and the SOA serial is ``serial``."""

    def rdatasets(z: dns.zone.Zone) -> dict[tuple[dns.name.Name, int, int], Any]:
        # keyed by covered type too: the RRSIGs over A and over NS are different sets
        out = {}
        for name, node in z.nodes.items():
            for rds in node.rdatasets:
                if rds.rdtype == dns.rdatatype.SOA or (name, rds.rdtype) in edited:
                    continue
                out[(name, rds.rdtype, rds.covers)] = (rds.ttl, set(rds))
        return out

    if rdatasets(before) != rdatasets(after):
        raise ProviderError(
            f"{where}: editing the {what} records would change other records; "
            "nothing was written (please report this file layout)"
        )
    assert after.origin is not None
    soa = after.get_rdataset(after.origin, dns.rdatatype.SOA)
    if soa is None or soa[0].serial != serial:  # type: ignore[attr-defined]
        raise ProviderError(f"{where}: SOA serial bump failed; nothing written")
