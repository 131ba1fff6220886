"""Cloudflare specifics, against the local fake API (tests/support/fake_cloudflare.py)."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.support import fake_cloudflare
from tests.support.fake_cloudflare import FakeCloudflare
from tests.support.helpers import assert_one_line, rd
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.cloudflare import CloudflareProvider

cf_server = fake_cloudflare.cf_server

ZONE = dns.name.from_text("example.test.")
A = records.owner_name("mx.example.test", 25)
B = records.owner_name("mx2.example.test", 25)
TOKEN = "cf-unit-token-31415926"
ENV = "TLSAROTATE_TEST_CF_UNIT"


one_line = functools.partial(assert_one_line, secrets=(TOKEN, "wrong-token"))


@pytest.fixture
def fake(cf_server: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> FakeCloudflare:
    cf_server.reset()
    cf_server.tokens = {TOKEN}
    cf_server.zone_id = cf_server.add_zone("example.test")  # type: ignore[attr-defined]
    monkeypatch.setenv(ENV, TOKEN)
    return cf_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prov(fake: FakeCloudflare, clock: FakeClock) -> Iterator[CloudflareProvider]:
    yield CloudflareProvider(
        "cf", {"api_token_env": ENV, "api_url": fake.url}, ProviderContext(clock=clock)
    )


def batches(fake: FakeCloudflare) -> list[dict[str, Any]]:
    return [e.body for e in fake.log if e.method == "POST"]


def add(prov: CloudflareProvider, owner: dns.name.Name, new: TlsaRRset) -> None:
    old = prov.read(ZONE, [owner]).get(owner)
    prov.apply(ZoneChange(ZONE, (OwnerChange(owner, old, new),)))


def test_uppercase_hex_from_the_api_reads_as_the_same_record(
    fake: FakeCloudflare, prov: CloudflareProvider
) -> None:
    add(prov, A, TlsaRRset.of(300, [rd(1)]))
    (rec,) = fake.list_records(fake.zone_id)  # type: ignore[attr-defined]
    assert rec["data"]["certificate"] == rd(1).cert.hex().upper()
    assert rec["content"].endswith(rd(1).cert.hex().upper())
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}


def test_only_differing_records_are_touched(fake: FakeCloudflare, prov: CloudflareProvider) -> None:
    add(prov, A, TlsaRRset.of(300, [rd(1)]))
    add(prov, A, TlsaRRset.of(300, [rd(1), rd(2)]))
    assert set(batches(fake)[-1]) == {"posts"}  # the kept record is not deleted and re-posted
    add(prov, A, TlsaRRset.of(600, [rd(2)]))
    last = batches(fake)[-1]
    assert len(last["deletes"]) == 1 and len(last["patches"]) == 1 and "posts" not in last
    assert last["patches"][0]["ttl"] == 600
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(600, [rd(2)])}


def test_split_beyond_batch_limit(fake: FakeCloudflare, clock: FakeClock) -> None:
    fake.batch_limit = 3
    prov = CloudflareProvider(
        "cf",
        {"api_token_env": ENV, "api_url": fake.url, "batch_limit": 3},
        ProviderContext(clock=clock),
    )
    assert prov.capabilities.max_changes_per_write == 3
    owners = [records.owner_name(f"h{i}.example.test", 25) for i in range(7)]
    want = {o: TlsaRRset.of(300, [rd(i)]) for i, o in enumerate(owners)}
    prov.apply(ZoneChange(ZONE, tuple(OwnerChange(o, None, s) for o, s in want.items())))
    sizes = [sum(len(v) for v in b.values()) for b in batches(fake)]
    assert sizes == [3, 3, 1]
    assert prov.read(ZONE, owners) == want


def test_batch_over_the_plan_limit_is_one_line(fake: FakeCloudflare, clock: FakeClock) -> None:
    fake.batch_limit = 2  # the plan allows less than the configured batch_limit
    prov = CloudflareProvider(
        "cf", {"api_token_env": ENV, "api_url": fake.url}, ProviderContext(clock=clock)
    )
    with pytest.raises(ProviderError) as ei:
        prov.apply(
            ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1), rd(2), rd(3)])),))
        )
    one_line(ei.value, "HTTP 400", "1004", "limit of 2")
    assert prov.read(ZONE, [A]) == {}


def test_429_honours_retry_after(
    fake: FakeCloudflare, prov: CloudflareProvider, clock: FakeClock
) -> None:
    fake.throttle(2, retry_after="7")
    t0 = clock.now()
    assert prov.read(ZONE, [A]) == {}
    assert clock.now() - t0 == pytest.approx(14.0)
    assert len(fake.log) == 4  # 2 refused + zone lookup + record listing


def test_5xx_is_retried_then_surfaced(fake: FakeCloudflare, clock: FakeClock) -> None:
    prov = CloudflareProvider(
        "cf",
        {"api_token_env": ENV, "api_url": fake.url, "max_retries": 2},
        ProviderContext(clock=clock),
    )
    fake.throttle(2, retry_after=None, status=503)
    t0 = clock.now()
    assert prov.read(ZONE, [A]) == {}
    assert clock.now() > t0  # backed off without Retry-After
    fake.throttle(3, retry_after="1", status=429)
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "HTTP 429", "971")


def test_authentication_error_names_the_token_file(
    fake: FakeCloudflare, tmp_path: Path, clock: FakeClock
) -> None:
    tok = tmp_path / "cf.token"
    tok.write_text("wrong-token-271828\n")
    prov = CloudflareProvider(
        "cf", {"api_token_file": str(tok), "api_url": fake.url}, ProviderContext(clock=clock)
    )
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "authentication failed", "HTTP 401", "10000", str(tok))
    tok.write_text(TOKEN + "\n")
    good = CloudflareProvider(
        "cf", {"api_token_file": str(tok), "api_url": fake.url}, ProviderContext()
    )
    assert good.read(ZONE, [A]) == {}


def test_token_source_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLSAROTATE_TEST_UNSET", raising=False)
    with pytest.raises(ConfigError, match="exactly one"):
        CloudflareProvider.check_files("cf", {})
    with pytest.raises(ConfigError, match="exactly one"):
        CloudflareProvider.check_files("cf", {"api_token_env": "X", "api_token_file": "/y"})
    with pytest.raises(ConfigError, match="TLSAROTATE_TEST_UNSET is not set"):
        CloudflareProvider.check_files("cf", {"api_token_env": "TLSAROTATE_TEST_UNSET"})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        CloudflareProvider.check_files("cf", {"api_token_file": str(empty)})
    with pytest.raises(ConfigError, match=r"api_token_file: .*nope: file not found"):
        CloudflareProvider.check_files("cf", {"api_token_file": str(tmp_path / "nope")})
    shared = tmp_path / "token"
    shared.write_text("T0KEN-not-shown\n")
    shared.chmod(0o640)
    with pytest.raises(ConfigError, match=r"api_token_file: .* is not private.*mode 640") as te:
        CloudflareProvider.check_files("cf", {"api_token_file": str(shared)})
    assert "T0KEN" not in str(te.value)
    shared.chmod(0o600)
    CloudflareProvider.check_files("cf", {"api_token_file": str(shared)})
    prov = CloudflareProvider("cf", {"api_token_env": "TLSAROTATE_TEST_UNSET"}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "no API token in environment variable TLSAROTATE_TEST_UNSET")


def test_unknown_zone_id_is_one_line(fake: FakeCloudflare, clock: FakeClock) -> None:
    prov = CloudflareProvider(
        "cf",
        {"api_token_env": ENV, "api_url": fake.url, "zone_id": "0" * 32},
        ProviderContext(clock=clock),
    )
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "7003", "HTTP 404")


def test_race_after_the_fresh_read_is_a_concurrent_change(
    fake: FakeCloudflare, prov: CloudflareProvider
) -> None:
    """Between apply's own read and its batch, another writer deletes our record: the delete
    by id fails the whole batch (all-or-nothing) and we report a concurrent change."""
    add(prov, A, TlsaRRset.of(300, [rd(1)]))
    old = prov.read(ZONE, [A])[A]
    inner = prov.session

    class Racing:
        def request(self, method: str, url: str, **kw: Any) -> Any:
            if method == "POST":
                for rec in fake.list_records(fake.zone_id):  # type: ignore[attr-defined]
                    fake.delete_record(fake.zone_id, rec["id"])  # type: ignore[attr-defined]
                fake.put_record(
                    fake.zone_id,  # type: ignore[attr-defined]
                    {
                        "type": "TLSA",
                        "name": "_25._tcp.mx.example.test",
                        "ttl": 300,
                        "data": {
                            "usage": 3,
                            "selector": 1,
                            "matching_type": 1,
                            "certificate": rd(7).cert.hex(),
                        },
                    },
                )
            return inner.request(method, url, **kw)

    prov.session = Racing()
    with pytest.raises(ConcurrentChangeError) as ei:
        prov.apply(ZoneChange(ZONE, (OwnerChange(A, old, TlsaRRset.of(300, [rd(2)])),)))
    one_line(ei.value, "81044", "nothing was written")
    prov.session = inner
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(7)])}


def test_missing_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests", None)
    monkeypatch.setenv(ENV, TOKEN)
    prov = CloudflareProvider("cf", {"api_token_env": ENV}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "'cf'", "needs requests", "pip install 'tlsarotate[cloudflare]'")
    assert os.environ[ENV] == TOKEN


# -- TTL 1 ("automatic") and the API's TTL range ---------------------------------------------

CF_CONFIG = """\
state_dir: state
safety_margin: 0
providers:
  cf:
    type: cloudflare
    api_token_env: {env}
    api_url: {url}
