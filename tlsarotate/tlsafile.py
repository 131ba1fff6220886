"""TLSA records given in a file (``probe --tlsa-from FILE``): the records to judge a served
chain against instead of what DNS holds.

A line is either the record data (``3 1 1 <hex>``) or a zone-file line
(``owner [ttl] [IN] TLSA 3 1 1 <hex>``); zone-file lines for another owner are skipped. Blank
lines and ``;``/``#`` comments are ignored. A bad line is one :class:`RecordError` naming the
file and the line.
"""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.errors import RecordError
from tlsarotate.fsutil import read_text


def read_tlsa_file(path: str | Path, owner: dns.name.Name | None) -> list[TLSA]:
    """The TLSA records of ``path`` for ``owner`` (None: every zone-file line, whatever its
    owner). Raises RecordError: unreadable, a bad line (``FILE:LINE: why``), or no records."""
    p = Path(path)
    text = read_text(p, "TLSA file", error=RecordError)
    out: list[TLSA] = []
    other_owners = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        upper = [t.upper() for t in tokens]
        if "TLSA" in upper:
            i = upper.index("TLSA")
            rdata = " ".join(tokens[i + 1 :])
            first = tokens[0]
            if i > 0 and first.endswith(".") and owner is not None:
                try:
                    line_owner = dns.name.from_text(first)
                except dns.exception.DNSException:
                    raise RecordError(f"{p}:{n}: invalid owner name {first!r}") from None
                if line_owner != owner:
                    other_owners += 1
                    continue
        else:
            rdata = line
        try:
            out.append(records.from_text(rdata))
        except RecordError as e:
            raise RecordError(f"{p}:{n}: {e}") from None
    if not out:
        extra = f" for {owner} ({other_owners} line(s) for other owners)" if other_owners else ""
        raise RecordError(f"{p}: no TLSA records found{extra}")
    return out
