# ruff: noqa: F811
"""The contract every DNS provider keeps, run against each provider on a real or faithful backend.

How to add a provider to this suite
-----------------------------------
Add an entry to ``PROVIDER_FACTORIES`` (bottom of the "factories" section): a name -> a
*factory*, a generator function decorated with ``contextlib.contextmanager`` that takes the
pytest ``request`` (use ``request.getfixturevalue("tmp_path")``, or a session fixture that starts
a server, e.g. BIND from tests/support/servers.py) and yields a :class:`Case`:

- ``provider``: a ready provider instance, talking to a backend whose zone ``zone`` exists and
  holds no TLSA records,
- ``zone``: the zone's name,
- ``helpers`` (:class:`Helpers`):
  - ``writes()``: how many write calls the provider has made so far (count them at the backend or
    with a wrapper around the provider's injectable client/session/runner),
  - ``second_writer(owner, rrset_or_None)``: change an owner's TLSA RRset behind the provider's
    back (another client, direct file edit, a second UPDATE...),
  - ``bad_auth()``: a context manager yielding a provider whose credentials are refused
    (default ``None``: the provider has no authentication, e.g. zonefile/memory); ``secrets``
    lists the strings that must never appear in its error,
  - ``missing_zone``: a zone name the backend does not have (default ``missing.test.``),
  - ``expected_writes(change)``: how many write calls ``apply(change)`` must make: 1, unless the
    provider documents splitting beyond a limit (Route 53: 1,000 values / 32,000 value characters
    per batch; Cloudflare: ``batch_limit`` operations per batch; RFC 2136: one 65,535-byte DNS
    message), computed from that documented limit, never from the provider's own code.

The ``case`` fixture is parametrised over ``sorted(PROVIDER_FACTORIES)``: today ``rfc2136``
(real BIND), ``rfc2136-knot`` (real knotd, tests/support/knot.py), ``octodns-bind``
(octodns_bind.Rfc2136Provider on the same BIND),
``octodns-powerdns`` (a real pdns_server, tests/support/powerdns.py), ``route53``
(moto_server), ``cloudflare`` (tests/support/fake_cloudflare.py),
``zonefile``,
``memory`` and ``plugin-example`` (tests/support/plugin_example, loaded by its entry point).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.opcode
import dns.rcode
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tests.support import fake_cloudflare, moto_server, plugins
from tests.support.fake_cloudflare import FakeCloudflare
from tests.support.helpers import assert_one_line, rd
from tests.support.knot import KnotServer, knot, knot_server  # noqa: F401  (real knotd)
from tests.support.moto_server import DUMMY_SECRET, CountingClient, moto_post, raw_client
from tests.support.powerdns import powerdns, powerdns_server  # noqa: F401  (octodns-powerdns)
from tests.support.servers import bind, bind_servers  # noqa: F401  (real BIND for rfc2136)
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ProviderError
from tlsarotate.providers import Provider, ProviderContext

# fixtures from tests/support/moto_server.py (a real moto_server over HTTP)
moto_url = moto_server.moto_url
route53_env = moto_server.route53_env
cf_server = fake_cloudflare.cf_server  # the fake Cloudflare API (session scope)
plugin_dir = plugins.plugin_dir  # tests/support/plugin_example installed in a temporary directory
plugin_installed = plugins.plugin_installed

ZONE = dns.name.from_text("example.test.")
MISSING = dns.name.from_text("missing.test.")  # a zone no backend has


def rr(ttl: int, *rds: TLSA) -> TlsaRRset:
    return TlsaRRset.of(ttl, rds)


def owner(host: str, port: int = 25) -> dns.name.Name:
    return records.owner_name(f"{host}.example.test", port)


@dataclass
class Helpers:
    writes: Callable[[], int]
    second_writer: Callable[[dns.name.Name, TlsaRRset | None], None]
    bad_auth: Callable[[], AbstractContextManager[Provider]] | None = None
    missing_zone: dns.name.Name = MISSING
    expected_writes: Callable[[ZoneChange], int] = lambda change: 1
    secrets: Sequence[str] = field(default_factory=tuple)
    # the TXT RRset at a name changed behind the provider's back (None: the provider has no
    # TXT support, ``capabilities.txt`` is False)
    txt_writer: Callable[[dns.name.Name, TxtRRset | None], object] | None = None
    # a known product bug, reported: a change too big for one write is split into more writes
    # than needed (the outcome is still checked; only the count is excused)


@dataclass
class Case:
    provider: Provider
    zone: dns.name.Name
    helpers: Helpers


Factory = Callable[[pytest.FixtureRequest], AbstractContextManager[Case]]

# ---------------------------------------------------------------------------------- factories


def route53_expected_writes(change: ZoneChange) -> int:
    """From Route 53's documented per-request limits (1,000 values, 32,000 value characters)."""
    values = chars = 0
    for ch in change.changes:
        for s in (ch.old, ch.new):
            if s is not None and ch.old != ch.new:
                values += len(s.records)
                chars += sum(len(t) for t in s.texts())
    return max(1, math.ceil(values / 1000), math.ceil(chars / 32000))


