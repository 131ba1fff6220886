"""Amazon Route 53 (``type: route53``), through boto3.

Credentials come only from boto3's standard chain (environment, ``~/.aws`` profiles, instance
or container roles); the config may name a ``profile`` but never holds keys.

Writes: one ``ChangeResourceRecordSets`` change batch per :class:`ZoneChange`. For every owner
that changes, the batch DELETEs the exact values we read (``old``) and CREATEs the new ones, deletes
first. Route 53 applies a batch all-or-nothing and refuses a DELETE whose values differ from the
current ones and a CREATE of an existing RRset, so a concurrent change fails the batch
(``InvalidChangeBatch`` -> :class:`ConcurrentChangeError`) instead of being clobbered. That
guards only the owners that change, so the provider declares no native prerequisites: the base
workflow reads every owner just before the write and checks it first, so nothing is sent when
the RRsets already moved.

Limits (Route 53 API quotas on ChangeResourceRecordSets): at most 1,000 ResourceRecord elements
and 32,000 characters of Value text per request. A change beyond either limit (hundreds of owners
at once) is split at owner boundaries into several batches, sent in order; every owner's DELETE
and CREATE stay in one batch, so each owner changes atomically, but the change as a whole is only
atomic per batch. Each batch leaves a :class:`ChangeId` token.

:meth:`is_live` polls ``GetChange`` until the change is ``INSYNC`` (bounded by ``max_wait``).
``Throttling`` and ``PriorRequestNotComplete`` are retried with capped, jittered exponential
backoff; every other API error is one line naming the provider, the API call and AWS's code.

All AWS calls go through ``self.client`` (a boto3 Route 53 client from :mod:`tlsarotate.aws`,
created lazily); tests and the fault-injection harness may assign ``provider.client``. Time goes
through the context's clock so retries and polling can run on a fake clock. ``validate`` builds
the client (no network) so a bad ``profile``, ``region`` or ``endpoint_url`` is reported there,
naming the option.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import dns.exception
import dns.name
import dns.rdata

from tlsarotate import aws, records
from tlsarotate.change import OwnerChange, TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError, RecordError
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    WriteToken,
    one_line,
)

MAX_RECORDS_PER_BATCH = 1000  # ResourceRecord elements per ChangeResourceRecordSets request
MAX_VALUE_CHARS_PER_BATCH = 32000  # characters of all Value elements per request
RETRY_CODES = frozenset({"Throttling", "ThrottlingException", "PriorRequestNotComplete"})
AUTH_CODES = frozenset(
    {"InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied", "AccessDeniedException"}
    | {"ExpiredToken", "UnrecognizedClientException", "InvalidSignatureException"}
    | {"MissingAuthenticationToken"}
)
# InvalidChangeBatch messages that mean "the RRset is not what the batch assumed".
_CONFLICT_RE = re.compile(r"not found|do not match|already exists|does not exist", re.IGNORECASE)
_OCTAL_RE = re.compile(r"\\([0-7]{3})")
_DECIMAL_RE = re.compile(r"\\([0-9]{3})")


@dataclass(frozen=True)
class ChangeId(WriteToken):
    """A change batch's id, for ``GetChange`` (live once ``INSYNC``)."""

    id: str


class Route53ApiError(ProviderError):
    """An API call failed; ``code`` is AWS's error code (``NoSuchHostedZone``)."""

    def __init__(self, detail: str, *, code: str = "", **fields: Any) -> None:
        super().__init__(detail, **fields)
        self.code = code


class _Throttled(Exception):
    def __init__(self, error: Exception) -> None:
        self.error = error


def name_from_route53(text: str) -> dns.name.Name:
    """Route 53 writes special characters as octal ``\\ooo``; dnspython reads ``\\DDD`` decimal."""
    return dns.name.from_text(_OCTAL_RE.sub(lambda m: f"\\{int(m.group(1), 8):03d}", text))


def name_to_route53(name: dns.name.Name) -> str:
    return _DECIMAL_RE.sub(lambda m: f"\\{int(m.group(1)):03o}", name.to_text())


