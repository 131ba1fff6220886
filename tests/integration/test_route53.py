"""Route 53 specifics: moto_server over HTTP where moto helps, botocore's Stubber where it cannot
(moto always answers INSYNC and never throttles)."""

from __future__ import annotations

import datetime
import functools
import sys
from collections.abc import Iterator
from typing import Any

import dns.name
import pytest
from botocore.stub import Stubber

from tests.support import moto_server
from tests.support.helpers import assert_one_line, rd
from tests.support.moto_server import DUMMY_KEY_ID, DUMMY_SECRET, CountingClient, raw_client
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.errors import ConcurrentChangeError, ProviderError
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.route53 import (
    MAX_RECORDS_PER_BATCH,
    MAX_VALUE_CHARS_PER_BATCH,
    ChangeId,
    Route53Provider,
    name_from_route53,
    name_to_route53,
)

# fixtures from tests/support/moto_server.py (a real moto_server over HTTP)
moto_url = moto_server.moto_url
route53_env = moto_server.route53_env

ZONE = dns.name.from_text("example.test.")
A = records.owner_name("mx.example.test", 25)
HZ = "Z0TLSAROTATE"


one_line = functools.partial(assert_one_line, secrets=(DUMMY_SECRET,))


# ------------------------------------------------------------------ Stubber (no network at all)


@pytest.fixture
def stubbed() -> Iterator[tuple[Route53Provider, Stubber, FakeClock]]:
    import boto3

    client = boto3.client(
        "route53",
        region_name="us-east-1",
        aws_access_key_id=DUMMY_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET,
    )
    clock = FakeClock()
    prov = Route53Provider(
        "r53",
        {"hosted_zone_id": HZ, "poll_interval": 10.0, "max_wait": 60.0, "max_retries": 3},
        ProviderContext(clock=clock),
    )
    prov.client = client
    with Stubber(client) as stub:
        yield prov, stub, clock
        stub.assert_no_pending_responses()


def _zone(stub: Stubber) -> None:
    stub.add_response(
        "get_hosted_zone",
        {
            "HostedZone": {
                "Id": f"/hostedzone/{HZ}",
                "Name": "example.test.",
                "CallerReference": "x",
            }
        },
        {"Id": HZ},
    )


def _change_info(status: str) -> dict[str, Any]:
    return {
        "ChangeInfo": {
            "Id": "/change/C1",
            "Status": status,
            "SubmittedAt": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        }
    }


def _listing(*rrsets: dict[str, Any]) -> dict[str, Any]:
    return {"ResourceRecordSets": list(rrsets), "IsTruncated": False, "MaxItems": "1"}


def test_is_live_waits_for_insync(stubbed: tuple[Route53Provider, Stubber, FakeClock]) -> None:
    prov, stub, clock = stubbed
    for status in ("PENDING", "PENDING", "INSYNC"):
        stub.add_response("get_change", _change_info(status), {"Id": "/change/C1"})
    t0 = clock.now()
    assert prov.is_live(ZONE, prov_result("/change/C1"))
    assert clock.now() - t0 == pytest.approx(20.0)  # two polls of poll_interval on the fake clock


def test_is_live_gives_up_after_max_wait(
    stubbed: tuple[Route53Provider, Stubber, FakeClock],
) -> None:
    prov, stub, _ = stubbed
    for _ in range(7):  # t = 0, 10, ..., 60
        stub.add_response("get_change", _change_info("PENDING"), {"Id": "/change/C1"})
    assert prov.is_live(ZONE, prov_result("/change/C1")) is False


def prov_result(change_id: str) -> Any:
    return [ChangeId(change_id)]


def test_throttling_is_retried(stubbed: tuple[Route53Provider, Stubber, FakeClock]) -> None:
    prov, stub, clock = stubbed
    _zone(stub)
    for code in ("Throttling", "PriorRequestNotComplete"):
        stub.add_client_error(
            "list_resource_record_sets", service_error_code=code, http_status_code=400
        )
    stub.add_response("list_resource_record_sets", _listing())
    t0 = clock.now()
    assert prov.read(ZONE, [A]) == {}
    waited = clock.now() - t0
    # two backoffs with jitter: [0.25, 0.5] + [0.5, 1.0]
    assert 0.75 <= waited <= 1.5