@contextlib.contextmanager
def route53_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    from tlsarotate.providers.route53 import Route53Provider

    url = request.getfixturevalue("route53_env")
    raw: Any = raw_client(url)
    zid = raw.create_hosted_zone(Name="example.test.", CallerReference="contract")["HostedZone"][
        "Id"
    ]
    opts = {"endpoint_url": url, "poll_interval": 0.01, "max_wait": 1.0}
    prov = Route53Provider("r53", opts, ProviderContext())
    counting = CountingClient(prov.client)  # the provider's own client, built from the options
    prov.client = counting

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        cur = raw.list_resource_record_sets(
            HostedZoneId=zid, StartRecordName=o.to_text(), StartRecordType="TLSA", MaxItems="1"
        )["ResourceRecordSets"]
        changes: list[dict[str, Any]] = []
        if cur and cur[0]["Type"] == "TLSA" and dns.name.from_text(cur[0]["Name"]) == o:
            changes.append({"Action": "DELETE", "ResourceRecordSet": cur[0]})
        if new is not None:
            changes.append(
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": o.to_text(),
                        "Type": "TLSA",
                        "TTL": new.ttl,
                        "ResourceRecords": [{"Value": t} for t in new.texts()],
                    },
                }
            )
        raw.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": changes})

    def txt_writer(name: dns.name.Name, new: TxtRRset | None) -> None:
        cur = raw.list_resource_record_sets(
            HostedZoneId=zid, StartRecordName=name.to_text(), StartRecordType="TXT", MaxItems="1"
        )["ResourceRecordSets"]
        changes: list[dict[str, Any]] = []
        if cur and cur[0]["Type"] == "TXT" and dns.name.from_text(cur[0]["Name"]) == name:
            changes.append({"Action": "DELETE", "ResourceRecordSet": cur[0]})
        if new is not None:
            values = [{"Value": t} for t in new.texts()]
            rrset = {
                "Name": name.to_text(),
                "Type": "TXT",
                "TTL": new.ttl,
                "ResourceRecords": values,
            }
            changes.append({"Action": "CREATE", "ResourceRecordSet": rrset})
        if changes:
            raw.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": changes})

    @contextlib.contextmanager
    def bad_auth() -> Iterator[Provider]:
        moto_post(url, "/moto-api/reset-auth", b"0")  # moto now checks IAM credentials
        try:
            yield Route53Provider("r53", {"endpoint_url": url}, ProviderContext())
        finally:
            moto_post(url, "/moto-api/reset-auth", b"inf")

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: counting.calls.count("change_resource_record_sets"),
            second_writer=second_writer,
            bad_auth=bad_auth,
            expected_writes=route53_expected_writes,
            secrets=(DUMMY_SECRET,),
            txt_writer=txt_writer,
        ),
    )


CF_TOKEN = "cf-contract-token-5e4d3c2b1a"


@contextlib.contextmanager
def cloudflare_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    from tlsarotate.providers.cloudflare import CloudflareProvider

    fake: FakeCloudflare = request.getfixturevalue("cf_server")
    mp: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    fake.reset()
    fake.tokens = {CF_TOKEN}
    zid = fake.add_zone("example.test")
    mp.setenv("TLSAROTATE_TEST_CF_TOKEN", CF_TOKEN)
    prov = CloudflareProvider(
        "cf", {"api_token_env": "TLSAROTATE_TEST_CF_TOKEN", "api_url": fake.url}, ProviderContext()
    )

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        name = o.to_text(omit_final_dot=True)
        for rec in fake.list_records(zid):
            if rec["name"] == name and rec["type"] == "TLSA":
                fake.delete_record(zid, rec["id"])
        for r in new.sorted() if new else []:
            fake.put_record(
                zid,
                {
                    "type": "TLSA",
                    "name": name,
                    "ttl": new.ttl if new else 1,
                    "data": {
                        "usage": r.usage,
                        "selector": r.selector,
                        "matching_type": r.mtype,
                        "certificate": r.cert.hex(),
                    },
                },
            )

    def txt_writer(name: dns.name.Name, new: TxtRRset | None) -> None:
        text = name.to_text(omit_final_dot=True)
        for rec in fake.list_records(zid):
            if rec["name"] == text and rec["type"] == "TXT":
                fake.delete_record(zid, rec["id"])
        if new is not None:
            for t in new.texts():
                fake.put_record(zid, {"type": "TXT", "name": text, "ttl": new.ttl, "content": t})

    @contextlib.contextmanager
    def bad_auth() -> Iterator[Provider]:
        mp.setenv("TLSAROTATE_TEST_CF_BAD", "cf-wrong-token-0a9b8c7d")
        yield CloudflareProvider(
            "cf",
            {"api_token_env": "TLSAROTATE_TEST_CF_BAD", "api_url": fake.url},
            ProviderContext(),
        )

    def expected(change: ZoneChange) -> int:
        ops = sum(len(ch.added) + len(ch.removed) for ch in change.changes)
        return max(1, math.ceil(ops / prov.batch_limit))

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=fake.writes,
            second_writer=second_writer,
            bad_auth=bad_auth,
            expected_writes=expected,
            secrets=(CF_TOKEN, "cf-wrong-token-0a9b8c7d"),
            txt_writer=txt_writer,
        ),
    )


