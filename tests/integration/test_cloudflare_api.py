"""The Cloudflare provider against the fake API (tests/support/fake_cloudflare.py): a bad token is
refused by name and never shown, a batch whose answer is lost is checked before it is re-sent,
the automatic TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.tsigkeyring
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


TOKEN = "cf-review-token-1123581321"


ENV = "TLSAROTATE_TEST_CF_REVIEW"


@pytest.fixture
def fake(cf_server: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> FakeCloudflare:
    cf_server.reset()
    cf_server.tokens = {TOKEN}
    cf_server.zone_id = cf_server.add_zone("example.test")  # type: ignore[attr-defined]
    monkeypatch.setenv(ENV, TOKEN)
    return cf_server


def cf(fake: FakeCloudflare, **opts: Any) -> CloudflareProvider:
    ctx = ProviderContext(clock=FakeClock())
    return CloudflareProvider("cf", {"api_token_env": ENV, "api_url": fake.url, **opts}, ctx)


def posts(fake: FakeCloudflare) -> int:
    return sum(1 for e in fake.log if e.method == "POST")


@pytest.mark.parametrize(
    "token",
    [
        "cf-inner\nnewline-token",  # requests: InvalidHeader quoting the header value
        "cf-inner space-token",
        "cf-tökén-€-token",  # http.client: UnicodeEncodeError (latin-1)
    ],
)
def test_cloudflare_bad_token_is_refused_by_name_never_shown(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    tok = tmp_path / "cf.token"
    tok.write_text(token + "\n", encoding="utf-8")
    parts = tuple(p for p in token.replace("\n", " ").split() if len(p) > 3)
    with pytest.raises(ConfigError) as ei:
        CloudflareProvider.check_files("cf", {"api_token_file": str(tok)})
    assert str(ei.value).startswith(f"api_token_file: {tok}: ")
    assert_one_line(ei.value, "printable ASCII", secrets=parts)
    prov = CloudflareProvider(
        "cf", {"api_token_file": str(tok), "api_url": fake.url}, ProviderContext()
    )
    with pytest.raises(ProviderError) as pe:
        prov.read(ZONE, [A])
    assert_one_line(pe.value, "'cf'", "api_token_file", str(tok), secrets=parts)
    assert posts(fake) == 0 and not fake.log  # nothing was sent with it

    monkeypatch.setenv(ENV, token)
    with pytest.raises(ConfigError) as ei:
        CloudflareProvider.check_files("cf", {"api_token_env": ENV})
    assert str(ei.value).startswith(f"api_token_env: environment variable {ENV}: ")
    assert_one_line(ei.value, secrets=parts)
    with pytest.raises(ProviderError) as pe:
        cf(fake).read(ZONE, [A])
    assert_one_line(pe.value, "api_token_env", secrets=parts)


def test_cloudflare_token_scrubbed_from_exception_text(fake: FakeCloudflare) -> None:
    """Whatever a transport error says, the token is cut out of it."""
    prov = cf(fake)

    class Leaky:
        def request(self, method: str, url: str, **kw: Any) -> Any:
            import requests

            raise requests.ConnectionError(f"refused header {kw['headers']['Authorization']!r}")

    prov.session = Leaky()
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    assert_one_line(ei.value, "ConnectionError", "<token hidden>", secrets=(TOKEN,))
    assert TOKEN not in repr(prov.__dict__)


def test_cloudflare_batch_committed_then_502_is_success_not_resent(fake: FakeCloudflare) -> None:
    prov = cf(fake)
    fake.fail_batches(1, status=502, commit=True)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert posts(fake) == 1  # the batch was not sent a second time
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    assert len(fake.list_records(fake.zone_id)) == 1  # type: ignore[attr-defined]


def test_cloudflare_batch_502_not_applied_is_sent_once_more(fake: FakeCloudflare) -> None:
    prov = cf(fake)
    fake.fail_batches(1, status=503, commit=False)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert posts(fake) == 2
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    # failing twice without being applied: one line, no third attempt
    fake.fail_batches(2, status=502, commit=False)
    before = posts(fake)
    with pytest.raises(ProviderError) as ei:
        prov.apply(
            ZoneChange(ZONE, (OwnerChange(A, TlsaRRset.of(300, [rd(1)]), None),)),
        )
    assert not isinstance(ei.value, ConcurrentChangeError)
    assert_one_line(ei.value, "HTTP 502", "twice", "not applied")
    assert posts(fake) - before == 2


def test_cloudflare_batch_502_with_a_concurrent_change_does_not_claim_nothing_written(
    fake: FakeCloudflare,
) -> None:
    prov = cf(fake)
    inner = prov.session

    class Racing:
        def request(self, method: str, url: str, **kw: Any) -> Any:
            resp = inner.request(method, url, **kw)
            if method == "POST":  # another writer lands right after our lost batch
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
                            "certificate": rd(9).cert.hex(),
                        },
                    },
                )
            return resp

    prov.session = Racing()
    fake.fail_batches(1, status=502, commit=True)
    with pytest.raises(ConcurrentChangeError) as ei:
        prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    text = assert_one_line(ei.value, "HTTP 502", str(A), "re-run")
    assert "nothing was written" not in text
    assert posts(fake) == 1


def test_cloudflare_automatic_ttl_reads_as_1_served_as_300(fake: FakeCloudflare) -> None:
    """TTL 1 ("automatic") reads back as the 1 a service configures (read as 300, the planner
    re-wrote it for ever); the waits count the 300 s Cloudflare serves it with."""
    fake.put_record(
        fake.zone_id,  # type: ignore[attr-defined]
        {
            "type": "TLSA",
            "name": "_25._tcp.mx.example.test",
            "ttl": 1,
            "data": {
                "usage": 3,
                "selector": 1,
                "matching_type": 1,
                "certificate": rd(1).cert.hex(),
            },
        },
    )
    prov = cf(fake)
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(1, [rd(1)])}
    assert prov.served_ttl(1) == 300 and prov.served_ttl(600) == 600
    # an RRset already at 1 (automatic) needs no TTL patch
    prov.apply(
        ZoneChange(ZONE, (OwnerChange(A, TlsaRRset.of(1, [rd(1)]), TlsaRRset.of(1, [rd(1)])),))
    )
    assert posts(fake) == 0
