"""RFC 2136 dynamic updates (BIND, Knot, PowerDNS, ...) signed with TSIG (RFC 8945).

One :class:`~tlsarotate.change.ZoneChange` becomes one UPDATE message over TCP to the primary,
unless it does not fit in one DNS message (65,535 bytes); then it is split into as few UPDATEs as
fit, each atomic. Every owner's ``old`` RRset is sent as a prerequisite (RFC 2136 §2.4), that of
an owner that stays as it is too: "RRset does not exist" when we read none, else "RRset exists
with exactly these records" (value-dependent). A failed prerequisite (NXRRSET/YXRRSET) means
someone changed the RRset since we read it: :class:`~tlsarotate.errors.ConcurrentChangeError`,
nothing written. A change in which every owner stays as it is sends nothing.

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

The TSIG secret is kept in a :class:`~tlsarotate.providers.base.Secret` whose ``repr`` hides it;
it never appears in an error message, a log line or ``repr(provider)``. Option errors start with
the option's name (``tsig_key_file: PATH: ...``) so ``validate`` points at its line.

Testing and fault injection: every network exchange goes through :meth:`RFC2136Provider._send`
(one attempt, one message) and is counted in :attr:`RFC2136Provider.sent` by opcode
(``"UPDATE"``, ``"QUERY"``, ``"AXFR"``). Retries and polls sleep through :attr:`clock` (the
context's :class:`tlsarotate.clock.Clock`; tests may assign another) with jitter from
:attr:`rng` (the context's).
"""

from __future__ import annotations

import base64
import binascii
import collections
import ipaddress
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from tlsarotate.change import TlsaRRset, ZoneChange
from tlsarotate.clock import Clock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.fsutil import read_text
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    Secret,
    WriteResult,
    backoff_delay,
    check_private_file,
    read_secret,
)

log = logging.getLogger(__name__)

ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
}
DEFAULT_ALGORITHM = "hmac-sha256"
MAX_MESSAGE = 65535  # a DNS message over TCP (RFC 1035 §4.2.2 length field)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
SERVED_AFTER_RETRY = 3.0  # seconds a retried UPDATE may take to be served (inline signing)


class TsigKey:
    """A TSIG key: name, algorithm and the hidden secret. ``repr`` never shows the secret."""

    def __init__(self, name: str, algorithm: str, secret: Secret[bytes], source: str) -> None:
        self.name = dns.name.from_text(name)
        self.algorithm = algorithm
        self.secret = secret
        self.source = source  # "FILE" or "env VAR", for messages

    def dns_key(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret.reveal(), ALGORITHMS[self.algorithm])

    @property
    def label(self) -> str:
        return self.name.to_text(omit_final_dot=True)

    def __repr__(self) -> str:
        return f"TsigKey({self.label!r}, {self.algorithm!r}, from {self.source})"


# Comments (/* */, //, #) outside quoted strings: a quoted string is matched first and kept
# (group 1), so a base64 secret holding "//" survives.
_COMMENTS = re.compile(r'("(?:[^"\\]|\\.)*")|/\*.*?\*/|//[^\n]*|#[^\n]*', re.S)
_KEY_BLOCK = re.compile(r'\bkey\s+("[^"]+"|[^\s{;]+)\s*\{(.*?)\}\s*;', re.S)


def _strip_comments(text: str) -> str:
    return _COMMENTS.sub(lambda m: m.group(1) or " ", text)


def _base64_problem(text: str) -> str | None:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "the TSIG secret is not valid base64"
    return None if raw else "the TSIG secret is empty"


def _decode_secret(text: str, where: str, key: str | None = None) -> Secret[bytes]:
    problem = _base64_problem(text)
    if problem:
        raise ConfigError(f"{where}: {problem}", key=key)
    return Secret(base64.b64decode(text.strip(), validate=True))