@contextlib.contextmanager
def plugin_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """The third-party example provider (tests/support/plugin_example), loaded by its entry
    point."""
    import json

    from tlsarotate.providers import get_class

    request.getfixturevalue("plugin_installed")
    tmp = request.getfixturevalue("tmp_path")
    store = tmp / "zones.json"
    store.write_text(json.dumps({"zones": {"example.test.": {}}}))
    prov: Any = get_class("example")("ex", {"path": "zones.json"}, ProviderContext(base_dir=tmp))

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        data = json.loads(store.read_text())
        zone = data["zones"]["example.test."]
        zone.pop(o.to_text(), None)
        if new is not None:
            zone[o.to_text()] = {"ttl": new.ttl, "records": new.texts()}
        store.write_text(json.dumps(data))

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: int(prov.writes),
            second_writer=second_writer,
        ),
    )


ZONE_TEXT = """$TTL 300
$ORIGIN example.test.
@   IN SOA ns1 hostmaster ( 2026010100 3600 600 86400 300 )
    IN NS ns1
ns1 IN A 127.0.0.1
"""


@contextlib.contextmanager
def zonefile_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """The zone-file backend on a real file; every write runs its reload command once."""
    import subprocess

    from tlsarotate.providers.zonefile import ZoneFileProvider

    tmp = request.getfixturevalue("tmp_path")
    path = tmp / "example.test.zone"
    path.write_text(ZONE_TEXT)
    reloads: list[list[str]] = []

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        reloads.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    ctx = ProviderContext(base_dir=tmp, runner=runner)
    prov = ZoneFileProvider("zf", {"path": str(path), "reload": ["rndc", "reload"]}, ctx)
    other = ZoneFileProvider("other", {"path": str(path)}, ProviderContext(base_dir=tmp))

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        cur = other.read(ZONE, [o]).get(o)
        other.apply(ZoneChange(ZONE, (OwnerChange(o, cur, new),)))

    def txt_writer(name: dns.name.Name, new: TxtRRset | None) -> None:  # a hand edit
        import dns.zone

        z = dns.zone.from_text(path.read_text(), ZONE, relativize=False)
        z.delete_rdataset(name, "TXT")
        if new is not None:
            z.replace_rdataset(name, new.to_rdataset())
        soa = z.find_rdataset(ZONE, "SOA")
        soa.add(soa[0].replace(serial=soa[0].serial + 1), soa.ttl)  # type: ignore[attr-defined]
        path.write_text(z.to_text(relativize=False))

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: len(reloads),
            second_writer=second_writer,
            txt_writer=txt_writer,
        ),
    )


@contextlib.contextmanager
def memory_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    from tlsarotate.providers.memory import MemoryProvider

    prov = MemoryProvider("mem", {"zones": ["example.test."]}, ProviderContext())

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        prov.set(ZONE, o, new)

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: len(prov.writes),
            second_writer=second_writer,
            txt_writer=lambda name, new: prov.set_txt(ZONE, name, new),
        ),
    )


def rfc2136_expected_writes(change: ZoneChange, keyring: Any) -> int:
    """From RFC 2136 and the provider's documented limit, not from its code: one UPDATE per
    change, unless it does not fit in one 65,535-byte DNS message; then as few as fit. Built
    here with dnspython: per owner the old RRset as prerequisite, delete, add; TSIG-signed
    with the test key. Whether a group fits is decided by encoding it (name compression stops
    working past 16 KiB, so sizes do not add up), and the fewest messages for the owners in
    order is found greedily: each takes the longest run of owners that still fits."""
    import dns.exception
    import dns.rdataset
    import dns.update

    def fits(owners: Sequence[OwnerChange]) -> bool:
        upd = dns.update.UpdateMessage(change.zone, keyring=keyring)
        for ch in owners:
            if ch.old is None:
                upd.absent(ch.owner, "TLSA")
            else:
                upd.present(ch.owner, dns.rdataset.from_rdata_list(0, list(ch.old.records)))
                upd.delete(ch.owner, "TLSA")
            if ch.new is not None:
                upd.add(ch.owner, dns.rdataset.from_rdata_list(ch.new.ttl, list(ch.new.records)))
        try:
            upd.to_wire()  # at most 65,535 bytes
        except dns.exception.TooBig:
            return False
        return True

    rest = [ch for ch in change.changes if ch.old != ch.new]  # the others need no UPDATE
    messages = 0
    while rest:
        assert fits(rest[:1]), f"{rest[0].owner} alone does not fit in one message"
        lo, hi = 1, len(rest)  # the longest prefix that fits (fitting is monotone)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(rest[:mid]) else (lo, mid - 1)
        messages += 1
        rest = rest[lo:]
    return messages


