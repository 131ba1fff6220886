"""Cloudflare DNS (``type: cloudflare``), through the v4 REST API with ``requests``.

The API token is never written in the config: ``api_token_env`` names an environment variable
holding it, or ``api_token_file`` a file holding it (exactly one of the two). It must be printable
ASCII without whitespace (what Cloudflare issues); it is kept in a
:class:`~tlsarotate.providers.base.Secret` and scrubbed from any error text. Messages name its
source, never the token.

Reads list ``GET /zones/{zone_id}/dns_records?type=TLSA`` page by page. TLSA records travel as
``data: {usage, selector, matching_type, certificate}``; Cloudflare answers the certificate hex in
upper case, parsed here case-insensitively. A record's TTL 1 means "automatic": the API stores and
returns 1, and Cloudflare serves it as 300 seconds. It is read as 1 (so a service configured with
``ttl: 1`` finds what it asked for, instead of re-writing it for ever), and :meth:`served_ttl`
gives the 300 the waits must count with. Other TTLs must be 60-86400 (``validate`` says so; 30
on Enterprise zones only, not accepted here).

Writes use ``POST /zones/{zone_id}/dns_records/batch``: ``deletes`` (by record id), ``patches``
(TTL of records that stay) and ``posts`` (new records), which Cloudflare runs in that order in one
database transaction, all-or-nothing. Only the records that differ are touched, so a record that
stays in the RRset is never deleted and re-created. Cloudflare has no prerequisites: ``apply``
re-reads the owners first and raises :class:`ConcurrentChangeError` before writing anything if
they differ from each ``OwnerChange.old``; a change landing between that read and the batch is
not detected (deletes by id of a record removed meanwhile do fail the batch). Cloudflare's
propagation to its edge is not atomic even within one batch (its documentation says so).

One batch request per :class:`ZoneChange`, unless the change needs more than ``batch_limit``
operations (200 on the Free plan, 3,500 on paid plans): then it is split into several batches at
owner boundaries, sent in order; each batch is atomic, the change as a whole is not.

429 and 5xx answers are retried (honouring ``Retry-After``; the context's clock and jitter), except
a batch POST: a 5xx, a timeout or a lost connection there may or may not have applied it, so the
batch's owners are read again: all as written means it was applied; all as read means it was not,
and it is sent once more; anything else is a :class:`ConcurrentChangeError` (which does not claim
that nothing was written). Other API errors are one line with Cloudflare's codes and messages;
401/403 name the token source.
All HTTP goes through ``self.session`` (a ``requests.Session``, created lazily); tests and the
fault-injection harness may pass ``session=`` or assign ``provider.session``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dns.exception
import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import Clock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError, RecordError
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    Secret,
    WriteResult,
    backoff_delay,
    check_private_file,
    one_line,
    read_secret,
)

DEFAULT_API = "https://api.cloudflare.com/client/v4"
PER_PAGE = 500
AUTO_TTL = 300  # what Cloudflare serves for a record whose TTL is 1 ("automatic")
MIN_TTL, MAX_TTL = 60, 86400  # the API's range besides 1 (30 on Enterprise zones)


class CloudflareApiError(ProviderError):
    """An API answer with ``success: false``; ``codes`` holds Cloudflare's error codes."""

    def __init__(self, message: str, status: int, codes: Sequence[int]) -> None:
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)


# Batch errors that mean another writer got there between our read and our batch:
# 81044 "Record does not exist." (a delete/patch by id), 81058 "An identical record already exists."
CONFLICT_CODES = frozenset({81044, 81058})


class _Unanswered(ProviderError):
    """A request that may or may not have been carried out: a 5xx answer, a timeout, a lost
    connection (raised instead of retrying when the request must not simply be repeated)."""


def _token_problem(value: str) -> str | None:
    if all(33 <= ord(c) <= 126 for c in value):
        return None
    return "the API token must be printable ASCII without whitespace (is it the right file?)"


@dataclass(frozen=True)
class CfRecord:
    id: str
    owner: dns.name.Name
    ttl: int
    rdata: TLSA