def _check_algorithm(alg: str, key: str, where: str | None = None) -> str:
    """The algorithm's canonical name (case, quotes and a final dot do not matter); an error
    is about option ``key`` (at ``where`` in its file)."""
    a = str(alg).strip().strip('"').lower().rstrip(".")
    if a not in ALGORITHMS:
        raise ConfigError(
            (f"{where}: " if where else "")
            + f"TSIG algorithm {alg!r} is not supported (use one of {', '.join(ALGORITHMS)})",
            key=key,
        )
    return a


def parse_key_file(path: Path, want: str | None = None) -> TsigKey:
    """Read a BIND key file (``key "NAME" { algorithm ALG; secret "B64"; };``).

    ``want`` picks a key by name when the file holds several. Errors are one line naming the
    file and never showing the secret."""
    opt, where = "tsig_key_file", str(path)
    try:
        text = read_text(path, "BIND key file")
    except ConfigError as e:
        raise ConfigError(e.message, key=opt) from None
    blocks = _KEY_BLOCK.findall(_strip_comments(text))
    if not blocks:
        raise ConfigError(
            f'{where}: no key found (expected key "NAME" {{ algorithm hmac-sha256; '
            'secret "..."; }; as written by tsig-keygen)',
            key=opt,
        )
    keys: dict[str, str] = {n.strip('"').rstrip(".").lower(): body for n, body in blocks}
    if want is not None:
        w = want.rstrip(".").lower()
        if w not in keys:
            raise ConfigError(f"{where}: no key named {want!r} (found: {', '.join(keys)})", key=opt)
        name, body = w, keys[w]
    elif len(keys) > 1:
        raise ConfigError(f"{where}: holds {len(keys)} keys; set tsig_name to pick one", key=opt)
    else:
        name, body = next(iter(keys.items()))
    alg_m = re.search(r"\balgorithm\s+([^;\s]+)\s*;", body)
    sec_m = re.search(r'\bsecret\s+"([^"]*)"\s*;', body)
    if not alg_m:
        raise ConfigError(f"{where}: key {name!r} has no algorithm", key=opt)
    if not sec_m:
        raise ConfigError(f"{where}: key {name!r} has no secret", key=opt)
    alg = _check_algorithm(alg_m.group(1), opt, f"{where}: key {name!r}")
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException:
        raise ConfigError(f"{where}: key name {name!r} is not a valid DNS name", key=opt) from None
    secret = _decode_secret(sec_m.group(1), f"{where}: key {name!r}", opt)
    return TsigKey(name, alg, secret, str(path))


def load_key(
    options: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> TsigKey | None:
    """The TSIG key the options describe (None: send unsigned updates)."""
    env = os.environ if environ is None else environ
    key_file = options.get("tsig_key_file")
    name = options.get("tsig_name")
    alg = options.get("tsig_algorithm")
    sfile = options.get("tsig_secret_file")
    senv = options.get("tsig_secret_env")
    if key_file is not None:
        if sfile is not None or senv is not None:
            raise ConfigError(
                "holds the secret already; drop tsig_secret_file/tsig_secret_env",
                key="tsig_key_file",
            )
        key = parse_key_file(Path(key_file), name)
        if alg is not None and _check_algorithm(alg, "tsig_algorithm") != key.algorithm:
            raise ConfigError(
                f"{alg!r} does not match the {key.algorithm} key in {key_file}",
                key="tsig_algorithm",
            )
        return key
    if name is None:
        if sfile is not None or senv is not None or alg is not None:
            raise ConfigError(
                "required with tsig_secret_file/tsig_secret_env/tsig_algorithm", key="tsig_name"
            )
        return None
    try:
        dns.name.from_text(str(name))
    except dns.exception.DNSException:
        raise ConfigError(f"{name!r} is not a valid DNS name", key="tsig_name") from None
    algorithm = _check_algorithm(alg or DEFAULT_ALGORITHM, "tsig_algorithm")
    if (sfile is None) == (senv is None):
        raise ConfigError(
            "set exactly one of tsig_secret_file or tsig_secret_env with it (or use tsig_key_file)",
            key="tsig_name",
        )
    text = read_secret(
        sfile,
        None if sfile is not None else str(senv),
        file_option="tsig_secret_file",
        env_option="tsig_secret_env",
        what="TSIG secret",
        environ=env,
        check=_base64_problem,
    )
    source = str(sfile) if sfile is not None else f"env {senv}"
    return TsigKey(str(name), algorithm, _decode_secret(text.reveal(), source), source)


def _rdataset(rr: TlsaRRset) -> dns.rdataset.Rdataset:
    rds = dns.rdataset.Rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA)
    for rd in rr.sorted():
        rds.add(rd, rr.ttl)
    return rds