@contextlib.contextmanager
def rfc2136_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """RFC 2136 UPDATEs to a real BIND primary (TSIG, inline DNSSEC signing)."""
    from tests.support.servers import wait_until
    from tlsarotate.providers import ProviderContext
    from tlsarotate.providers.base import WriteResult
    from tlsarotate.providers.rfc2136 import RFC2136Provider

    bind = request.getfixturevalue("bind")
    tmp = request.getfixturevalue("tmp_path")

    class Live(RFC2136Provider):
        """apply() returns once the primary serves the change (inline signing lags the
        UPDATE's answer by a moment) -- what the engine's is_live poll does."""

        def apply(self, change: ZoneChange) -> WriteResult:
            res = super().apply(change)
            wait_until(lambda: self.is_live(change.zone, res.tokens), 90, "the primary to serve it")
            return res

    opts = bind.provider_options(timeout=30.0, read="axfr")  # one transfer reads 1,000 owners
    prov = Live("bind", opts, ProviderContext(base_dir=tmp))
    # a write is an UPDATE the server applied (one refused on its prerequisite changed nothing)
    applied = {"n": 0}
    send = prov._send

    def counting_send(message: Any) -> Any:
        r = send(message)
        if message.opcode() == dns.opcode.UPDATE and r.rcode() == dns.rcode.NOERROR:
            applied["n"] += 1
        return r

    prov._send = counting_send  # type: ignore[method-assign]

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        def build(m: Any) -> None:
            m.delete(o, "TLSA")
            if new is not None:
                for t in new.texts():
                    m.add(o, new.ttl, "TLSA", t)

        bind.update(ZONE, build=build)

    secret_file = tmp / "wrong.secret"
    secret_file.write_text("d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBzZWNyZXQ=\n")

    @contextlib.contextmanager
    def bad_auth() -> Iterator[Provider]:
        opts = bind.provider_options(
            tsig_key_file=None, tsig_name=bind.key_name, tsig_secret_file=secret_file, retries=1
        )
        opts.pop("tsig_key_file")
        yield RFC2136Provider("bind", opts, ProviderContext(base_dir=tmp))

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: applied["n"],
            second_writer=second_writer,
            bad_auth=bad_auth,
            expected_writes=lambda change: rfc2136_expected_writes(change, bind.keyring),
            secrets=(bind.key_secret, "d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBzZWNyZXQ="),
            txt_writer=lambda name, new: bind.update(ZONE, build=update_txt(name, new)),
        ),
    )


def update_txt(name: dns.name.Name, new: TxtRRset | None) -> Callable[[Any], None]:
    """An UPDATE's contents making the TXT RRset at ``name`` ``new``: another client."""

    def build(m: Any) -> None:
        m.delete(name, "TXT")
        if new is not None:
            m.add(name, new.to_rdataset())

    return build


OCTO_TSIG_ENV = "TLSAROTATE_TEST_OCTO_TSIG"
OCTO_PDNS_ENV = "TLSAROTATE_TEST_OCTO_PDNS_KEY"
WRONG_TSIG = "d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBzZWNyZXQ="


def octodns_live(prov: Any) -> None:
    """Make ``prov.apply`` return once the backend's own read holds the change (BIND's inline
    signing lags the UPDATE's answer by a moment) -- what the engine's is_live poll does."""
    from tests.support.servers import wait_until

    apply = prov.apply

    def live_apply(change: ZoneChange) -> Any:
        res = apply(change)
        wait_until(lambda: prov.is_live(change.zone, res.tokens), 90, "the backend to serve it")
        return res

    prov.apply = live_apply


