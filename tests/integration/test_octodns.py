"""The ``octodns`` provider on a real PowerDNS (octodns-powerdns) beyond the shared contract:
every other record of the zone stays byte for byte, a plan that would touch anything but the
managed TLSA owners is refused with nothing written, a change landing between the checks and
octoDNS's own read is caught, and ``validate`` refuses what cannot work in one line (a class
without TLSA, a module that does not import, an inline secret, an unset variable)."""

# ruff: noqa: F811
from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.support.helpers import assert_one_line, assert_one_line_error, rrset, run_cli
from tests.support.powerdns import PowerDns, powerdns, powerdns_server  # noqa: F401
from tests.support.servers import BindServers, bind, bind_servers, wait_until  # noqa: F401
from tlsarotate import records
from tlsarotate.change import OwnerChange, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ProviderError
from tlsarotate.providers import ProviderContext
from tlsarotate.providers.octodns import OctoDnsProvider

ZONE = dns.name.from_text("example.test.")
A = records.owner_name("mx1.example.test", 25)
B = records.owner_name("mx2.example.test", 25)
KEY_ENV = "TLSAROTATE_TEST_OCTO_PDNS"


@pytest.fixture
def prov(powerdns: PowerDns, monkeypatch: pytest.MonkeyPatch) -> OctoDnsProvider:
    monkeypatch.setenv(KEY_ENV, powerdns.api_key)
    opts = powerdns.octodns_options()
    opts["api_key"] = f"env/{KEY_ENV}"
    return OctoDnsProvider(
        "pdns", {"class": "octodns_powerdns.PowerDnsProvider", "options": opts}, ProviderContext()
    )


def others(pdns: PowerDns) -> list[dict[str, Any]]:
    """Every RRset but TLSA and SOA (its serial moves), exactly as the API returns it."""
    keep = [s for s in pdns.rrsets() if s["type"] not in ("TLSA", "SOA")]
    return sorted(keep, key=lambda s: (s["name"], s["type"]))


def change(p: OctoDnsProvider, **new: Any) -> ZoneChange:
    owners = {"A": A, "B": B}
    now = p.read(ZONE, [A, B])
    return ZoneChange(
        ZONE, tuple(OwnerChange(owners[k], now.get(owners[k]), v) for k, v in new.items())
    )


def test_other_records_stay_byte_for_byte(prov: OctoDnsProvider, powerdns: PowerDns) -> None:
    before = others(powerdns)
    assert len(before) >= 6, before  # NS, ns1 A, mx A, MX, TXT, _dmarc TXT
    prov.apply(change(prov, A=rrset(1, 2), B=rrset(3)))
    prov.apply(change(prov, A=rrset(2), B=None))
    assert prov.read(ZONE, [A, B]) == {A: rrset(2)}
    assert others(powerdns) == before


def test_a_plan_outside_the_managed_owners_is_refused(
    prov: OctoDnsProvider, powerdns: PowerDns
) -> None:
    prov.apply(change(prov, A=rrset(1)))
    plan = prov.octo.plan

    def another_writer_first(desired: Any) -> Any:
        # someone changes an unmanaged record after our read, before octoDNS's own read:
        # octoDNS would plan to put it back
        powerdns.patch(
            [
                {
                    "name": "mx.example.test.",
                    "type": "A",
                    "ttl": 300,
                    "changetype": "REPLACE",
                    "records": [{"content": "192.0.2.7", "disabled": False}],
                }
            ]
        )
        return plan(desired)

    prov.octo.plan = another_writer_first
    ch = change(prov, A=rrset(1, 2), B=rrset(3))
    with pytest.raises(ProviderError) as ei:
        prov.apply(ch)
    assert not isinstance(ei.value, ConcurrentChangeError)
    assert_one_line(ei.value, "mx.example.test", "outside the managed TLSA owners", "nothing")
    prov.octo.plan = plan
    assert prov.read(ZONE, [A, B]) == {A: rrset(1)}  # nothing was written
    mx = [s for s in powerdns.rrsets() if (s["name"], s["type"]) == ("mx.example.test.", "A")]
    assert [r["content"] for r in mx[0]["records"]] == ["192.0.2.7"]  # theirs stays


def test_a_change_between_the_check_and_octodns_read_is_concurrent(
    prov: OctoDnsProvider, powerdns: PowerDns
) -> None:
    prov.apply(change(prov, A=rrset(1)))
    plan = prov.octo.plan

    def another_writer_first(desired: Any) -> Any:
        powerdns.set_tlsa(A, 300, [records.to_text(r) for r in rrset(9).sorted()])
        return plan(desired)

    prov.octo.plan = another_writer_first
    with pytest.raises(ConcurrentChangeError) as ei:
        prov.apply(change(prov, A=rrset(1, 2), B=rrset(3)))
    assert_one_line(ei.value, str(A), "nothing was written")
    prov.octo.plan = plan
    assert prov.read(ZONE, [A, B]) == {A: rrset(9)}