class RFC2136Provider(Provider):
    type_name: ClassVar[str] = "rfc2136"
    options: ClassVar[Mapping[str, Option]] = {
        "server": Option(str, required=True, help="IP address of the primary server"),
        "port": Option(int, default=53, help="port of the primary server"),
        "tsig_key_file": Option(
            str, path=True, help="BIND key file as written by tsig-keygen (name, algorithm, secret)"
        ),
        "tsig_name": Option(str, help="TSIG key name (with tsig_secret_file/_env)"),
        "tsig_algorithm": Option(
            str, help=f"TSIG algorithm: {', '.join(ALGORITHMS)} (default {DEFAULT_ALGORITHM})"
        ),
        "tsig_secret_file": Option(str, path=True, help="file holding the base64 TSIG secret"),
        "tsig_secret_env": Option(str, help="environment variable holding the base64 secret"),
        "timeout": Option((int, float), default=5.0, help="seconds per attempt"),
        "retries": Option(
            int, default=3, help="attempts in all on a timeout or refused connection (1: no retry)"
        ),
        "read": Option(str, default="query", choices=("query", "axfr"), help="how to read"),
    }
    capabilities: ClassVar[Capabilities] = Capabilities(
        atomic=True, prerequisites=True, max_changes_per_write=None
    )

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        for k in ("tsig_key_file", "tsig_secret_file"):
            if self.opts.get(k) is not None and not Path(self.opts[k]).is_absolute():
                self.opts[k] = Path(context.base_dir) / self.opts[k]
        try:
            self._check_server(self.opts)
            self.key = load_key(self.opts)
        except ConfigError as e:
            raise ConfigError(f"provider {name}: {e}") from None
        self.server = str(self.opts["server"])
        self.port = int(self.opts.get("port", 53))
        self.timeout = float(self.opts.get("timeout", 5.0))
        self.retries = int(self.opts.get("retries", 3))  # _check_server: 1 to 20
        self.read_mode = str(self.opts.get("read", "query"))
        self.clock: Clock = context.clock
        self.rng = context.rng
        self.sent: collections.Counter[str] = collections.Counter()

    # ---- config ------------------------------------------------------------------------
    @staticmethod
    def _check_server(options: Mapping[str, Any]) -> None:
        server = options.get("server")
        try:
            ipaddress.ip_address(str(server))
        except ValueError:
            raise ConfigError(f"{server!r} is not an IP address", key="server") from None
        port = options.get("port", 53)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"{port!r} is not a port number (1-65535)", key="port")
        retries = options.get("retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= 20:
            raise ConfigError(f"{retries!r}: expected 1 to 20 attempts in all", key="retries")
        timeout = options.get("timeout", 5.0)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= 300
        ):
            raise ConfigError(f"{timeout!r}: expected 0 < seconds <= 300", key="timeout")

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

    def _prefix(self) -> str:
        return f"rfc2136 provider {self.name} ({self.where})"

    # ---- the network -------------------------------------------------------------------
    def _send(self, message: dns.message.Message) -> dns.message.Message:
        """ONE attempt: send ``message`` over TCP to the server and return the answer.

        The only place that touches the network for UPDATE and QUERY (AXFR goes through
        :meth:`_transfer`); tests and the fault harness wrap or replace it."""
        self.sent[dns.opcode.to_text(message.opcode())] += 1
        return dns.query.tcp(message, self.server, timeout=self.timeout, port=self.port)

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

    def _retrying(self, what: str, fn: Any) -> Any:
        """Call ``fn()`` up to ``retries`` times on timeouts / refused connections, sleeping
        a capped, jittered exponential backoff in between."""
        last = ""
        for attempt in range(self.retries):
            if attempt:
                self.clock.sleep(backoff_delay(attempt - 1, BACKOFF_BASE, BACKOFF_CAP, self.rng))
            try:
                return fn()
            except dns.exception.Timeout:
                last = f"timeout after {self.timeout:g}s"
            except ConnectionRefusedError:
                last = "connection refused"
            except (ConnectionResetError, EOFError, BrokenPipeError):
                last = "connection closed by the server"
            except OSError as e:
                last = e.strerror or type(e).__name__
            log.debug("%s: %s attempt %d failed: %s", self._prefix(), what, attempt + 1, last)
        raise ProviderError(
            f"{self._prefix()}: no answer to {what} after {self.retries} attempt(s) ({last})"
        )

    def _exchange(self, message: dns.message.Message, what: str) -> dns.message.Message:
        try:
            return self._retrying(what, lambda: self._send(message))  # type: ignore[no-any-return]
        except dns.tsig.PeerError as e:
            raise self._tsig_error(e, what) from None
        except (dns.tsig.BadSignature, dns.tsig.BadKey, dns.tsig.BadAlgorithm, dns.tsig.BadTime):
            raise ProviderError(
                f"{self._prefix()}: the answer to {what} failed TSIG verification with key "
                f"{self._key_label()}"
            ) from None
        except dns.exception.FormError:
            raise ProviderError(f"{self._prefix()}: malformed answer to {what}") from None

    def _key_label(self) -> str:
        return repr(self.key.label) if self.key else "(none)"

    def _tsig_error(self, e: dns.tsig.PeerError, what: str) -> ProviderError:
        key = self._key_label()
        if isinstance(e, dns.tsig.PeerBadSignature):
            why = f"NOTAUTH/BADSIG: the server rejected the signature of key {key} (wrong secret?)"
        elif isinstance(e, dns.tsig.PeerBadKey):
            why = f"NOTAUTH/BADKEY: the server does not know key {key} (name or algorithm)"
        elif isinstance(e, dns.tsig.PeerBadTime):
            why = (
                f"NOTAUTH/BADTIME: the server rejected key {key}'s timestamp: the clocks of this "
                "host and the server differ (clock skew; check NTP)"
            )
        else:
            why = f"NOTAUTH: TSIG error for key {key}"
        return ProviderError(f"{self._prefix()}: {what}: TSIG authentication failed: {why}")

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
            raise ProviderError(f"{self._prefix()}: owner {owner} is not in zone {zone}")

    def _query_owner(self, zone: dns.name.Name, owner: dns.name.Name) -> TlsaRRset | None:
        q = dns.message.make_query(owner, dns.rdatatype.TLSA)
        q.flags = 0  # RD=0: ask the primary itself
        key = self._dns_key()
        if key is not None:
            q.use_tsig(key)
        r = self._exchange(q, f"the TLSA query for {owner}")
        rc = r.rcode()
        if rc == dns.rcode.NXDOMAIN:
            return None
        if rc != dns.rcode.NOERROR:
            raise ProviderError(
                f"{self._prefix()}: TLSA query for {owner} answered "
                f"{dns.rcode.to_text(rc)}{self._rcode_hint(rc, zone, update=False)}"
            )
        if not r.flags & dns.flags.AA:
            raise ProviderError(
                f"{self._prefix()}: not authoritative for {owner} (no AA flag): is the server "
                f"the primary of zone {zone}?"
            )
        for rrset in r.answer:
            if rrset.name == owner and rrset.rdtype == dns.rdatatype.TLSA:
                return TlsaRRset.from_rdataset(rrset)
        return None

    def _read_axfr(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        try:
            z = self._retrying(f"the AXFR of {zone}", lambda: self._transfer(zone))
        except dns.tsig.PeerError as e:
            raise self._tsig_error(e, f"the AXFR of {zone}") from None
        except dns.xfr.TransferError as e:
            rc = e.rcode
            raise ProviderError(
                f"{self._prefix()}: AXFR of {zone} answered {dns.rcode.to_text(rc)}"
                + (" (allow-transfer must allow the TSIG key)" if rc == dns.rcode.REFUSED else "")
            ) from None
        except dns.exception.FormError:
            raise ProviderError(f"{self._prefix()}: malformed AXFR of {zone}") from None
        out: dict[dns.name.Name, TlsaRRset] = {}
        for owner in owners:
            rds = z.get_rdataset(owner, dns.rdatatype.TLSA)
            if rds is not None and len(rds):
                out[owner] = TlsaRRset.from_rdataset(rds)
        return out

    # ---- write -------------------------------------------------------------------------
    def build_update(self, change: ZoneChange) -> dns.update.UpdateMessage:
        """The UPDATE message for ``change``: every owner's prerequisite (those that stay as
        they are too), then the deletes and adds of the owners that change."""
        upd = dns.update.UpdateMessage(change.zone)
        for ch in change.changes:
            self._check_owner(change.zone, ch.owner)
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
        key = self._dns_key()
        if key is not None:
            upd.use_tsig(key)
        return upd

    def apply(self, change: ZoneChange) -> WriteResult:
        """One UPDATE for the whole change -- unless it does not fit in one DNS message
        (65,535 bytes: about 700 owners with one record each); then it is split into as few
        UPDATEs as fit, each atomic for the owners it carries (a failed one stops the rest, and
        the engine re-reads and re-plans). Owners that stay as they are still carry their
        prerequisite; a change where every owner stays sends nothing."""
        if not self.effective(change):
            return WriteResult(token=())
        token: tuple[Any, ...] = ()
        parts = self._parts(change)
        for i, part in enumerate(parts):
            try:
                done = self._apply_one(part)
            except ProviderError as e:
                if not i:
                    raise
                msg = str(e).replace("nothing was written", "this part was not written")
                raise type(e)(
                    f"{msg} (UPDATE {i + 1} of {len(parts)}; the {i} before it were applied)"
                ) from None
            token += done
            if i < len(parts) - 1:
                # BIND's inline signing can drop an UPDATE that arrives while it still signs
                # the previous one (seen: "receive_secure_serial: unchanged"); send the next
                # part only once this one is served
                limit = max(10.0, self.timeout * 4)
                if not self._wait_served(change.zone, done, limit):
                    raise ProviderError(
                        f"{self._prefix()}: part of a split UPDATE of zone {change.zone} was "
                        f"answered but not served within {limit:g}s; re-run to re-plan"
                    )
        return WriteResult(token=token)

    def _wait_served(self, zone: dns.name.Name, token: tuple[Any, ...], limit: float) -> bool:
        """Poll until the primary serves ``token`` (True) or ``limit`` seconds passed."""
        waited, step = 0.0, 0.1
        while not self._serves(zone, token):
            if waited >= limit:
                return False
            self.clock.sleep(step)
            waited += step
        return True

    def _fits(self, change: ZoneChange) -> int | None:
        try:
            return len(self.build_update(change).to_wire(max_size=MAX_MESSAGE))
        except dns.exception.TooBig:
            return None

    def _parts(self, change: ZoneChange) -> list[ZoneChange]:
        """As few owner groups as fit in one message each, owners in order: each part is the
        longest run of owners that still fits, found by encoding (a binary search; sizes do
        not add up, as name compression only reaches the first 16 KiB of a message)."""
        if self._fits(change) is not None:
            return [change]
        out: list[ZoneChange] = []
        rest = list(change.changes)
        while rest:
            if self._fits(ZoneChange(change.zone, tuple(rest[:1]))) is None:
                raise ProviderError(
                    f"{self._prefix()}: the change at {rest[0].owner} does not fit in one "
                    f"{MAX_MESSAGE}-byte UPDATE message"
                )
            lo, hi = 1, len(rest)  # rest[:lo] fits; fitting is monotone in the prefix length
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._fits(ZoneChange(change.zone, tuple(rest[:mid]))) is not None:
                    lo = mid
                else:
                    hi = mid - 1
            out.append(ZoneChange(change.zone, tuple(rest[:lo])))
            rest = rest[lo:]
        return out

    def _apply_one(self, change: ZoneChange) -> tuple[Any, ...]:
        upd = self.build_update(change)
        log.debug(
            "%s: UPDATE %s: %d owner(s), %d bytes",
            self._prefix(),
            change.zone,
            len(change.changes),
            len(upd.to_wire(max_size=MAX_MESSAGE)),
        )
        attempts_before = self.sent["UPDATE"]
        r = self._exchange(upd, f"the UPDATE of zone {change.zone}")
        rc = r.rcode()
        token = tuple((c.owner, c.new) for c in change.changes)
        if rc == dns.rcode.NOERROR:
            return token
        if rc in (dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN):
            retried = self.sent["UPDATE"] - attempts_before > 1
            if retried and self._wait_served(change.zone, token, SERVED_AFTER_RETRY):
                # an earlier attempt whose answer was lost did apply the change (inline
                # signing serves it a moment after applying it: polled briefly)
                return token
            raise self._concurrent(change, rc)
        raise ProviderError(
            f"{self._prefix()}: UPDATE of zone {change.zone} failed: "
            f"{dns.rcode.to_text(rc)}{self._rcode_hint(rc, change.zone, update=True)}"
        )

    def _concurrent(self, change: ZoneChange, rc: dns.rcode.Rcode) -> ConcurrentChangeError:
        owners = [c.owner for c in change.changes]
        try:
            now = self.read(change.zone, owners)
            moved = [c.owner for c in change.changes if not _same(now.get(c.owner), c.old)]
        except ProviderError:
            moved = []
        moved = moved or owners
        where = str(moved[0]) + (f" (and {len(moved) - 1} more)" if len(moved) > 1 else "")
        return ConcurrentChangeError(
            f"{self._prefix()}: the TLSA RRset at {where} changed since it was read "
            f"(concurrent change?; prerequisite failed: {dns.rcode.to_text(rc)}); nothing was "
            "written; re-run to re-plan"
        )

    def _rcode_hint(self, rc: dns.rcode.Rcode, zone: dns.name.Name, update: bool) -> str:
        if rc == dns.rcode.REFUSED:
            if not update:
                return f" (is the server authoritative for {zone}, and does allow-query permit us?)"
            if self.key is None:
                return (
                    " (the UPDATE was sent without a TSIG key; configure tsig_key_file, or allow "
                    f"this host in allow-update / update-policy of zone {zone})"
                )
            return (
                f" (key {self._key_label()} may not update these names: check allow-update / "
                f"update-policy of zone {zone} on the server)"
            )
        if rc == dns.rcode.NOTAUTH:
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

    def _serves(self, zone: dns.name.Name, token: Any) -> bool:
        owners = [o for o, _ in token]
        now = self.read(zone, owners)
        return all(_same(now.get(o), new, ttl=True) for o, new in token)

    def is_live(self, zone: dns.name.Name, result: WriteResult) -> bool:
        """True once the primary serves what the write asked for (inline signing serves an
        update a moment after answering it)."""
        if not result.token:
            return True
        return self._serves(zone, result.token)


def _same(a: TlsaRRset | None, b: TlsaRRset | None, ttl: bool = False) -> bool:
    ra = a.records if a else frozenset()
    rb = b.records if b else frozenset()
    if ra != rb:
        return False
    return not (ttl and a is not None and b is not None and a.ttl != b.ttl)


__all__ = ["RFC2136Provider", "TsigKey", "load_key", "parse_key_file"]