def test_throttling_gives_up_after_max_retries(
    stubbed: tuple[Route53Provider, Stubber, FakeClock],
) -> None:
    prov, stub, _ = stubbed
    _zone(stub)
    for _ in range(4):  # first try + max_retries (3)
        stub.add_client_error(
            "list_resource_record_sets",
            service_error_code="Throttling",
            service_message="Rate exceeded",
            http_status_code=400,
        )
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "'r53'", "Throttling", "Rate exceeded", "ListResourceRecordSets")


def test_other_api_error_is_one_line(stubbed: tuple[Route53Provider, Stubber, FakeClock]) -> None:
    prov, stub, _ = stubbed
    _zone(stub)
    stub.add_client_error(
        "list_resource_record_sets",
        service_error_code="InvalidInput",
        service_message="Something is\nwrong",
        http_status_code=400,
    )
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "InvalidInput", "Something is wrong")


def test_change_batch_conflict_is_concurrent_change(
    stubbed: tuple[Route53Provider, Stubber, FakeClock],
) -> None:
    """A change landing after our fresh read: Route 53 refuses the batch; we say so."""
    prov, stub, _ = stubbed
    old = TlsaRRset.of(300, [rd(1)])
    _zone(stub)
    stub.add_response(
        "list_resource_record_sets",
        _listing(
            {
                "Name": A.to_text(),
                "Type": "TLSA",
                "TTL": 300,
                "ResourceRecords": [{"Value": t} for t in old.texts()],
            }
        ),
    )
    stub.add_client_error(
        "change_resource_record_sets",
        service_error_code="InvalidChangeBatch",
        service_message=f"Tried to delete resource record set [name='{A}', type='TLSA'] but "
        "the values provided do not match the current values",
        http_status_code=400,
    )
    change = ZoneChange(ZONE, (OwnerChange(A, old, TlsaRRset.of(300, [rd(2)])),))
    with pytest.raises(ConcurrentChangeError) as ei:
        prov.apply(change)
    one_line(ei.value, "nothing was written")


def test_missing_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    prov = Route53Provider("r53", {}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "'r53'", "needs boto3", "pip install 'tlsarotate[route53]'")


def test_route53_name_escapes() -> None:
    assert name_from_route53("\\052.example.test.") == dns.name.from_text("*.example.test.")
    assert name_to_route53(dns.name.from_text("a\\032b.example.test.")) == "a\\040b.example.test."
    assert name_to_route53(A) == "_25._tcp.mx.example.test."


# --------------------------------------------------------------------------- moto over HTTP


def test_no_credentials(route53_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    prov = Route53Provider("r53", {"endpoint_url": route53_env}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "no AWS credentials")


def test_unknown_profile(route53_env: str) -> None:
    prov = Route53Provider(
        "r53", {"endpoint_url": route53_env, "profile": "nope"}, ProviderContext()
    )
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "profile 'nope' not found")


def test_zone_ambiguity_and_hosted_zone_id(route53_env: str) -> None:
    raw: Any = raw_client(route53_env)
    z1 = raw.create_hosted_zone(Name="example.test.", CallerReference="1")["HostedZone"]["Id"]
    raw.create_hosted_zone(Name="example.test.", CallerReference="2")
    other = raw.create_hosted_zone(Name="other.test.", CallerReference="3")["HostedZone"]["Id"]
    with pytest.raises(ProviderError) as ei:
        Route53Provider("r53", {"endpoint_url": route53_env}, ProviderContext()).read(ZONE, [A])
    one_line(ei.value, "2 hosted zones are named example.test.", "hosted_zone_id")

    chosen = Route53Provider(
        "r53",
        {"endpoint_url": route53_env, "hosted_zone_id": z1.rsplit("/", 1)[-1]},
        ProviderContext(),
    )
    new = TlsaRRset.of(300, [rd(1)])
    chosen.apply(ZoneChange(ZONE, (OwnerChange(A, None, new),)))
    assert chosen.read(ZONE, [A]) == {A: new}
    listed = raw.list_resource_record_sets(HostedZoneId=z1)["ResourceRecordSets"]
    assert any(r["Type"] == "TLSA" for r in listed)

    wrong = Route53Provider(
        "r53", {"endpoint_url": route53_env, "hosted_zone_id": other}, ProviderContext()
    )
    with pytest.raises(ProviderError) as ei:
        wrong.read(ZONE, [A])
    one_line(ei.value, "is other.test., not the service's zone example.test.")

    missing = Route53Provider(
        "r53", {"endpoint_url": route53_env, "hosted_zone_id": "ZNOPE"}, ProviderContext()
    )
    with pytest.raises(ProviderError) as ei:
        missing.read(ZONE, [A])
    one_line(ei.value, "'ZNOPE' does not exist")


