"""RFC 2136 messages, without the network: the UPDATE for a change (every owner's prerequisite,
then its deletes and adds), the split of a change into UPDATEs that fit in one DNS message, and
the words for what a server's answer codes mean. Used by
:class:`~tlsarotate.providers.rfc2136.RFC2136Provider`."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update

from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ProviderError

MAX_MESSAGE = 65535  # a DNS message over TCP (RFC 1035 §4.2.2 length field)


def _rdataset(rr: TlsaRRset) -> dns.rdataset.Rdataset:
    rds = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA)
    for rd in rr.sorted():
        rds.add(rd, rr.ttl)
    return rds


def build_update(change: ZoneChange, key: dns.tsig.Key | None) -> dns.update.UpdateMessage:
    """The UPDATE message for ``change``: every owner's prerequisite (those that stay as they
    are too), then the deletes and adds of the owners that change; signed with ``key``."""
    upd = dns.update.UpdateMessage(change.zone)
    for ch in change.changes:
        if not ch.owner.is_subdomain(change.zone):
            raise ProviderError(f"owner {ch.owner} is not in zone {change.zone}")
        old = ch.old if ch.old is not None and ch.old.records else None
        new = ch.new if ch.new is not None and ch.new.records else None
        if old is None:
            upd.absent(ch.owner, dns.rdatatype.TLSA)
        else:
            # value-dependent prerequisite: RFC 2136 §2.4.2 wants TTL 0 (BIND: FORMERR)
            upd.present(ch.owner, _rdataset(TlsaRRset(0, old.records)))
        if old == new:
            continue  # nothing to change here; the prerequisite still guards it
        if old is not None:
            upd.delete(ch.owner, dns.rdatatype.TLSA)
        if new is not None:
            upd.add(ch.owner, _rdataset(new))
    if key is not None:
        upd.use_tsig(key)
    return upd


def build_txt_update(
    zone: dns.name.Name,
    name: dns.name.Name,
    old: TxtRRset | None,
    new: TxtRRset | None,
    key: dns.tsig.Key | None,
) -> dns.update.UpdateMessage:
    """The UPDATE that makes the TXT RRset at ``name`` ``new``: ``old`` as the prerequisite
    (absent, or exactly these records at TTL 0, RFC 2136 §2.4.2), then delete and add."""
    upd = dns.update.UpdateMessage(zone)
    if old is None or not old.records:
        upd.absent(name, dns.rdatatype.TXT)
    else:
        upd.present(name, TxtRRset(0, old.records).to_rdataset())
        upd.delete(name, dns.rdatatype.TXT)
    if new is not None and new.records:
        upd.add(name, new.to_rdataset())
    if key is not None:
        upd.use_tsig(key)
    return upd


def wire_size(change: ZoneChange, key: dns.tsig.Key | None) -> int | None:
    """The size of ``change``'s UPDATE on the wire, or None when it does not fit one message."""
    try:
        return len(build_update(change, key).to_wire(max_size=MAX_MESSAGE))
    except dns.exception.TooBig:
        return None


def split(change: ZoneChange, key: dns.tsig.Key | None) -> list[ZoneChange]:
    """As few owner groups as fit in one message each, owners in order: each part is the
    longest run of owners that still fits, found by encoding (a binary search; sizes do not add
    up, as name compression only reaches the first 16 KiB of a message)."""
    if wire_size(change, key) is not None:
        return [change]
    out: list[ZoneChange] = []
    rest = list(change.changes)
    while rest:
        if wire_size(ZoneChange(change.zone, tuple(rest[:1])), key) is None:
            raise ProviderError(
                f"the change at {rest[0].owner} does not fit in one {MAX_MESSAGE}-byte UPDATE "
                "message"
            )
        lo, hi = 1, len(rest)  # rest[:lo] fits; fitting is monotone in the prefix length
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if wire_size(ZoneChange(change.zone, tuple(rest[:mid])), key) is not None:
                lo = mid
            else:
                hi = mid - 1
        out.append(ZoneChange(change.zone, tuple(rest[:lo])))
        rest = rest[lo:]
    return out


def rcode_hint(
    rc: dns.rcode.Rcode, zone: dns.name.Name, *, update: bool, key_label: str | None
) -> str:
    """What an answer code likely means, in words (`` (...)``), or ``""``. ``key_label``: the
    TSIG key's name as shown (None: the message was unsigned)."""
    if rc == dns.rcode.REFUSED:
        if not update:
            return f" (is the server authoritative for {zone}, and does allow-query permit us?)"
        if key_label is None:
            return (
                " (the UPDATE was sent without a TSIG key; configure tsig_key_file, or allow "
                f"this host in allow-update / update-policy of zone {zone})"
            )
        return (
            f" (key {key_label} may not update these names: check allow-update / "
            f"update-policy of zone {zone} on the server)"
        )
    if rc == dns.rcode.NOTAUTH:
        if update and key_label is None:  # Knot: its ACL wants a key for this zone
            return (
                " (not authorized: the UPDATE was sent without a TSIG key; configure "
                f"tsig_key_file, or the server is not the primary of zone {zone})"
            )
        return f" (the server is not authoritative for zone {zone}, or not its primary)"
    if rc == dns.rcode.NOTZONE:
        return f" (a name is outside zone {zone}, or {zone} is not a zone on the server)"
    if rc == dns.rcode.SERVFAIL:
        return " (the server failed internally; see its log)"
    if rc == dns.rcode.NOTIMP:
        return " (the server does not support dynamic updates)"
    if rc == dns.rcode.FORMERR:
        return " (the server could not parse the message)"
    return ""


def tsig_rejection(e: dns.tsig.PeerError, key_label: str) -> str:
    """Why the server rejected our TSIG signature, in words."""
    key = key_label
    if isinstance(e, dns.tsig.PeerBadSignature):
        return f"NOTAUTH/BADSIG: the server rejected the signature of key {key} (wrong secret?)"
    if isinstance(e, dns.tsig.PeerBadKey):
        return f"NOTAUTH/BADKEY: the server does not know key {key} (name or algorithm)"
    if isinstance(e, dns.tsig.PeerBadTime):
        return (
            f"NOTAUTH/BADTIME: the server rejected key {key}'s timestamp: the clocks of this "
            "host and the server differ (clock skew; check NTP)"
        )
    return f"NOTAUTH: TSIG error for key {key}"