def test_a_change_past_update_batch_size_is_split_into_atomic_updates(
    bind: BindServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """octodns-bind sends one UPDATE per update_batch_size changes: the provider splits the
    change into parts of that size, each one plan and one UPDATE, the next planned once the
    previous one is read back (here the first read after each UPDATE is made to lag, as an
    AXFR of an inline-signed zone can: planning on it would undo the previous part)."""
    monkeypatch.setenv("TLSAROTATE_TEST_OCTO_TSIG", bind.key_secret)
    opts = {
        "host": "127.0.0.1",
        "port": bind.port,
        "key_name": bind.key_name,
        "key_secret": "env/TLSAROTATE_TEST_OCTO_TSIG",
        "key_algorithm": "hmac-sha256",
        "update_batch_size": 2,
    }
    p = OctoDnsProvider(
        "bind", {"class": "octodns_bind.Rfc2136Provider", "options": opts}, ProviderContext()
    )
    plans: list[int] = []
    apply, populate = p.octo.apply, p.octo.populate
    lag: dict[str, Any] = {"before": [], "next": False}

    def lagging_apply(plan: Any) -> Any:
        plans.append(len(plan.changes))
        res = apply(plan)
        lag["next"] = True  # the first read after an UPDATE still shows the zone before it
        return res

    def lagging_populate(zone: Any, target: bool = False, lenient: bool = False) -> Any:
        if lag["next"]:
            lag["next"] = False
            for r in lag["before"]:
                zone.add_record(r, lenient=True)
            return True
        exists = populate(zone, target=target, lenient=lenient)
        lag["before"] = list(zone.records)
        return exists

    p.octo.apply, p.octo.populate = lagging_apply, lagging_populate
    owners = [records.owner_name(f"host{i}.example.test", 25) for i in range(5)]
    p.apply(ZoneChange(ZONE, tuple(OwnerChange(o, None, rrset(i)) for i, o in enumerate(owners))))
    assert plans == [2, 2, 1]
    want = {o: rrset(i) for i, o in enumerate(owners)}
    wait_until(lambda: p.read(ZONE, owners) == want, 30, "the last part to be served")


def test_secrets_never_show(powerdns: PowerDns, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "wrong-" + powerdns.api_key)
    opts = {**powerdns.octodns_options(), "api_key": f"env/{KEY_ENV}"}
    p = OctoDnsProvider(
        "pdns", {"class": "octodns_powerdns.PowerDnsProvider", "options": opts}, ProviderContext()
    )
    assert "wrong-" not in repr(p) and powerdns.api_key not in repr(p)
    with pytest.raises(ProviderError) as ei:
        p.read(ZONE, [A])
    assert_one_line(ei.value, "authentication", secrets=[powerdns.api_key, "wrong-"])


CONFIG = """
state_dir: state
providers:
  octo:
    type: octodns
    class: {cls}
    options:
      host: 127.0.0.1
      port: 8081
{extra}
services:
  - name: mail
    zone: example.test.
    provider: octo
    hosts: [mx.example.test]
    ports: [25]
    certificate:
      deployed: {{cert: c.pem, key: k.pem}}
"""


@pytest.mark.parametrize(
    ("cls", "extra", "needles"),
    [
        (
            "tests.support.octodns_notlsa.NoTlsa",
            "      api_key: env/X",
            ["tests.support.octodns_notlsa.NoTlsa", "does not support TLSA"],
        ),
        ("octodns_nosuch.Provider", "", ["octodns_nosuch", "cannot import"]),
        ("octodns_powerdns.NoSuchClass", "", ["octodns_powerdns", "NoSuchClass"]),
        (
            "octodns_powerdns.PowerDnsProvider",
            "      api_key: 5e3cr3t-inline",
            ["options.api_key", "never written inline", "api_key_env"],
        ),
        (
            "octodns_powerdns.PowerDnsProvider",
            "      api_key: env/TLSAROTATE_TEST_UNSET_VAR",
            ["TLSAROTATE_TEST_UNSET_VAR", "not set"],
        ),
        (
            "octodns_powerdns.PowerDnsProvider",
            "      api_key_file: relative.key",
            ["options.api_key_file", "absolute"],
        ),
    ],
)
def test_validate_refuses_in_one_line(
    tmp_path: Path, write_pair: Any, cls: str, extra: str, needles: list[str]
) -> None:
    c, k, _ = write_pair()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        CONFIG.format(cls=cls, extra=extra).replace("c.pem", str(c)).replace("k.pem", str(k))
    )
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, *needles)
    assert "5e3cr3t-inline" not in proc.stderr + proc.stdout


def test_validate_accepts_a_secret_file(tmp_path: Path, write_pair: Any) -> None:
    c, k, _ = write_pair()
    key = tmp_path / "pdns.key"
    key.write_text("a-key-in-a-file\n")
    key.chmod(0o644)
    cfg = tmp_path / "config.yaml"
    text = CONFIG.format(
        cls="octodns_powerdns.PowerDnsProvider", extra=f"      api_key_file: {key}"
    )
    cfg.write_text(text.replace("c.pem", str(c)).replace("k.pem", str(k)))
    loose = run_cli("-c", cfg, "validate")
    assert_one_line_error(loose, str(key), "not private")
    key.chmod(0o600)
    ok = run_cli("-c", cfg, "validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