@contextlib.contextmanager
def octodns_bind_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """octodns-bind's Rfc2136Provider (AXFR to read, RFC 2136 UPDATE to write) through the
    octodns provider, on the real BIND primary (TSIG, inline DNSSEC signing)."""
    import dns.query

    from tlsarotate.providers.octodns import OctoDnsProvider

    bind = request.getfixturevalue("bind")
    mp: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    mp.setenv(OCTO_TSIG_ENV, bind.key_secret)

    def options(secret_env: str = OCTO_TSIG_ENV) -> dict[str, Any]:
        return {
            "class": "octodns_bind.Rfc2136Provider",
            "options": {
                "host": "127.0.0.1",
                "port": bind.port,
                "key_name": bind.key_name,
                "key_secret": f"env/{secret_env}",
                "key_algorithm": "hmac-sha256",
                "timeout": 30,
            },
        }

    prov: Any = OctoDnsProvider("octo-bind", options(), ProviderContext())
    octodns_live(prov)
    # a write is an UPDATE that octoDNS sent and the server applied
    applied = {"n": 0, "inside": False}
    octo_apply, tcp = prov.octo.apply, dns.query.tcp

    def counting_apply(plan: Any) -> Any:
        applied["inside"] = True
        try:
            return octo_apply(plan)
        finally:
            applied["inside"] = False

    def counting_tcp(message: Any, *args: Any, **kwargs: Any) -> Any:
        r = tcp(message, *args, **kwargs)
        if applied["inside"] and message.opcode() == dns.opcode.UPDATE:
            applied["n"] += r.rcode() == dns.rcode.NOERROR
        return r

    prov.octo.apply = counting_apply
    mp.setattr(dns.query, "tcp", counting_tcp)

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        def build(m: Any) -> None:
            m.delete(o, "TLSA")
            if new is not None:
                for t in new.texts():
                    m.add(o, new.ttl, "TLSA", t)

        bind.update(ZONE, build=build)

    @contextlib.contextmanager
    def bad_auth() -> Iterator[Provider]:
        mp.setenv("TLSAROTATE_TEST_OCTO_WRONG", WRONG_TSIG)
        yield OctoDnsProvider("octo-bind", options("TLSAROTATE_TEST_OCTO_WRONG"), ProviderContext())

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: applied["n"],
            second_writer=second_writer,
            bad_auth=bad_auth,
            # octodns-bind documents one UPDATE per update_batch_size (default 1000) changes,
            # one change per owner whose RRset changes
            expected_writes=lambda change: max(
                1, math.ceil(sum(c.old != c.new for c in change.changes) / 1000)
            ),
            secrets=(bind.key_secret, WRONG_TSIG),
            txt_writer=lambda name, new: bind.update(ZONE, build=update_txt(name, new)),
        ),
    )


@contextlib.contextmanager
def octodns_powerdns_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """octodns-powerdns's PowerDnsProvider (the HTTP API: GET to read, one PATCH per plan)
    through the octodns provider, on a real pdns_server with a signed zone."""
    from tests.support.powerdns import PowerDns
    from tlsarotate.providers.octodns import OctoDnsProvider

    pdns: PowerDns = request.getfixturevalue("powerdns")
    mp: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    mp.setenv(OCTO_PDNS_ENV, pdns.api_key)

    def options(key_env: str = OCTO_PDNS_ENV) -> dict[str, Any]:
        opts = pdns.octodns_options()
        opts.pop("api_key")
        return {
            "class": "octodns_powerdns.PowerDnsProvider",
            "options": {**opts, "api_key_env": key_env},
        }

    prov: Any = OctoDnsProvider("octo-pdns", options(), ProviderContext())
    patches = {"n": 0}
    request_fn = prov.octo._sess.request

    def counting_request(method: str, *args: Any, **kwargs: Any) -> Any:
        r = request_fn(method, *args, **kwargs)
        patches["n"] += method == "PATCH" and r.status_code < 300
        return r

    prov.octo._sess.request = counting_request

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        pdns.set_tlsa(o, new.ttl if new else 300, new.texts() if new else None)

    def txt_writer(name: dns.name.Name, new: TxtRRset | None) -> None:
        change: dict[str, Any] = {"name": name.to_text(), "type": "TXT"}
        if new is None:
            pdns.patch([{**change, "changetype": "DELETE"}])
            return
        recs = [{"content": t, "disabled": False} for t in new.texts()]
        pdns.patch([{**change, "ttl": new.ttl, "changetype": "REPLACE", "records": recs}])

    @contextlib.contextmanager
    def bad_auth() -> Iterator[Provider]:
        mp.setenv("TLSAROTATE_TEST_OCTO_PDNS_WRONG", "wrong-api-key-7a6b5c")
        yield OctoDnsProvider(
            "octo-pdns", options("TLSAROTATE_TEST_OCTO_PDNS_WRONG"), ProviderContext()
        )

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: patches["n"],
            second_writer=second_writer,
            bad_auth=bad_auth,
            secrets=(pdns.api_key, "wrong-api-key-7a6b5c"),
            txt_writer=txt_writer,
        ),
    )