class CloudflareProvider(Provider):
    type_name: ClassVar[str] = "cloudflare"
    options: ClassVar[Mapping[str, Option]] = {
        "api_token_env": Option(str, help="environment variable holding the API token"),
        "api_token_file": Option(str, path=True, help="file holding the API token"),
        "zone_id": Option(str, help="Cloudflare zone id (default: looked up by the zone's name)"),
        "api_url": Option(str, default=DEFAULT_API, help="API base URL"),
        "batch_limit": Option(int, default=200, help="operations per batch request (plan limit)"),
        "timeout": Option(float, default=30.0, help="HTTP timeout in seconds"),
        "max_retries": Option(int, default=5, help="retries of 429 and 5xx answers (not batches)"),
    }
    # Each batch request is one transaction; a change needing more than batch_limit operations
    # is split (the instance's capabilities carry its own batch_limit).
    capabilities: ClassVar[Capabilities] = Capabilities(
        atomic=True, prerequisites=False, max_changes_per_write=200
    )

    backoff_base: float = 1.0
    backoff_cap: float = 30.0

    def __init__(
        self,
        name: str,
        options: Mapping[str, Any],
        context: ProviderContext | None = None,
        *,
        session: Any = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name, options, context or ProviderContext())
        limit = int(self.opts["batch_limit"])
        if limit < 1:
            raise ConfigError(f"provider {name!r}: batch_limit must be at least 1")
        self.batch_limit = limit
        self.capabilities = Capabilities(  # type: ignore[misc]
            atomic=True, prerequisites=False, max_changes_per_write=limit
        )
        self._session = session
        self.clock: Clock = clock or self.context.clock
        self.rng = rng or self.context.rng
        self._token: Secret[str] | None = None
        self._zone_ids: dict[dns.name.Name, str] = {}

    # -- configuration ----------------------------------------------------------------------

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        cls._read_token(options, None)
        if options.get("api_token_file") is not None:
            check_private_file(
                "api_token_file", Path(options["api_token_file"]), "edit the zone's records"
            )

    @classmethod
    def check_service(cls, options: Mapping[str, Any], zone: dns.name.Name, ttl: int) -> None:
        if ttl != 1 and not MIN_TTL <= ttl <= MAX_TTL:
            raise ConfigError(
                f"ttl {ttl}: Cloudflare accepts 1 (automatic) or {MIN_TTL}-{MAX_TTL} seconds"
            )

    def served_ttl(self, ttl: int) -> int:
        return AUTO_TTL if ttl == 1 else ttl

    @staticmethod
    def _read_token(options: Mapping[str, Any], base_dir: Path | None) -> Secret[str]:
        env, file = options.get("api_token_env"), options.get("api_token_file")
        if bool(env) == bool(file):
            raise ConfigError("set exactly one of api_token_env and api_token_file")
        path = None
        if file:
            path = Path(str(file))
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
        return read_secret(
            path,
            None if file else str(env),
            file_option="api_token_file",
            env_option="api_token_env",
            what="API token",
            check=_token_problem,
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the token (an exception's text may quote a header)."""
        if self._token is not None:
            text = text.replace(self._token.reveal(), "<token hidden>")
        return text

    def _err(self, msg: str) -> ProviderError:
        return ProviderError(self._scrub(f"provider {self.name!r} (cloudflare): {msg}"))

    @property
    def token_source(self) -> str:
        if self.opts.get("api_token_file"):
            return f"token file {self._token_path()}"
        return f"environment variable {self.opts.get('api_token_env')}"

    def _token_path(self) -> Path:
        p = Path(str(self.opts["api_token_file"]))
        return p if p.is_absolute() else self.context.base_dir / p

    def token(self) -> str:
        """The API token (read once, checked: printable ASCII, no whitespace)."""
        if self._token is None:
            try:
                self._token = self._read_token(self.opts, self.context.base_dir)
            except ConfigError as e:
                raise self._err(str(e)) from None
        return self._token.reveal()

    # -- HTTP -------------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                import requests
            except ImportError:
                raise self._err("needs requests: pip install 'tlsarotate[cloudflare]'") from None
            self._session = requests.Session()
        return self._session

    @session.setter
    def session(self, value: Any) -> None:
        self._session = value

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay: float | None = None
        if retry_after:
            try:
                delay = min(float(retry_after), 300.0)
            except ValueError:
                delay = None
        if delay is None:
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rng)
        self.clock.sleep(max(0.0, delay))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """One API call (with retries); returns the decoded envelope of a successful answer.

        ``repeatable=False`` (a batch POST): only 429 is retried (the request was not carried
        out); a 5xx answer, a timeout or a lost connection raise :class:`_Unanswered`."""
        try:
            import requests
        except ImportError:
            raise self._err("needs requests: pip install 'tlsarotate[cloudflare]'") from None
        url = str(self.opts["api_url"]).rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        what = f"{method} {path}"
        attempt = 0
        while True:
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=dict(params) if params else None,
                    json=body,
                    headers=headers,
                    timeout=float(self.opts["timeout"]),
                )
            except (requests.RequestException, ValueError) as e:
                # ValueError: a header requests or http.client refused (e.g. UnicodeEncodeError);
                # its text may quote the header, hence _err's scrubbing
                msg = f"{what} failed: {type(e).__name__}: {_short(self._scrub(str(e)))}"
                if not repeatable and isinstance(e, (requests.Timeout, requests.ConnectionError)):
                    raise _Unanswered(self._err(msg).args[0]) from None
                raise self._err(msg) from None
            status = int(resp.status_code)
            if not repeatable and status >= 500:
                raise _Unanswered(self._err(f"{what} failed: HTTP {status}").args[0])
            if (status == 429 or status >= 500) and attempt < int(self.opts["max_retries"]):
                self._wait(attempt, resp.headers.get("Retry-After"))
                attempt += 1
                continue
            try:
                data = resp.json()
            except ValueError:
                data = None
            errors = _errors(data)
            if status in (401, 403):
                raise self._err(
                    f"{what}: authentication failed (HTTP {status}"
                    f"{': ' + errors if errors else ''}); check the API token from "
                    f"{self.token_source}"
                )
            if status >= 400 or not isinstance(data, dict) or not data.get("success", False):
                detail = errors or (
                    f"unexpected answer {_short(resp.text)!r}" if data is None else ""
                )
                raise CloudflareApiError(
                    self._scrub(
                        f"provider {self.name!r} (cloudflare): {what} failed: HTTP {status}"
                        f"{': ' + detail if detail else ''}"
                    ),
                    status,
                    _codes(data),
                )
            return data

    # -- zone -------------------------------------------------------------------------------

    def zone_id(self, zone: dns.name.Name) -> str:
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        zid = self.opts.get("zone_id")
        if not zid:
            zname = zone.to_text(omit_final_dot=True)
            data = self.request("GET", "/zones", params={"name": zname})
            found = [
                z
                for z in data.get("result") or []
                if str(z.get("name", "")).lower() == zname.lower()
            ]
            if not found:
                raise self._err(f"no zone named {zname} (or the API token cannot see it)")
            if len(found) > 1:
                ids = ", ".join(str(z.get("id")) for z in found)
                raise self._err(f"{len(found)} zones are named {zname} ({ids}); set zone_id")
            zid = str(found[0]["id"])
        self._zone_ids[zone] = str(zid)
        return str(zid)

    # -- read -------------------------------------------------------------------------------

    def _parse(self, rec: Mapping[str, Any]) -> CfRecord:
        owner_text = str(rec.get("name", ""))
        try:
            owner = dns.name.from_text(owner_text)
            data = rec.get("data") or {}
            if data:
                text = (
                    f"{int(data['usage'])} {int(data['selector'])} "
                    f"{int(data['matching_type'])} {data['certificate']}"
                )
            else:
                text = str(rec["content"])
            rd = records.from_text(text)
        except (RecordError, KeyError, ValueError, TypeError, dns.exception.DNSException) as e:
            raise self._err(
                f"record {rec.get('id')} ({owner_text} TLSA): cannot parse: {_short(e)}"
            ) from None
        try:
            ttl = int(rec.get("ttl") or 1)
        except (TypeError, ValueError):
            raise self._err(f"record {rec.get('id')} ({owner_text} TLSA): bad TTL") from None
        return CfRecord(str(rec["id"]), owner, ttl, rd)

    def _read_records(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, list[CfRecord]]:
        zid = self.zone_id(zone)
        wanted = set(owners)
        params: dict[str, Any] = {"type": "TLSA", "per_page": PER_PAGE}
        if len(wanted) == 1:
            params["name"] = next(iter(wanted)).to_text(omit_final_dot=True)
        out: dict[dns.name.Name, list[CfRecord]] = {}
        page = 1
        while True:
            data = self.request("GET", f"/zones/{zid}/dns_records", params={**params, "page": page})
            for rec in data.get("result") or []:
                if str(rec.get("type", "")).upper() != "TLSA":
                    continue
                r = self._parse(rec)
                if r.owner in wanted:
                    out.setdefault(r.owner, []).append(r)
            info = data.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                return out
            page += 1

    @staticmethod
    def _rrset(recs: Sequence[CfRecord]) -> TlsaRRset:
        # Cloudflare keeps one TTL per record; an RRset has one (the smallest wins in DNS).
        return TlsaRRset.of(min(r.ttl for r in recs), [r.rdata for r in recs])

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        return {o: self._rrset(recs) for o, recs in self._read_records(zone, owners).items()}

    # -- write ------------------------------------------------------------------------------

    def _operations(
        self, ch: OwnerChange, current: Sequence[CfRecord]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        new = ch.new.records if ch.new else frozenset()
        ttl = ch.new.ttl if ch.new else 0
        deletes = [{"id": r.id} for r in current if r.rdata not in new]
        patches = [{"id": r.id, "ttl": ttl} for r in current if r.rdata in new and r.ttl != ttl]
        have = {r.rdata for r in current}
        posts = [
            {
                "type": "TLSA",
                "name": ch.owner.to_text(omit_final_dot=True),
                "ttl": ttl,
                "data": {
                    "usage": rd.usage,
                    "selector": rd.selector,
                    "matching_type": rd.mtype,
                    "certificate": rd.cert.hex(),
                },
            }
            for rd in sorted(new - have, key=records.sort_key)
        ]
        return deletes, patches, posts

    def apply(self, change: ZoneChange) -> WriteResult:
        if not change.changes:
            return WriteResult(token=None)
        zid = self.zone_id(change.zone)
        current = self._read_records(change.zone, [ch.owner for ch in change.changes])
        self.check_prerequisites(
            change, {o: self._rrset(recs) for o, recs in current.items() if recs}
        )
        batches: list[tuple[dict[str, list[dict[str, Any]]], list[OwnerChange]]] = []
        cur: dict[str, list[dict[str, Any]]] = {"deletes": [], "patches": [], "posts": []}
        group: list[OwnerChange] = []
        size = 0
        for ch in self.effective(change).changes:
            d, p, n = self._operations(ch, current.get(ch.owner, []))
            k = len(d) + len(p) + len(n)
            if not k:
                continue
            if k > self.batch_limit:
                raise self._err(
                    f"{ch.owner}: {k} record operations exceed batch_limit {self.batch_limit}"
                )
            if size + k > self.batch_limit:
                batches.append((cur, group))
                cur, group, size = {"deletes": [], "patches": [], "posts": []}, [], 0
            cur["deletes"] += d
            cur["patches"] += p
            cur["posts"] += n
            group.append(ch)
            size += k
        if size:
            batches.append((cur, group))
        for i, (batch, owners) in enumerate(batches):
            body = {k: v for k, v in batch.items() if v}
            try:
                self._send_batch(change.zone, zid, body, owners)
            except ProviderError as e:
                msg = str(e)
                if i:
                    msg += f" (batch {i + 1}; the {i} batch(es) before it were applied)"
                if isinstance(e, CloudflareApiError) and CONFLICT_CODES & set(e.codes):
                    raise ConcurrentChangeError(
                        f"{msg}; the TLSA records changed while we wrote"
                        + ("" if i else ", nothing was written")
                    ) from None
                if i:
                    raise type(e)(msg) from None
                raise
        return WriteResult(token=len(batches) or None)

    def _send_batch(
        self, zone: dns.name.Name, zid: str, body: dict[str, Any], group: Sequence[OwnerChange]
    ) -> None:
        """POST one batch. Its answer may be lost (5xx, timeout) after Cloudflare committed
        it, so it is never blindly repeated: the owners are read again instead."""
        path = f"/zones/{zid}/dns_records/batch"
        for attempt in range(2):
            try:
                self.request("POST", path, body=body, repeatable=False)
                return
            except _Unanswered as e:
                try:
                    now = self.read(zone, [ch.owner for ch in group])
                except ProviderError as re:
                    raise self._err(
                        f"{_strip_prefix(str(e))}; whether the batch was applied is unknown: the "
                        f"owners could not be read again ({_strip_prefix(str(re))}); re-run to "
                        "re-plan"
                    ) from None
                if all(now.get(ch.owner) == ch.new for ch in group):
                    return  # applied; only the answer was lost
                if all(now.get(ch.owner) == ch.old for ch in group):
                    if attempt == 0:
                        self._wait(0, None)
                        continue  # not applied: sending it again is safe
                    raise self._err(
                        f"{_strip_prefix(str(e))} (twice); the batch was not applied"
                    ) from None
                moved = next(ch.owner for ch in group if now.get(ch.owner) != ch.new)
                raise ConcurrentChangeError(
                    f"{e}; read again, the TLSA RRset at {moved} is neither what was read nor "
                    "what was written (a concurrent change?); re-run to re-plan"
                ) from None


def _strip_prefix(msg: str) -> str:
    """A provider error's text without its ``provider 'x' (cloudflare): `` prefix."""
    head, sep, rest = msg.partition(" (cloudflare): ")
    return rest if sep and head.startswith("provider ") else msg


def _short(e: object, n: int = 200) -> str:
    s = one_line(e)
    return s if len(s) <= n else s[: n - 1] + "…"


def _codes(data: Any) -> list[int]:
    if not isinstance(data, dict):
        return []
    out = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            code = err.get("code")
            if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
                out.append(int(code))
    return out


def _errors(data: Any) -> str:
    """``code: message; code: message`` from Cloudflare's ``errors`` list."""
    if not isinstance(data, dict):
        return ""
    parts = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            code, msg = err.get("code"), one_line(err.get("message", ""))
            parts.append(f"{code}: {msg}" if code is not None else msg)
        else:
            parts.append(one_line(err))
    return _short("; ".join(parts), 400)
