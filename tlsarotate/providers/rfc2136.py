"""RFC 2136 dynamic updates (BIND, Knot, PowerDNS, ...) signed with TSIG (RFC 8945).

One :class:`~tlsarotate.change.ZoneChange` becomes one UPDATE message over TCP to the primary,
unless it does not fit in one DNS message (65,535 bytes); then :meth:`RFC2136Provider.parts`
splits it into as few UPDATEs as fit, each atomic, and :meth:`RFC2136Provider.after_part` waits
until the primary serves one before the next is sent (BIND's inline signing can drop an UPDATE
that arrives while it still signs the previous one). Every owner's ``old`` RRset is sent as a
prerequisite (RFC 2136 §2.4), that of an owner that stays as it is too: "RRset does not exist"
when we read none, else "RRset exists with exactly these records" (value-dependent). A failed
prerequisite (NXRRSET/YXRRSET) means someone changed the RRset since we read it:
:class:`~tlsarotate.errors.ConcurrentChangeError`, nothing written. The messages themselves are
built in :mod:`tlsarotate.providers.rfc2136_msg`, the key read by
:mod:`tlsarotate.providers.tsig`.

Config::

    providers:
      bind:
        type: rfc2136
        server: 192.0.2.53          # the primary (an IP address)
        port: 53
        tsig_key_file: /etc/tlsarotate/tsig.key   # from `tsig-keygen -a hmac-sha256 NAME`
        # or: tsig_name: NAME, tsig_algorithm: hmac-sha256,
        #     tsig_secret_file: FILE  or  tsig_secret_env: VAR
        timeout: 5                  # seconds per attempt
        retries: 3                  # attempts in all (1 = no retry) on timeouts / refusals
        read: query                 # or axfr (one zone transfer instead of one query per owner)

Listing the TLSA owners of a zone (``tlsarotate import``) always takes one AXFR, whatever
``read`` says: the primary's ``allow-transfer`` must allow the TSIG key.

The TSIG secret never appears in an error message, a log line or ``repr(provider)``.

Testing and fault injection: every network exchange goes through :meth:`RFC2136Provider._send`
(one attempt, one message) and is counted in :attr:`RFC2136Provider.sent` by opcode
(``"UPDATE"``, ``"QUERY"``, ``"AXFR"``). Retries and polls sleep on the context's clock, with
jitter from its random source.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers import rfc2136_msg as msg
from tlsarotate.providers.base import Capabilities, Option, Provider, ProviderContext, WriteToken
from tlsarotate.providers.secrets import check_private_file
from tlsarotate.providers.tsig import ALGORITHMS, DEFAULT_ALGORITHM, load_key
from tlsarotate.tcpdns import TcpChannel

log = logging.getLogger(__name__)

T = TypeVar("T")
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
SERVED_AFTER_RETRY = 3.0  # seconds a retried UPDATE may take to be served (inline signing)
_NO_ANSWER = (dns.exception.Timeout, OSError, EOFError)  # worth another attempt


@dataclass(frozen=True)
class Served(WriteToken):
    """What the primary must serve once an UPDATE is live: each owner's new RRset (records
    and TTL; None: no RRset)."""

    expect: tuple[tuple[dns.name.Name, TlsaRRset | None], ...]


class RFC2136Provider(Provider):
    type_name: ClassVar[str] = "rfc2136"
    options: ClassVar[Mapping[str, Option]] = {
        "server": Option(str, required=True, help="IP address of the primary server"),
        "port": Option(int, default=53, min=1, max=65535, help="port of the primary server"),
        "tsig_key_file": Option(
            str, path=True, help="BIND key file as written by tsig-keygen (name, algorithm, secret)"
        ),
        "tsig_name": Option(str, help="TSIG key name (with tsig_secret_file/_env)"),
        "tsig_algorithm": Option(
            str, help=f"TSIG algorithm: {', '.join(ALGORITHMS)} (default {DEFAULT_ALGORITHM})"
        ),
        "tsig_secret_file": Option(str, path=True, help="file holding the base64 TSIG secret"),
        "tsig_secret_env": Option(str, help="environment variable holding the base64 secret"),
        "timeout": Option(
            (int, float), default=5.0, min=0, min_open=True, max=300, help="seconds per attempt"
        ),
        "retries": Option(
            int,
            default=3,
            min=1,
            max=20,
            help="attempts in all on a timeout or refused connection (1: no retry)",
        ),
        "read": Option(str, default="query", choices=("query", "axfr"), help="how to read"),
    }
    capabilities: ClassVar[Capabilities] = Capabilities(atomic=True, prerequisites=True, txt=True)
    part_unit: ClassVar[str] = "UPDATE"

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        try:
            self._check_server(self.opts)
            self.key = load_key(self.opts)
        except ConfigError as e:
            raise ConfigError(f"provider {name}: {e}") from None
        self.server = str(self.opts["server"])
        self.port = int(self.opts["port"])
        self.timeout = float(self.opts["timeout"])
        self.retries = int(self.opts["retries"])
        self.read_mode = str(self.opts["read"])
        self.sent: collections.Counter[str] = collections.Counter()
        self._queries = TcpChannel(self.server, self.port, self.timeout)

    # ---- config ------------------------------------------------------------------------
    @staticmethod
    def _check_server(options: Mapping[str, Any]) -> None:
        server = options.get("server")
        try:
            ipaddress.ip_address(str(server))
        except ValueError:
            raise ConfigError(f"{server!r} is not an IP address", key="server") from None

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        cls._check_server(options)
        load_key(options)
        for option in ("tsig_key_file", "tsig_secret_file"):
            if options.get(option) is not None:
                check_private_file(option, Path(options[option]), "rewrite the zone")

    def __repr__(self) -> str:
        key = repr(self.key) if self.key else "no TSIG key"
        return f"RFC2136Provider({self.name!r}, {self.where}, {key})"

    @property
    def where(self) -> str:
        return (
            f"[{self.server}]:{self.port}" if ":" in self.server else f"{self.server}:{self.port}"
        )

    # ---- the network -------------------------------------------------------------------
    def _send(self, message: dns.message.Message) -> dns.message.Message:
        """ONE attempt: send ``message`` over TCP to the server and return the answer.

        The only place that touches the network for UPDATE and QUERY (AXFR goes through
        :meth:`_transfer`); tests and the fault harness wrap or replace it. Queries (``read:
        query``, ``is_live``) share one TCP connection (:class:`~tlsarotate.tcpdns.TcpChannel`);
        each UPDATE has its own."""
        self.sent[dns.opcode.to_text(message.opcode())] += 1
        if message.opcode() == dns.opcode.QUERY:
            return self._queries.exchange(message)
        return dns.query.tcp(message, self.server, timeout=self.timeout, port=self.port)

    def close(self) -> None:
        self._queries.close()

    def _transfer(self, zone: dns.name.Name) -> dns.zone.Zone:
        """ONE attempt at a TSIG-signed AXFR of ``zone``."""
        self.sent["AXFR"] += 1
        z = dns.zone.Zone(zone)
        q, _ = dns.xfr.make_query(z, keyring=self._dns_key())
        dns.query.inbound_xfr(
            self.server, z, q, port=self.port, timeout=self.timeout, lifetime=self.timeout * 4
        )
        return z

    def _dns_key(self) -> dns.tsig.Key | None:
        return self.key.dns_key() if self.key else None

    def transfer_key(self) -> dns.tsig.Key | None:
        """The provider's TSIG key also signs the observer's transfers (``observe_read``)."""
        return self._dns_key()

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, tried up to ``retries`` times on timeouts and refused or lost connections."""
        try:
            return self.retrying(
                what,
                fn,
                attempts=self.retries,
                retry_on=_NO_ANSWER,
                base=BACKOFF_BASE,
                cap=BACKOFF_CAP,
            )
        except dns.exception.Timeout:
            last = f"timeout after {self.timeout:g}s"
        except ConnectionRefusedError:
            last = "connection refused"
        except (ConnectionResetError, EOFError, BrokenPipeError):
            last = "connection closed by the server"
        except OSError as e:
            last = e.strerror or type(e).__name__
        raise self.error(
            f"no answer to {what} from {self.where} after {self.retries} attempt(s) ({last})"
        )

    def _exchange(self, message: dns.message.Message, what: str) -> dns.message.Message:
        try:
            return self._retrying(what, lambda: self._send(message))
        except dns.tsig.PeerError as e:
            raise self._tsig_error(e, what) from None
        except (dns.tsig.BadSignature, dns.tsig.BadKey, dns.tsig.BadAlgorithm, dns.tsig.BadTime):
            raise self.error(
                f"the answer to {what} failed TSIG verification with key {self._key_label()}"
            ) from None
        except dns.exception.FormError as e:
            if self.key is not None and "requires a TSIG" in str(e):
                # Knot answers a signed request for a zone it does not serve unsigned
                raise self.error(
                    f"the answer to {what} from {self.where} is not TSIG-signed: the server "
                    "refused it before looking at the key (is the zone served there?)"
                ) from None
            raise self.error(f"malformed answer to {what}") from None

    def _key_label(self) -> str:
        return repr(self.key.label) if self.key else "(none)"

    def _tsig_error(self, e: dns.tsig.PeerError, what: str) -> ProviderError:
        why = msg.tsig_rejection(e, self._key_label())
        return self.error(f"{what}: TSIG authentication failed at {self.where}: {why}")

    def _hint(self, rc: dns.rcode.Rcode, zone: dns.name.Name, update: bool) -> str:
        return msg.rcode_hint(
            rc, zone, update=update, key_label=self._key_label() if self.key else None
        )

    # ---- read --------------------------------------------------------------------------
    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        for o in owners:
            self._check_owner(zone, o)
        if self.read_mode == "axfr":
            return self._read_axfr(zone, owners)
        out: dict[dns.name.Name, TlsaRRset] = {}
        for owner in owners:
            rr = self._query_owner(zone, owner)
            if rr is not None:
                out[owner] = rr
        return out

    def _check_owner(self, zone: dns.name.Name, owner: dns.name.Name) -> None:
        if not owner.is_subdomain(zone):
            raise self.error(f"owner {owner} is not in zone {zone}")

    def _query_owner(self, zone: dns.name.Name, owner: dns.name.Name) -> TlsaRRset | None:
        rrset = self._query(zone, owner, dns.rdatatype.TLSA)
        return TlsaRRset.from_rdataset(rrset) if rrset is not None else None

    def _query(
        self, zone: dns.name.Name, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.rrset.RRset | None:
        """The primary's own answer for ``owner``/``rdtype`` (None: no such RRset)."""
        what = dns.rdatatype.to_text(rdtype)
        q = dns.message.make_query(owner, rdtype)
        q.flags = 0  # RD=0: ask the primary itself
        key = self._dns_key()
        if key is not None:
            q.use_tsig(key)
        r = self._exchange(q, f"the {what} query for {owner}")
        rc = r.rcode()
        if rc == dns.rcode.NXDOMAIN:
            return None
        if rc != dns.rcode.NOERROR:
            raise self.error(
                f"{what} query for {owner} answered "
                f"{dns.rcode.to_text(rc)}{self._hint(rc, zone, update=False)}"
            )
        if not r.flags & dns.flags.AA:
            raise self.error(
                f"not authoritative for {owner} (no AA flag): is the server "
                f"the primary of zone {zone}?"
            )
        for rrset in r.answer:
            if rrset.name == owner and rrset.rdtype == rdtype:
                return rrset
        return None

    def _read_axfr(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        z = self._axfr(zone)
        out: dict[dns.name.Name, TlsaRRset] = {}
        for owner in owners:
            rds = z.get_rdataset(owner, dns.rdatatype.TLSA)
            if rds is not None and len(rds):
                out[owner] = TlsaRRset.from_rdataset(rds)
        return out

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        """The owners with a TLSA RRset, from one AXFR (whatever ``read`` says)."""
        z = self._axfr(zone)
        found = (n.derelativize(zone) for n in z.nodes)
        return sorted(n for n in found if z.get_rdataset(n, dns.rdatatype.TLSA))

    def _axfr(self, zone: dns.name.Name) -> dns.zone.Zone:
        """The zone, transferred (retried on timeouts), or a one-line error."""
        try:
            z = self._retrying(f"the AXFR of {zone}", lambda: self._transfer(zone))
        except dns.tsig.PeerError as e:
            raise self._tsig_error(e, f"the AXFR of {zone}") from None
        except dns.xfr.TransferError as e:
            rc = e.rcode
            hint = {
                dns.rcode.REFUSED: " (allow-transfer must allow the TSIG key)",
                # Knot: the zone is not served there, or its ACL wants a (different) key
                dns.rcode.NOTAUTH: f" (is {zone} served there, and does its ACL allow "
                f"transfers with {'key ' + self._key_label() if self.key else 'no TSIG key'}?)",
            }.get(rc, "")
            raise self.error(f"AXFR of {zone} answered {dns.rcode.to_text(rc)}{hint}") from None
        except dns.exception.FormError:
            raise self.error(f"malformed AXFR of {zone}") from None
        return z

    # ---- write -------------------------------------------------------------------------
    def build_update(self, change: ZoneChange) -> dns.update.UpdateMessage:
        """The UPDATE message for ``change`` (see :func:`~.rfc2136_msg.build_update`)."""
        return msg.build_update(change, self._dns_key())

    def parts(self, change: ZoneChange) -> list[ZoneChange]:
        """One UPDATE for the whole change, unless it does not fit in one DNS message
        (65,535 bytes: about 700 owners with one record each); then as few as fit."""
        return msg.split(change, self._dns_key())

    def after_part(self, part: ZoneChange, token: WriteToken) -> None:
        """Send the next part only once this one is served (BIND's inline signing can drop an
        UPDATE that arrives while it still signs the previous one; seen:
        "receive_secure_serial: unchanged")."""
        limit = max(10.0, self.timeout * 4)
        assert isinstance(token, Served)
        if not self._wait_served(part.zone, token, limit):
            raise self.error(
                f"part of a split UPDATE of zone {part.zone} was answered but not served within "
                f"{limit:g}s; re-run to re-plan"
            )

    def _wait_served(self, zone: dns.name.Name, token: Served, limit: float) -> bool:
        """Poll until the primary serves ``token`` (True) or ``limit`` seconds passed."""
        waited, step = 0.0, 0.1
        while not self._serves(zone, token):
            if waited >= limit:
                return False
            self.context.clock.sleep(step)
            waited += step
        return True

    def write(self, part: ZoneChange) -> Served:
        upd = self.build_update(part)
        log.debug(
            "provider %r (rfc2136): UPDATE %s: %d owner(s), %d bytes",
            self.name,
            part.zone,
            len(part.changes),
            len(upd.to_wire(max_size=msg.MAX_MESSAGE)),
        )
        attempts_before = self.sent["UPDATE"]
        r = self._exchange(upd, f"the UPDATE of zone {part.zone}")
        rc = r.rcode()
        token = Served(tuple((c.owner, c.new) for c in part.changes))
        if rc == dns.rcode.NOERROR:
            return token
        if rc in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN):
            retried = self.sent["UPDATE"] - attempts_before > 1
            if retried and self._wait_served(part.zone, token, SERVED_AFTER_RETRY):
                # an earlier attempt whose answer was lost did apply the change (inline
                # signing serves it a moment after applying it: polled briefly)
                return token
            raise self._concurrent(part, rc)
        raise self.error(
            f"UPDATE of zone {part.zone} failed: "
            f"{dns.rcode.to_text(rc)}{self._hint(rc, part.zone, update=True)}"
        )

    # ---- TXT ---------------------------------------------------------------------------

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        self._check_owner(zone, name)
        rrset = self._query(zone, name, dns.rdatatype.TXT)
        return TxtRRset.from_rdataset(rrset) if rrset is not None else None

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> WriteToken:
        """One UPDATE: ``old`` as the prerequisite (absent, or exactly these records), then
        the RRset deleted and ``new`` added."""
        self._check_owner(zone, name)
        upd = msg.build_txt_update(zone, name, old, new, self._dns_key())
        rc = self._exchange(upd, f"the UPDATE of zone {zone}").rcode()
        if rc in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN):
            raise self.error(
                f"the TXT RRset at {name} changed since it was read (concurrent change?; "
                f"prerequisite failed: {dns.rcode.to_text(rc)})",
                ConcurrentChangeError,
            )
        if rc != dns.rcode.NOERROR:
            raise self.error(
                f"UPDATE of zone {zone} failed: "
                f"{dns.rcode.to_text(rc)}{self._hint(rc, zone, update=True)}"
            )
        # inline signing serves an UPDATE a moment after answering it: done once served
        limit = max(10.0, self.timeout * 4)
        if not self.poll(lambda: self.read_txt(zone, name) == new, limit):
            raise self.error(
                f"the UPDATE of the TXT RRset at {name} was answered but not served within "
                f"{limit:g}s; re-run to check"
            )
        return WriteToken()

    def _concurrent(self, change: ZoneChange, rc: dns.rcode.Rcode) -> ConcurrentChangeError:
        owners = [c.owner for c in change.changes]
        try:
            now = self.read(change.zone, owners)
            moved = [c.owner for c in change.changes if not _same(now.get(c.owner), c.old)]
        except ProviderError:
            moved = []
        moved = moved or owners
        where = str(moved[0]) + (f" (and {len(moved) - 1} more)" if len(moved) > 1 else "")
        return self.error(
            f"the TLSA RRset at {where} changed since it was read (concurrent change?; "
            f"prerequisite failed: {dns.rcode.to_text(rc)})",
            ConcurrentChangeError,
        )

    def _serves(self, zone: dns.name.Name, token: Served) -> bool:
        now = self.read(zone, [o for o, _ in token.expect])
        return all(_same(now.get(o), new, ttl=True) for o, new in token.expect)

    def is_live(self, zone: dns.name.Name, tokens: Sequence[WriteToken]) -> bool:
        """True once the primary serves what the write asked for (inline signing serves an
        update a moment after answering it)."""
        return all(self._serves(zone, t) for t in tokens if isinstance(t, Served))


def _same(a: TlsaRRset | None, b: TlsaRRset | None, ttl: bool = False) -> bool:
    ra = a.records if a else frozenset()
    rb = b.records if b else frozenset()
    if ra != rb:
        return False
    return not (ttl and a is not None and b is not None and a.ttl != b.ttl)


__all__ = ["RFC2136Provider", "Served"]