@contextlib.contextmanager
def knot_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    """RFC 2136 UPDATEs to a real knotd (TSIG, automatic DNSSEC signing). Unlike BIND's
    inline signing, Knot signs an UPDATE before it answers it: apply() is NOT wrapped to wait
    until the change is served, so every read right after a write proves that."""
    from tlsarotate.providers.rfc2136 import RFC2136Provider

    server: KnotServer = request.getfixturevalue("knot")
    tmp = request.getfixturevalue("tmp_path")
    prov = RFC2136Provider(
        "knot", server.provider_options(timeout=30.0, read="axfr"), ProviderContext()
    )
    applied = {"n": 0}
    send = prov._send

    def counting_send(message: Any) -> Any:
        r = send(message)
        if message.opcode() == dns.opcode.UPDATE and r.rcode() == dns.rcode.NOERROR:
            applied["n"] += 1
        return r

    prov._send = counting_send  # type: ignore[method-assign]

    def second_writer(o: dns.name.Name, new: TlsaRRset | None) -> None:
        def build(m: Any) -> None:
            m.delete(o, "TLSA")
            if new is not None:
                for t in new.texts():
                    m.add(o, new.ttl, "TLSA", t)

        assert server.update(ZONE, build).rcode() == dns.rcode.NOERROR

    wrong = "d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBzZWNyZXQ="
    secret_file = tmp / "wrong.secret"
    secret_file.write_text(wrong + "\n")

    @contextlib.contextmanager
    def bad_auth() -> Iterator[Provider]:
        opts = server.provider_options(
            tsig_name=server.key_name, tsig_secret_file=secret_file, retries=1
        )
        opts.pop("tsig_key_file")
        yield RFC2136Provider("knot", opts, ProviderContext(base_dir=tmp))

    yield Case(
        prov,
        ZONE,
        Helpers(
            writes=lambda: applied["n"],
            second_writer=second_writer,
            bad_auth=bad_auth,
            expected_writes=lambda change: rfc2136_expected_writes(change, server.keyring),
            secrets=(server.key_secret, wrong),
            txt_writer=lambda name, new: server.update(ZONE, update_txt(name, new)),
        ),
    )


PROVIDER_FACTORIES: dict[str, Factory] = {
    "rfc2136": rfc2136_case,
    "rfc2136-knot": knot_case,
    "octodns-bind": octodns_bind_case,
    "octodns-powerdns": octodns_powerdns_case,
    "memory": memory_case,
    "zonefile": zonefile_case,
    "plugin-example": plugin_case,
    "route53": route53_case,
    "cloudflare": cloudflare_case,
}


@pytest.fixture(params=sorted(PROVIDER_FACTORIES))
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    with PROVIDER_FACTORIES[request.param](request) as c:
        yield c


# ------------------------------------------------------------------------------------ helpers


def change_to(case: Case, desired: Mapping[dns.name.Name, TlsaRRset | None]) -> ZoneChange:
    """The ZoneChange from what the provider reads now to ``desired``."""
    current = case.provider.read(case.zone, list(desired))
    return ZoneChange(
        case.zone, tuple(OwnerChange(o, current.get(o), new) for o, new in desired.items())
    )


def apply_to(case: Case, desired: Mapping[dns.name.Name, TlsaRRset | None]) -> None:
    """Apply ``desired``, asserting the number of write calls the provider documents."""
    change = change_to(case, desired)
    before = case.helpers.writes()
    case.provider.apply(change)
    after = case.provider.read(case.zone, list(desired))
    assert after == {o: s for o, s in desired.items() if s is not None}
    writes, expected = case.helpers.writes() - before, case.helpers.expected_writes(change)
    assert writes == expected, f"{writes} write calls, expected {expected}"


# -------------------------------------------------------------------------------------- tests

A, B, C = owner("mx1"), owner("mx2"), owner("mx3")


def test_empty_read(case: Case) -> None:
    assert case.provider.read(case.zone, [A, B]) == {}
    assert case.helpers.writes() == 0


def test_add(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1))})
    assert case.provider.read(case.zone, [A, B]) == {A: rr(300, rd(1))}


def test_add_beside(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1))})
    apply_to(case, {A: rr(300, rd(1), rd(2, "3 0 1"))})


def test_delete_one_of_two(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1), rd(2))})
    apply_to(case, {A: rr(300, rd(2))})


def test_replace(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1))})
    apply_to(case, {A: rr(300, rd(2))})


def test_ttl_change(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1), rd(2))})
    apply_to(case, {A: rr(3600, rd(1), rd(3))})


def test_delete_all(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1), rd(2)), B: rr(300, rd(3))})
    apply_to(case, {A: None})
    assert case.provider.read(case.zone, [A, B]) == {B: rr(300, rd(3))}


def test_several_owners_one_write(case: Case) -> None:
    apply_to(case, {A: rr(300, rd(1)), B: rr(300, rd(2))})
    change = change_to(case, {A: None, B: rr(300, rd(2), rd(3)), C: rr(600, rd(4))})
    before = case.helpers.writes()
    case.provider.apply(change)
    assert case.helpers.writes() - before == 1
    assert case.provider.read(case.zone, [A, B, C]) == {
        B: rr(300, rd(2), rd(3)),
        C: rr(600, rd(4)),
    }


def test_idempotent_reapply(case: Case) -> None:
    desired = {A: rr(300, rd(1), rd(2)), B: rr(300, rd(3))}
    apply_to(case, desired)
    again = change_to(case, desired)  # computed from a fresh read: old == new everywhere
    before = case.helpers.writes()
    case.provider.apply(again)
    case.provider.apply(ZoneChange(case.zone, ()))
    assert case.helpers.writes() == before  # nothing to do, nothing written
    assert case.provider.read(case.zone, [A, B]) == desired


