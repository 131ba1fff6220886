"""Cloudflare DNS (``type: cloudflare``), through the v4 REST API with ``requests``.

The API token is never written in the config: ``api_token_env`` names an environment variable
holding it, or ``api_token_file`` a file holding it (exactly one of the two). It must be printable
ASCII without whitespace (what Cloudflare issues); it is kept in a
:class:`~tlsarotate.providers.secrets.Secret` and scrubbed from any error text. Messages name its
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
stays in the RRset is never deleted and re-created. Cloudflare has no prerequisites
(``Capabilities(prerequisites=False)``): the base workflow re-reads the owners first and raises
:class:`ConcurrentChangeError` before writing anything if they differ from each
``OwnerChange.old``; the batches delete the record ids that read found. A change landing between
that read and the batch is not detected (deletes by id of a record removed meanwhile do fail the
batch). Cloudflare's propagation to its edge is not atomic even within one batch (its
documentation says so).

One batch request per :class:`ZoneChange`, unless the change needs more than ``batch_limit``
operations (200 on the Free plan, 3,500 on paid plans): then it is split into several batches at
owner boundaries, sent in order; each batch is atomic, the change as a whole is not.

HTTP, retries and error answers are :mod:`tlsarotate.providers.cloudflare_api`'s. A batch POST
is never retried blindly: a 5xx, a timeout or a lost connection there may or may not have
applied it, so the batch's owners are read again: all as written means it was applied; all as
read means it was not, and it is sent once more; anything else is a
:class:`ConcurrentChangeError` (which does not claim that nothing was written). All HTTP goes
through ``self.session`` (a ``requests.Session``, created lazily); tests and the
fault-injection harness may assign ``provider.session``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dns.exception
import dns.name
import dns.rdata
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError, RecordError
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    WriteToken,
)
from tlsarotate.providers.cloudflare_api import (
    CloudflareApi,
    CloudflareApiError,
    Unanswered,
    short,
)
from tlsarotate.providers.limits import Limits
from tlsarotate.providers.secrets import Secret, check_private_file, read_secret
from tlsarotate.retry import backoff_delay

DEFAULT_API = "https://api.cloudflare.com/client/v4"
PER_PAGE = 500
AUTO_TTL = 300  # what Cloudflare serves for a record whose TTL is 1 ("automatic")
MIN_TTL, MAX_TTL = 60, 86400  # the API's range besides 1 (30 on Enterprise zones)
# Batch errors that mean another writer got there between our read and our batch:
# 81044 "Record does not exist." (a delete/patch by id), 81058 "An identical record already exists."
CONFLICT_CODES = frozenset({81044, 81058})


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
        "batch_limit": Option(
            int, default=200, min=1, help="operations per batch request (plan limit)"
        ),
        "timeout": Option(
            float, default=30.0, min=0, min_open=True, help="HTTP timeout in seconds"
        ),
        "max_retries": Option(
            int, default=5, min=0, help="retries of 429 and 5xx answers (not batches)"
        ),
    }
    # Each batch request is one transaction; a change needing more than batch_limit operations
    # is split (the instance's capabilities carry its own batch_limit).
    capabilities: ClassVar[Capabilities] = Capabilities(
        atomic=True, prerequisites=False, max_changes_per_write=200, txt=True
    )
    part_unit: ClassVar[str] = "batch"
    # 1 is "automatic" (served as 300); 30 on Enterprise zones only, not accepted here
    limits: ClassVar[Limits] = Limits(min_ttl=MIN_TTL, max_ttl=MAX_TTL, ttl_values={1: "automatic"})
    label: ClassVar[str] = "Cloudflare"

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.batch_limit = int(self.opts["batch_limit"])
        self.capabilities = Capabilities(  # type: ignore[misc]
            atomic=True, prerequisites=False, max_changes_per_write=self.batch_limit, txt=True
        )
        self.api = CloudflareApi(
            self,
            str(self.opts["api_url"]),
            timeout=float(self.opts["timeout"]),
            max_retries=int(self.opts["max_retries"]),
            token=self._load_token,
            token_source=self.token_source,
        )
        self._zone_ids: dict[dns.name.Name, str] = {}
        self._seen: dict[dns.name.Name, list[CfRecord]] = {}  # the records the last read found

    # -- configuration ----------------------------------------------------------------------

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        cls._read_token(options)
        if options.get("api_token_file") is not None:
            check_private_file(
                "api_token_file", Path(options["api_token_file"]), "edit the zone's records"
            )

    def served_ttl(self, ttl: int) -> int:
        return AUTO_TTL if ttl == 1 else ttl

    @staticmethod
    def _read_token(options: Mapping[str, Any]) -> Secret[str]:
        env, file = options.get("api_token_env"), options.get("api_token_file")
        if bool(env) == bool(file):
            raise ConfigError("set exactly one of api_token_env and api_token_file")
        return read_secret(
            Path(str(file)) if file else None,
            None if file else str(env),
            file_option="api_token_file",
            env_option="api_token_env",
            what="API token",
            check=_token_problem,
        )

    def _load_token(self) -> Secret[str]:
        try:
            return self._read_token(self.opts)
        except ConfigError as e:
            raise self.error(str(e)) from None

    @property
    def token_source(self) -> str:
        if self.opts.get("api_token_file"):
            return f"token file {self.opts['api_token_file']}"
        return f"environment variable {self.opts.get('api_token_env')}"

    def token(self) -> str:
        """The API token (read once, checked: printable ASCII, no whitespace)."""
        return self.api.token()

    @property
    def session(self) -> Any:
        """The ``requests.Session`` all HTTP goes through (made on first use)."""
        return self.api.session

    @session.setter
    def session(self, value: Any) -> None:
        self.api.session = value

    def close(self) -> None:
        self.api.close()

    # -- zone -------------------------------------------------------------------------------

    def zone_id(self, zone: dns.name.Name) -> str:
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        zid = self.opts.get("zone_id")
        if not zid:
            zname = zone.to_text(omit_final_dot=True)
            data = self.api.request("GET", "/zones", params={"name": zname})
            found = [
                z
                for z in data.get("result") or []
                if str(z.get("name", "")).lower() == zname.lower()
            ]
            if not found:
                raise self.error(f"no zone named {zname} (or the API token cannot see it)")
            if len(found) > 1:
                ids = ", ".join(str(z.get("id")) for z in found)
                raise self.error(f"{len(found)} zones are named {zname} ({ids}); set zone_id")
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
            raise self.error(
                f"record {rec.get('id')} ({owner_text} TLSA): cannot parse: {short(e)}"
            ) from None
        try:
            ttl = int(rec.get("ttl") or 1)
        except (TypeError, ValueError):
            raise self.error(f"record {rec.get('id')} ({owner_text} TLSA): bad TTL") from None
        return CfRecord(str(rec["id"]), owner, ttl, rd)

    def _read_records(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name] | None
    ) -> dict[dns.name.Name, list[CfRecord]]:
        """The TLSA records of ``owners`` (None: of every owner), by owner."""
        zid = self.zone_id(zone)
        wanted = None if owners is None else set(owners)
        params: dict[str, Any] = {"type": "TLSA", "per_page": PER_PAGE}
        if wanted is not None and len(wanted) == 1:
            params["name"] = next(iter(wanted)).to_text(omit_final_dot=True)
        out: dict[dns.name.Name, list[CfRecord]] = {}
        page = 1
        while True:
            data = self.api.request(
                "GET", f"/zones/{zid}/dns_records", params={**params, "page": page}
            )
            for rec in data.get("result") or []:
                if str(rec.get("type", "")).upper() != "TLSA":
                    continue
                r = self._parse(rec)
                if wanted is None or r.owner in wanted:
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
        found = self._read_records(zone, owners)
        for o in owners:
            self._seen[o] = found.get(o, [])
        return {o: self._rrset(recs) for o, recs in found.items()}

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        return sorted(self._read_records(zone, None))

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

    def parts(self, change: ZoneChange) -> list[ZoneChange]:
        """Owners in groups of at most ``batch_limit`` record operations (deletes, patches,
        posts against the records the check just read), in order; owners needing none are
        left out."""
        out: list[ZoneChange] = []
        group: list[OwnerChange] = []
        size = 0
        for ch in change.changes:
            k = sum(map(len, self._operations(ch, self._seen.get(ch.owner, []))))
            if not k:
                continue
            if k > self.batch_limit:
                raise self.error(
                    f"{ch.owner}: {k} record operations exceed batch_limit {self.batch_limit}"
                )
            if size + k > self.batch_limit:
                out.append(ZoneChange(change.zone, tuple(group)))
                group, size = [], 0
            group.append(ch)
            size += k
        if group:
            out.append(ZoneChange(change.zone, tuple(group)))
        return out

    def write(self, part: ZoneChange) -> WriteToken:
        """One batch POST for ``part`` (live once it answers: Cloudflare has no sync state)."""
        body: dict[str, list[dict[str, Any]]] = {"deletes": [], "patches": [], "posts": []}
        for ch in part.changes:
            d, p, n = self._operations(ch, self._seen.get(ch.owner, []))
            body["deletes"] += d
            body["patches"] += p
            body["posts"] += n
        try:
            self._send_batch(
                part.zone,
                self.zone_id(part.zone),
                {k: v for k, v in body.items() if v},
                part.changes,
            )
        except CloudflareApiError as e:
            if CONFLICT_CODES & set(e.codes):
                raise self.error(
                    f"{e.detail}; the TLSA records changed while we wrote", ConcurrentChangeError
                ) from None
            raise
        return WriteToken()

    # -- TXT (a service's TLSRPT record) ---------------------------------------------------

    def _txt_records(
        self, zone: dns.name.Name, name: dns.name.Name
    ) -> list[tuple[str, int, tuple[bytes, ...]]]:
        """The TXT records at ``name``: (id, TTL, character-strings) each."""
        params = {"type": "TXT", "name": name.to_text(omit_final_dot=True), "per_page": PER_PAGE}
        data = self.api.request("GET", f"/zones/{self.zone_id(zone)}/dns_records", params=params)
        out = []
        for rec in data.get("result") or []:
            if str(rec.get("type", "")).upper() != "TXT":
                continue
            try:
                if dns.name.from_text(str(rec.get("name", ""))) != name:
                    continue
                out.append((str(rec["id"]), int(rec.get("ttl") or 1), _txt_strings(rec["content"])))
            except (KeyError, ValueError, TypeError, dns.exception.DNSException) as e:
                raise self.error(
                    f"record {rec.get('id')} ({name} TXT): cannot parse: {short(e)}"
                ) from None
        return out

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        recs = self._txt_records(zone, name)
        if not recs:
            return None
        return TxtRRset.of(min(ttl for _, ttl, _ in recs), [r for _, _, r in recs])

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> WriteToken:
        """One batch: the records not in ``new`` deleted, the new ones posted (the kept ones
        get the new TTL), against the records just read (apply_txt checked them)."""
        current = self._txt_records(zone, name)
        want = new.records if new else frozenset()
        ttl = new.ttl if new else 1
        body = {
            "deletes": [{"id": i} for i, _, r in current if r not in want],
            "patches": [{"id": i, "ttl": ttl} for i, t, r in current if r in want and t != ttl],
            "posts": [
                {"type": "TXT", "name": name.to_text(omit_final_dot=True), "ttl": ttl, "content": t}
                for t in TxtRRset(ttl, want - {r for _, _, r in current}).texts()
            ],
        }
        try:
            self.api.request(
                "POST",
                f"/zones/{self.zone_id(zone)}/dns_records/batch",
                body={k: v for k, v in body.items() if v},
                repeatable=False,
            )
        except CloudflareApiError as e:
            if CONFLICT_CODES & set(e.codes):
                raise self.error(
                    f"{e.detail}; the TXT records at {name} changed while we wrote",
                    ConcurrentChangeError,
                ) from None
            raise
        return WriteToken()

    def _send_batch(
        self, zone: dns.name.Name, zid: str, body: dict[str, Any], group: Sequence[OwnerChange]
    ) -> None:
        """POST one batch. Its answer may be lost (5xx, timeout) after Cloudflare committed
        it, so it is never blindly repeated: the owners are read again instead."""
        path = f"/zones/{zid}/dns_records/batch"
        for attempt in range(2):
            try:
                self.api.request("POST", path, body=body, repeatable=False)
                return
            except Unanswered as e:
                try:
                    now = self.read(zone, [ch.owner for ch in group])
                except ProviderError as re:
                    raise self.error(
                        f"{e.detail}; whether the batch was applied is unknown: the owners could "
                        f"not be read again ({re.detail}); re-run to re-plan"
                    ) from None
                if all(now.get(ch.owner) == ch.new for ch in group):
                    return  # applied; only the answer was lost
                if all(now.get(ch.owner) == ch.old for ch in group):
                    if attempt == 0:
                        self.context.clock.sleep(
                            backoff_delay(
                                0, self.api.backoff_base, self.api.backoff_cap, self.context.rng
                            )
                        )
                        continue  # not applied: sending it again is safe
                    raise self.error(f"{e.detail} (twice); the batch was not applied") from None
                moved = next(ch.owner for ch in group if now.get(ch.owner) != ch.new)
                raise self.error(
                    f"{e.detail}; read again, the TLSA RRset at {moved} is neither what was read "
                    "nor what was written (a concurrent change?)",
                    ConcurrentChangeError,
                    unwritten=False,
                ) from None


def _txt_strings(content: object) -> tuple[bytes, ...]:
    """A TXT record's character-strings from its API ``content``: zone-file text
    (``"a" "b"``), or one unquoted string (cut at 255 bytes, as served)."""
    text = str(content)
    if text.startswith('"'):
        return tuple(dns.rdata.from_text("IN", "TXT", text).strings)  # type: ignore[attr-defined]
    raw = text.encode()
    return tuple(raw[i : i + 255] for i in range(0, len(raw), 255)) or (b"",)