services:
  - name: mail
    zone: example.test.
    provider: cf
    hosts: [mx.example.test]
    ttl: {ttl}
    records: ["3 1 1"]
    observe: provider
    certificate:
      deployed: {{cert: deployed.crt, key: deployed.key}}
      next: {{cert: next.crt, key: next.key}}
      reload: ["true"]
"""


def _cf_engine(tmp_path: Path, fake: FakeCloudflare, ttl: int, write_pair: Any) -> Any:
    import shutil

    from tlsarotate import config
    from tlsarotate.engine import Engine, make_providers
    from tlsarotate.providers.base import ProviderContext
    from tlsarotate.stores.file import FileStateStore

    write_pair("deployed", host="mx.example.test")
    shutil.copy(tmp_path / "deployed.crt", tmp_path / "next.crt")  # nothing to roll yet
    shutil.copy(tmp_path / "deployed.key", tmp_path / "next.key")
    path = tmp_path / "config.yaml"
    path.write_text(CF_CONFIG.format(env=ENV, url=fake.url, ttl=ttl))
    cfg = config.load(path)
    clock = FakeClock(time.time())  # the certificates are valid now, not at FakeClock's default
    providers = make_providers(cfg, ProviderContext(base_dir=tmp_path, clock=clock))
    return cfg, Engine(cfg, FileStateStore(cfg.state_dir), providers, clock=clock)


def test_ttl_1_is_read_back_as_1_and_waits_count_300(
    fake: FakeCloudflare, tmp_path: Path, write_pair: Any
) -> None:
    """ttl: 1 (automatic): the API answers 1; reading it as 300 made the planner "set the TTL
    to 1" again and again (50 writes, then an error). Caches hold it for 300 s: the wait
    before the swap counts those."""
    from tlsarotate import phases

    cfg, engine = _cf_engine(tmp_path, fake, 1, write_pair)
    first = engine.run(cfg.services, wait=True)
    assert [p.phase for p in first] == [phases.IDLE], [p.summary for p in first]
    assert len(batches(fake)) == 1  # the one publish, no TTL re-writes
    assert {r["ttl"] for r in fake.list_records(fake.zone_id)} == {1}  # type: ignore[attr-defined]
    engine.clock.advance(1000)
    write_pair("next", host="mx.example.test")  # the renewal
    plans = engine.run(cfg.services, wait=False)
    assert [p.phase for p in plans] == [phases.WAIT_TTL], [p.summary for p in plans]
    # caches hold the deployed-only RRset for the 300 s Cloudflare serves, not 1 s
    assert plans[0].ready_at == engine.clock.now() + 300
    done = engine.run(cfg.services, wait=True)
    assert [p.phase for p in done] == [phases.IDLE], [p.summary for p in done]
    assert len(batches(fake)) == 3  # publish, publish the next, retire: nothing else
    assert {r["ttl"] for r in fake.list_records(fake.zone_id)} == {1}  # type: ignore[attr-defined]


@pytest.mark.parametrize("ttl", [30, 59, 86401])
def test_validate_refuses_a_ttl_the_api_refuses(
    fake: FakeCloudflare, tmp_path: Path, write_pair: Any, ttl: int
) -> None:
    from tests.support.helpers import assert_one_line_error, cli_env, run_cli

    write_pair("deployed", host="mx.example.test")
    write_pair("next", host="mx.example.test")
    path = tmp_path / "config.yaml"
    path.write_text(CF_CONFIG.format(env=ENV, url=fake.url, ttl=ttl))
    proc = run_cli("-c", path, "validate", env=cli_env(**{ENV: TOKEN}))
    assert_one_line_error(
        proc, "service 'mail'", f"ttl {ttl}", "Cloudflare accepts 1 (automatic) or 60-86400"
    )
    # and the fake API refuses it as the real one does
    prov = CloudflareProvider("cf", {"api_token_env": ENV, "api_url": fake.url}, ProviderContext())
    with pytest.raises(ProviderError, match="TTL must be between 60 and 86400"):
        add(prov, A, TlsaRRset.of(ttl, [rd(1)]))
    for ok in (1, 60, 86400):
        path.write_text(CF_CONFIG.format(env=ENV, url=fake.url, ttl=ok))
        assert run_cli("-c", path, "validate", env=cli_env(**{ENV: TOKEN})).returncode == 0