def test_stale_change_is_not_applied_twice(case: Case) -> None:
    change = change_to(case, {A: rr(300, rd(1))})
    case.provider.apply(change)
    before = case.helpers.writes()
    with pytest.raises(ConcurrentChangeError) as ei:
        case.provider.apply(change)  # its prerequisite (A absent) no longer holds
    assert_one_line(ei.value, str(A))
    assert case.helpers.writes() == before
    assert case.provider.read(case.zone, [A]) == {A: rr(300, rd(1))}


@pytest.mark.parametrize("theirs", ["changed", "deleted", "created"])
def test_concurrent_change_detected(case: Case, theirs: str) -> None:
    if theirs != "created":
        apply_to(case, {A: rr(300, rd(1)), B: rr(300, rd(5))})
    change = change_to(case, {A: rr(300, rd(1), rd(2)), B: rr(300, rd(6))})
    # A second writer moves A between our read and our apply.
    other = {"changed": rr(300, rd(9)), "deleted": None, "created": rr(300, rd(8))}[theirs]
    case.helpers.second_writer(A, other)
    state = case.provider.read(case.zone, [A, B])
    before = case.helpers.writes()
    with pytest.raises(ConcurrentChangeError) as ei:
        case.provider.apply(change)
    assert_one_line(ei.value, str(A))
    assert case.helpers.writes() == before
    assert case.provider.read(case.zone, [A, B]) == state  # B was not changed either


def test_thousand_owners(case: Case) -> None:
    owners = [owner(f"host{i:04d}") for i in range(1000)]
    desired: dict[dns.name.Name, TlsaRRset | None] = {
        o: rr(300, rd(i)) for i, o in enumerate(owners)
    }
    apply_to(case, desired)
    # and all of them gone again
    apply_to(case, dict.fromkeys(owners))
    assert case.provider.read(case.zone, owners) == {}


# providers with nothing to authenticate: a local file, memory, the example plugin
NO_AUTH = {"memory", "zonefile", "plugin-example"}


@pytest.fixture(params=sorted(set(PROVIDER_FACTORIES) - NO_AUTH))
def auth_case(request: pytest.FixtureRequest) -> Iterator[Case]:
    with PROVIDER_FACTORIES[request.param](request) as c:
        yield c


def test_authentication_failure(auth_case: Case) -> None:
    case = auth_case
    assert case.helpers.bad_auth is not None
    with case.helpers.bad_auth() as bad, pytest.raises(ProviderError) as ei:
        bad.read(case.zone, [A])
    assert_one_line(ei.value, "authentication", secrets=case.helpers.secrets)


def test_missing_zone(case: Case) -> None:
    with pytest.raises(ProviderError) as ei:
        case.provider.read(case.helpers.missing_zone, [A])
    assert_one_line(ei.value, case.helpers.missing_zone.to_text(omit_final_dot=True))


# -- every owner of a change is a prerequisite; no change, no write ----------------------------

KEEP, MOVE = owner("keep1"), owner("move1")


def test_concurrent_change_at_a_kept_owner_is_detected(case: Case) -> None:
    """Every owner of a change is a prerequisite, also one the change keeps as it is: when it
    moved since the read, the change is refused and nothing is written."""
    apply_to(case, {KEEP: rr(300, rd(1)), MOVE: rr(300, rd(5))})
    change = change_to(case, {KEEP: rr(300, rd(1)), MOVE: rr(300, rd(6))})  # KEEP stays as it is
    assert change.changes[0].old == change.changes[0].new
    case.helpers.second_writer(KEEP, rr(300, rd(9)))
    state = case.provider.read(case.zone, [KEEP, MOVE])
    before = case.helpers.writes()
    with pytest.raises(ConcurrentChangeError) as ei:
        case.provider.apply(change)
    assert_one_line(ei.value, str(KEEP))
    assert case.helpers.writes() == before
    assert case.provider.read(case.zone, [KEEP, MOVE]) == state


def test_change_keeping_every_owner_writes_nothing(case: Case) -> None:
    """No change, no write: a change that keeps every owner sends nothing."""
    apply_to(case, {KEEP: rr(300, rd(1))})
    change = change_to(case, {KEEP: rr(300, rd(1))})
    before = case.helpers.writes()
    case.provider.apply(change)
    assert case.helpers.writes() == before


# providers that cannot enumerate a zone (``import`` needs ``--owner`` with them)
CANNOT_LIST = {"plugin-example"}


@pytest.fixture(params=sorted(PROVIDER_FACTORIES))
def list_case(request: pytest.FixtureRequest) -> Iterator[tuple[str, Case]]:
    with PROVIDER_FACTORIES[request.param](request) as c:
        yield request.param, c