class Route53Provider(Provider):
    type_name: ClassVar[str] = "route53"
    options: ClassVar[Mapping[str, Option]] = {
        "hosted_zone_id": Option(str, help="hosted zone id (default: found by the zone's name)"),
        "profile": Option(str, help="AWS profile name from ~/.aws (default: the standard chain)"),
        "region": Option(str, default="us-east-1", help="AWS region for the API endpoint"),
        "endpoint_url": Option(str, help="API endpoint (tests: a moto_server URL)"),
        "poll_interval": Option(float, default=5.0, min=0, help="seconds between GetChange polls"),
        "max_wait": Option(float, default=120.0, min=0, help="longest is_live waits for INSYNC"),
        "max_retries": Option(int, default=8, min=0, help="retries of throttled API calls"),
        "timeout": Option(
            float, default=30.0, min=0, min_open=True, help="HTTP connect/read timeout in seconds"
        ),
    }
    # Atomic per change batch; changes beyond the per-request limits above are split by owner.
    capabilities: ClassVar[Capabilities] = Capabilities(atomic=True, prerequisites=False, txt=True)
    part_unit: ClassVar[str] = "change batch"

    page_size: int = 300  # ListResourceRecordSets MaxItems (Route 53's maximum)
    small_read: int = 4  # up to this many owners are read one targeted request each
    backoff_base: float = 0.5
    backoff_cap: float = 20.0

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self._client: Any = None
        self._zone_ids: dict[dns.name.Name, str] = {}

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = self._build_client(self.opts)
            except ConfigError as e:
                raise self.error(str(e)) from None
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        """Build the client from the options (no network call) so a bad ``profile``, ``region``
        or ``endpoint_url`` is reported by ``validate``, naming the option."""
        cls._build_client(options)

    @staticmethod
    def _build_client(opts: Mapping[str, Any]) -> Any:
        """A boto3 Route 53 client; :class:`ConfigError` starting with the option at fault."""
        url = opts.get("endpoint_url")
        if url is not None and not aws.is_endpoint_url(str(url)):
            raise ConfigError(f"{url!r} is not an http(s):// URL with a host", key="endpoint_url")
        profile = opts.get("profile")
        try:
            return aws.client(
                "route53",
                profile=profile,
                region=opts.get("region", "us-east-1"),
                endpoint_url=url,
                timeout=float(opts.get("timeout", 30.0)),
                retries=False,  # we retry ourselves
            )
        except ImportError:
            raise ConfigError("needs boto3: pip install 'tlsarotate[route53]'") from None
        except aws.ClientSetupError as e:
            if e.option == "profile" and type(e.error).__name__ == "ProfileNotFound":
                raise ConfigError(f"AWS profile {profile!r} not found", key="profile") from None
            if e.option == "profile":
                raise ConfigError(str(e), key="profile") from None
            if e.option is not None:
                raise ConfigError(e.text, key=e.option) from None
            raise ConfigError(f"cannot create the Route 53 client: {e.text}") from None

    def _call(self, op: str, **kwargs: Any) -> Any:
        """One API call through ``self.client``, retrying throttling; errors become one line."""
        import botocore.exceptions as bex

        method = getattr(self.client, op)
        api = "".join(part.capitalize() for part in op.split("_"))

        def once() -> Any:
            try:
                return method(**kwargs)
            except bex.ClientError as e:
                if aws.error_code(e)[0] in RETRY_CODES:
                    raise _Throttled(e) from None
                raise

        try:
            return self.retrying(
                api,
                once,
                attempts=int(self.opts["max_retries"]) + 1,
                retry_on=(_Throttled,),
                base=self.backoff_base,
                cap=self.backoff_cap,
            )
        except _Throttled as t:
            raise self._api_error(api, t.error) from None
        except bex.ClientError as e:
            raise self._api_error(api, e) from None
        except (bex.NoCredentialsError, bex.PartialCredentialsError):
            raise self.error(
                "no AWS credentials found (boto3's standard chain: environment, "
                "~/.aws profile, instance role)"
            ) from None
        except bex.BotoCoreError as e:
            raise self.error(f"{api} failed: {one_line(e)}") from None

    def _api_error(self, api: str, e: Exception) -> ProviderError:
        code, message, status = aws.error_code(e)
        if code in AUTH_CODES or status in (401, 403):
            prof = self.opts.get("profile")
            return self.error(
                f"{api} refused: authentication failed ({code or f'HTTP {status}'}: "
                f"{message or 'no message'}); check the AWS credentials "
                f"(standard chain{', profile ' + repr(prof) if prof else ''})"
            )
        if code == "InvalidChangeBatch" and _CONFLICT_RE.search(message):
            return self.error(
                f"the TLSA records changed since they were read ({message})",
                ConcurrentChangeError,
            )
        return self.error(
            f"{api} failed: {code or f'HTTP {status}'}: {message}", Route53ApiError, code=code
        )

    # -- hosted zone ------------------------------------------------------------------------

    def zone_id(self, zone: dns.name.Name) -> str:
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        zid = self.opts.get("hosted_zone_id")
        if zid:
            try:
                hz = self._call("get_hosted_zone", Id=zid)["HostedZone"]
            except Route53ApiError as e:
                if e.code == "NoSuchHostedZone":
                    raise self.error(f"hosted zone {zid!r} does not exist") from None
                raise
            if name_from_route53(hz["Name"]) != zone:
                raise self.error(
                    f"hosted zone {zid!r} is {hz['Name']}, not the service's zone {zone}"
                )
        else:
            found: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {"DNSName": name_to_route53(zone), "MaxItems": "100"}
            while True:
                page = self._call("list_hosted_zones_by_name", **kwargs)
                same = [z for z in page["HostedZones"] if name_from_route53(z["Name"]) == zone]
                found += same
                nxt = page.get("NextDNSName")
                if not page.get("IsTruncated") or not nxt or name_from_route53(nxt) != zone:
                    break
                kwargs = {"DNSName": nxt, "HostedZoneId": page["NextHostedZoneId"]}
                kwargs["MaxItems"] = "100"
            if not found:
                raise self.error(f"no hosted zone named {zone} (or the credentials cannot see it)")
            if len(found) > 1:
                which = ", ".join(
                    f"{'private' if z.get('Config', {}).get('PrivateZone') else 'public'} "
                    f"{z['Id'].rsplit('/', 1)[-1]}"
                    for z in found
                )
                raise self.error(
                    f"{len(found)} hosted zones are named {zone} ({which}); "
                    "set hosted_zone_id to choose one"
                )
            zid = found[0]["Id"]
        zid = str(zid).rsplit("/", 1)[-1]
        self._zone_ids[zone] = zid
        return zid

    # -- read -------------------------------------------------------------------------------

    def _parse(self, rrset: Mapping[str, Any]) -> TlsaRRset:
        owner = rrset["Name"]
        if "SetIdentifier" in rrset or "AliasTarget" in rrset:
            raise self.error(
                f"{owner} TLSA uses a routing policy or alias; tlsarotate manages only "
                "simple record sets"
            )
        try:
            rds = [records.from_text(rr["Value"]) for rr in rrset.get("ResourceRecords", [])]
        except RecordError as e:
            raise self.error(f"{owner}: {e}") from None
        return TlsaRRset.of(int(rrset.get("TTL", 0)), rds)

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        zid = self.zone_id(zone)
        wanted = set(owners)
        out: dict[dns.name.Name, TlsaRRset] = {}
        if len(wanted) <= self.small_read:
            for owner in sorted(wanted):
                page = self._call(
                    "list_resource_record_sets",
                    HostedZoneId=zid,
                    StartRecordName=name_to_route53(owner),
                    StartRecordType="TLSA",
                    MaxItems="1",
                )
                for rrset in page["ResourceRecordSets"][:1]:
                    if rrset["Type"] == "TLSA" and name_from_route53(rrset["Name"]) == owner:
                        out[owner] = self._parse(rrset)
            return out
        for owner, rrset in self._tlsa_sets(zid):
            if owner in wanted:
                out[owner] = self._parse(rrset)
        return out

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        return sorted({owner for owner, _ in self._tlsa_sets(self.zone_id(zone))})

    def _tlsa_sets(self, zid: str) -> Iterator[tuple[dns.name.Name, Mapping[str, Any]]]:
        """Every TLSA record set of the hosted zone, page by page, with its owner."""
        kwargs: dict[str, Any] = {"HostedZoneId": zid, "MaxItems": str(self.page_size)}
        while True:
            page = self._call("list_resource_record_sets", **kwargs)
            for rrset in page["ResourceRecordSets"]:
                if rrset["Type"] == "TLSA":
                    yield name_from_route53(rrset["Name"]), rrset
            if not page.get("IsTruncated"):
                return
            kwargs = {
                "HostedZoneId": zid,
                "MaxItems": str(self.page_size),
                "StartRecordName": page["NextRecordName"],
            }
            if page.get("NextRecordType"):
                kwargs["StartRecordType"] = page["NextRecordType"]
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    # -- write ------------------------------------------------------------------------------

    @staticmethod
    def _rrset(owner: dns.name.Name, rr: TlsaRRset) -> dict[str, Any]:
        return {
            "Name": name_to_route53(owner),
            "Type": "TLSA",
            "TTL": rr.ttl,
            "ResourceRecords": [{"Value": t} for t in rr.texts()],
        }

    def parts(self, change: ZoneChange) -> list[ZoneChange]:
        """The owners in groups that fit one change batch each (the per-request limits
        above), in order; ``change`` holds only owners that change."""
        out: list[ZoneChange] = []
        cur: list[OwnerChange] = []
        n_rr = n_chars = 0
        for ch in change.changes:
            sets = [s for s in (ch.old, ch.new) if s is not None]
            rr = sum(len(s.records) for s in sets)
            chars = sum(len(t) for s in sets for t in s.texts())
            if rr > MAX_RECORDS_PER_BATCH or chars > MAX_VALUE_CHARS_PER_BATCH:
                raise self.error(f"{ch.owner}: the TLSA RRset is too large for one change batch")
            if cur and (
                n_rr + rr > MAX_RECORDS_PER_BATCH or n_chars + chars > MAX_VALUE_CHARS_PER_BATCH
            ):
                out.append(ZoneChange(change.zone, tuple(cur)))
                cur, n_rr, n_chars = [], 0, 0
            cur.append(ch)
            n_rr += rr
            n_chars += chars
        if cur:
            out.append(ZoneChange(change.zone, tuple(cur)))
        return out

    def batch(self, part: ZoneChange) -> list[dict[str, Any]]:
        """The change batch for ``part``: each owner's DELETE of the values read and CREATE of
        the new ones, deletes first."""
        deletes = [
            {"Action": "DELETE", "ResourceRecordSet": self._rrset(ch.owner, ch.old)}
            for ch in part.changes
            if ch.old is not None
        ]
        creates = [
            {"Action": "CREATE", "ResourceRecordSet": self._rrset(ch.owner, ch.new)}
            for ch in part.changes
            if ch.new is not None
        ]
        return deletes + creates

    def write(self, part: ZoneChange) -> ChangeId:
        resp = self._call(
            "change_resource_record_sets",
            HostedZoneId=self.zone_id(part.zone),
            ChangeBatch={"Comment": "tlsarotate", "Changes": self.batch(part)},
        )
        return ChangeId(str(resp["ChangeInfo"]["Id"]))

    # -- TXT (a service's TLSRPT record) ---------------------------------------------------

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        page = self._call(
            "list_resource_record_sets",
            HostedZoneId=self.zone_id(zone),
            StartRecordName=name_to_route53(name),
            StartRecordType="TXT",
            MaxItems="1",
        )
        for rrset in page["ResourceRecordSets"][:1]:
            if rrset["Type"] == "TXT" and name_from_route53(rrset["Name"]) == name:
                if "SetIdentifier" in rrset or "AliasTarget" in rrset:
                    raise self.error(
                        f"{name} TXT uses a routing policy or alias; tlsarotate manages only "
                        "simple record sets"
                    )
                try:
                    recs = [
                        dns.rdata.from_text("IN", "TXT", rr["Value"]).strings  # type: ignore[attr-defined]
                        for rr in rrset.get("ResourceRecords", [])
                    ]
                except dns.exception.DNSException as e:
                    raise self.error(f"{name}: a TXT value Route 53 holds: {e}") from None
                return TxtRRset.of(int(rrset.get("TTL", 0)), recs)
        return None

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> ChangeId:
        """One change batch: DELETE of exactly the values read (Route 53 refuses the whole
        batch when they differ), CREATE of the new ones."""

        def rrset(rr: TxtRRset) -> dict[str, Any]:
            values = [{"Value": t} for t in rr.texts()]
            return {
                "Name": name_to_route53(name),
                "Type": "TXT",
                "TTL": rr.ttl,
                "ResourceRecords": values,
            }

        changes = [{"Action": "DELETE", "ResourceRecordSet": rrset(old)}] if old else []
        changes += [{"Action": "CREATE", "ResourceRecordSet": rrset(new)}] if new else []
        try:
            resp = self._call(
                "change_resource_record_sets",
                HostedZoneId=self.zone_id(zone),
                ChangeBatch={"Comment": "tlsarotate", "Changes": changes},
            )
        except ConcurrentChangeError:
            raise self.error(
                f"the TXT RRset at {name} changed since it was read", ConcurrentChangeError
            ) from None
        return ChangeId(str(resp["ChangeInfo"]["Id"]))

    def is_live(self, zone: dns.name.Name, tokens: Sequence[WriteToken]) -> bool:
        """Poll GetChange until every change batch is INSYNC or ``max_wait`` has passed."""
        pending = [t.id for t in tokens if isinstance(t, ChangeId)]
        clock = self.context.clock
        deadline = clock.now() + float(self.opts["max_wait"])
        while pending:
            pending = [
                cid
                for cid in pending
                if self._call("get_change", Id=cid)["ChangeInfo"]["Status"] != "INSYNC"
            ]
            if not pending:
                break
            if clock.now() >= deadline:
                return False
            clock.sleep(min(float(self.opts["poll_interval"]), max(0.0, deadline - clock.now())))
        return True