def test_paginated_read_and_write_token(route53_env: str) -> None:
    raw: Any = raw_client(route53_env)
    raw.create_hosted_zone(Name="example.test.", CallerReference="p")
    prov = Route53Provider("r53", {"endpoint_url": route53_env}, ProviderContext())
    prov.page_size = 2
    owners = [records.owner_name(f"h{i}.example.test", 25) for i in range(9)]
    want = {o: TlsaRRset.of(300 + i, [rd(i), rd(100 + i, "3 0 1")]) for i, o in enumerate(owners)}
    result = prov.apply(ZoneChange(ZONE, tuple(OwnerChange(o, None, s) for o, s in want.items())))
    assert [type(t) for t in result.tokens] == [ChangeId] and result.tokens[0].id  # type: ignore[attr-defined]
    assert prov.is_live(ZONE, result.tokens)  # moto: INSYNC
    counting = CountingClient(prov.client)
    prov.client = counting
    assert prov.read(ZONE, owners) == want
    assert counting.calls.count("list_resource_record_sets") >= 5  # 9 TLSA + SOA + NS, 2 a page
    # a targeted read of a few owners sees the same
    assert prov.read(ZONE, owners[3:5]) == {o: want[o] for o in owners[3:5]}


def test_large_change_is_split_at_owner_boundaries(route53_env: str) -> None:
    raw: Any = raw_client(route53_env)
    raw.create_hosted_zone(Name="example.test.", CallerReference="s")
    prov = Route53Provider("r53", {"endpoint_url": route53_env}, ProviderContext())
    counting = CountingClient(prov.client)
    prov.client = counting
    owners = [records.owner_name(f"h{i:03d}.example.test", 25) for i in range(600)]
    first = {o: TlsaRRset.of(300, [rd(i)]) for i, o in enumerate(owners)}
    prov.apply(ZoneChange(ZONE, tuple(OwnerChange(o, None, s) for o, s in first.items())))
    n_first = len(counting.batches)  # the batches that created them
    # replace all of them: DELETE + CREATE per owner
    second = {o: TlsaRRset.of(300, [rd(10_000 + i)]) for i, o in enumerate(owners)}
    result = prov.apply(
        ZoneChange(ZONE, tuple(OwnerChange(o, first[o], second[o]) for o in owners))
    )
    replace_batches = counting.batches[n_first:]
    assert len(result.tokens) == len(replace_batches)
    assert all(isinstance(t, ChangeId) for t in result.tokens)
    for batch in counting.batches:
        values = [v["Value"] for c in batch for v in c["ResourceRecordSet"]["ResourceRecords"]]
        assert len(values) <= MAX_RECORDS_PER_BATCH
        assert sum(map(len, values)) <= MAX_VALUE_CHARS_PER_BATCH
    seen: dict[str, int] = {}
    for n, batch in enumerate(replace_batches):
        actions = [c["Action"] for c in batch]
        assert actions == sorted(actions, key=lambda a: a != "DELETE")  # deletes first
        for c in batch:
            name = c["ResourceRecordSet"]["Name"]
            assert seen.setdefault(name, n) == n  # an owner's DELETE and CREATE share a batch
    assert len(seen) == 600
    assert prov.read(ZONE, owners) == second