def test_list_owners(list_case: tuple[str, Case]) -> None:
    name, case = list_case
    apply_to(case, {A: rr(300, rd(1)), B: rr(600, rd(2), rd(3, "3 0 1")), C: rr(300, rd(4))})
    apply_to(case, {B: None})  # deleted: no longer an owner with TLSA
    if name in CANNOT_LIST:
        with pytest.raises(ProviderError) as ei:
            case.provider.list_owners(case.zone)
        assert_one_line(ei.value, "cannot list a zone; name the owners with --owner")
        return
    # only the owners holding TLSA, sorted; the zone's other names (SOA, NS, A) are not listed
    assert case.provider.list_owners(case.zone) == [A, C]


# -- TXT RRsets (capabilities.txt: a service's TLSRPT record) ----------------------------------

T = dns.name.from_text("_smtp._tls.example.test.")
OTHER = (b"site-verification=0123456789",)
OLD = (b"v=TLSRPTv1; rua=mailto:old@example.test",)
LONG = (b"v=TLSRPTv1; rua=" + b",".join(b"mailto:r%d@example.test" % i for i in range(20)),)


def txt(ttl: int, *recs: tuple[bytes, ...]) -> TxtRRset:
    return TxtRRset.of(ttl, recs)


def txt_case(case: Case) -> Callable[[dns.name.Name, TxtRRset | None], object] | None:
    """The case's TXT writer, the name cleared (session servers keep what a test left); a
    provider without TXT support (refused at config load, test_tlsrpt_record.py) must say so
    in one line when asked anyway: None then, the test ends there."""
    if case.helpers.txt_writer is None:
        assert not case.provider.capabilities.txt
        for call in (
            lambda: case.provider.read_txt(case.zone, T),
            lambda: case.provider.apply_txt(case.zone, T, None, txt(300, OLD)),
        ):
            with pytest.raises(ProviderError) as ei:
                call()
            assert_one_line(ei.value, "cannot ", "TXT records")
        return None
    assert case.provider.capabilities.txt
    case.helpers.txt_writer(T, None)
    return case.helpers.txt_writer


def test_txt_add_replace_delete(case: Case) -> None:
    if txt_case(case) is None:
        return
    p = case.provider
    assert p.read_txt(case.zone, T) is None
    p.apply_txt(case.zone, T, None, txt(300, OLD))
    assert p.read_txt(case.zone, T) == txt(300, OLD)
    long = tuple(LONG[0][i : i + 255] for i in range(0, len(LONG[0]), 255))  # two strings
    assert len(long) == 2
    p.apply_txt(case.zone, T, txt(300, OLD), txt(600, long))
    assert p.read_txt(case.zone, T) == txt(600, long)
    p.apply_txt(case.zone, T, txt(600, long), None)
    assert p.read_txt(case.zone, T) is None


def test_txt_other_records_and_tlsa_stay(case: Case) -> None:
    """Replacing the TLSRPT record keeps the other TXT records at the name and every TLSA."""
    from tlsarotate.tlsrpt import record

    writer = txt_case(case)
    if writer is None:
        return
    apply_to(case, {A: rr(300, rd(1))})
    writer(T, txt(300, OTHER, OLD))
    current = case.provider.read_txt(case.zone, T)
    assert current == txt(300, OTHER, OLD)
    plan = record.plan("mail", T, current, ["mailto:new@example.test"], 3600)
    case.provider.apply_txt(case.zone, T, plan.current, plan.new)
    new = (b"v=TLSRPTv1; rua=mailto:new@example.test",)
    assert case.provider.read_txt(case.zone, T) == txt(300, OTHER, new)
    assert (
        record.plan("mail", T, txt(300, OTHER, new), ["mailto:new@example.test"], 1).state == "ok"
    )
    assert case.provider.read(case.zone, [A]) == {A: rr(300, rd(1))}


def test_txt_concurrent_change_is_refused_and_nothing_written(case: Case) -> None:
    writer = txt_case(case)
    if writer is None:
        return
    case.provider.apply_txt(case.zone, T, None, txt(300, OLD))
    writer(T, txt(300, OLD, OTHER))  # another writer adds a record after our read
    with pytest.raises(ConcurrentChangeError) as ei:
        case.provider.apply_txt(
            case.zone, T, txt(300, OLD), txt(300, (b"v=TLSRPTv1; rua=mailto:mine@example.test",))
        )
    assert_one_line(ei.value, str(T))
    assert case.provider.read_txt(case.zone, T) == txt(300, OLD, OTHER)


def test_txt_write_refused_by_the_server_is_one_line(auth_case: Case) -> None:
    case = auth_case
    if txt_case(case) is None:
        return
    assert case.helpers.bad_auth is not None
    with case.helpers.bad_auth() as bad, pytest.raises(ProviderError) as ei:
        bad.apply_txt(case.zone, T, None, txt(300, OLD))
    assert_one_line(ei.value, "authentication", secrets=case.helpers.secrets)
    assert case.provider.read_txt(case.zone, T) is None
