"""A service's TLSRPT record (``tlsrpt_record:``), as the CLI: ``plan`` shows the TXT write,
``apply`` makes it in the zone file (the other TXT records at ``_smtp._tls`` kept, with their
TTL), a bad rua URI or a provider that cannot write TXT is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.schemas import validate
from tests.support.tlsrpt_world import world_config
from tests.support.world import SimWorld
from tlsarotate import config
from tlsarotate.errors import ConfigError
from tlsarotate.providers import Capabilities
from tlsarotate.providers.memory import MemoryProvider

NAME = "_smtp._tls.example.test."
WANT = "v=TLSRPTv1; rua=mailto:tlsrpt@example.test,https://reports.example.test/tlsrpt"
RECORD = """\
    tlsrpt_record:
      rua:
        - mailto:tlsrpt@example.test
        - https://reports.example.test/tlsrpt
"""


@pytest.fixture
def world(tmp_path: Path) -> SimWorld:
    w = SimWorld(tmp_path, ttl=300)
    w.apply()
    return w


def test_plan_shows_apply_writes_and_other_txt_records_stay(world: SimWorld) -> None:
    cfg = world_config(world, service=RECORD)
    zone = world.tmp / "example.test.zone"
    zone.write_text(
        zone.read_text()
        + '_smtp._tls 600 IN TXT "v=TLSRPTv1; rua=mailto:old@example.test"\n'
        + '_smtp._tls 600 IN TXT "site-verification=abc123"\n'
    )
    before = zone.read_text()

    proc = run_cli("-c", cfg, "plan")
    assert proc.returncode == 2, proc.stdout + proc.stderr  # a write to make now
    assert (
        f"  tlsrpt_record: TXT {NAME} holds 'v=TLSRPTv1; rua=mailto:old@example.test'; "
        f"configured: {WANT!r}"
    ) in proc.stdout
    assert f'  - {NAME} 600 IN TXT "v=TLSRPTv1; rua=mailto:old@example.test"' in proc.stdout
    assert f'  + {NAME} 600 IN TXT "{WANT}"' in proc.stdout
    assert "site-verification" not in proc.stdout  # kept: neither removed nor added
    doc = validate("plan", run_cli("-c", cfg, "plan", "--output", "json").stdout)
    rec = doc["services"][0]["tlsrpt_record"]
    assert rec["state"] == "different" and rec["configured"] == WANT
    assert rec["write"] == ['"site-verification=abc123"', f'"{WANT}"'] and rec["ttl"] == 600
    assert zone.read_text() == before  # plan writes nothing

    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"==> mail: wrote TXT {NAME} {WANT!r}" in proc.stdout
    after = zone.read_text()
    assert "old@example.test" not in after
    assert f'{NAME} 600 IN TXT "site-verification=abc123"' in after  # kept, TTL too
    assert f'{NAME} 600 IN TXT "{WANT}"' in after

    proc = run_cli("-c", cfg, "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"  tlsrpt_record: TXT {NAME} holds the configured TLSRPT record" in proc.stdout
    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 0 and "wrote TXT" not in proc.stdout
    assert zone.read_text() == after  # nothing to write: not even the serial moves


def test_a_missing_record_is_added_at_the_domain_named(world: SimWorld) -> None:
    rec = "{domain: mx1.example.test, rua: [mailto:r@example.test]}"
    cfg = world_config(world, service=f"    tlsrpt_record: {rec}\n")
    proc = run_cli("-c", cfg, "apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (world.tmp / "example.test.zone").read_text()
    want = '"v=TLSRPTv1; rua=mailto:r@example.test"'
    assert f"_smtp._tls.mx1.example.test. 3600 IN TXT {want}" in text


@pytest.mark.parametrize(
    ("rua", "needle"),
    [
        ("http://reports.example.test/", "use mailto: or https: (RFC 8460 §3)"),
        ("mailto:nobody", "not a mailto: address"),
        ("https://reports.example.test/a,b", "',' and ';' separate URIs and fields"),
        ("https:reports", "an https: URI names a host"),
    ],
)
def test_a_bad_rua_is_one_line_naming_the_key_and_line(
    world: SimWorld, rua: str, needle: str
) -> None:
    cfg = world_config(world, service=f"    tlsrpt_record:\n      rua: [{rua!r}]\n")
    zone = world.tmp / "example.test.zone"
    before = zone.read_text()
    for cmd in ("validate", "apply"):
        proc = run_cli("-c", cfg, cmd)
        assert_one_line_error(proc, needle, "services[0].tlsrpt_record.rua[0]", "config.yaml:17:")
    assert zone.read_text() == before


def test_a_domain_outside_the_zone_is_one_line(world: SimWorld) -> None:
    cfg = world_config(
        world, service="    tlsrpt_record: {domain: example.org, rua: [mailto:r@example.test]}\n"
    )
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, "tlsrpt_record.domain", "is not inside zone example.test.")


def test_a_provider_without_txt_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MemoryProvider, "capabilities", Capabilities(prerequisites=False))
    text = """\
providers:
  mem: {type: memory}
services:
  - name: mail
    zone: example.test
    provider: mem
    hosts: [mx1.example.test]
    certificate: {deployed: {cert: c.pem, key: k.pem}}
    tlsrpt_record:
      rua: [mailto:r@example.test]
"""
    with pytest.raises(ConfigError) as e:
        config.parse(text, tmp_path / "c.yaml")
    msg = str(e.value)
    assert "line 10" in msg or ":10" in msg, msg
    assert "provider mem (memory) cannot write TXT records" in msg, msg


def test_check_warns_until_the_record_is_the_configured_one(world: SimWorld) -> None:
    cfg = world_config(world, service=RECORD)
    prom = world.tmp / "tlsarotate.prom"
    proc = run_cli("-c", cfg, "check", "--no-live", "--prometheus", prom)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # WARNING
    assert (
        f"tlsrpt_record: TXT {NAME} has no TLSRPT record; configured: {WANT!r}; "
        "tlsarotate apply writes it"
    ) in proc.stdout
    metric = f'tlsarotate_tlsrpt_record_ok{{service="mail",owner="{NAME}"}}'
    assert f"{metric} 0\n" in prom.read_text()
    doc = validate("check", run_cli("-c", cfg, "check", "--no-live", "--output", "json").stdout)
    assert any("tlsrpt_record" in f["message"] for f in doc["findings"])

    assert run_cli("-c", cfg, "apply").returncode == 0
    proc = run_cli("-c", cfg, "check", "--no-live", "--prometheus", prom)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tlsrpt_record" not in proc.stdout
    assert f"{metric} 1\n" in prom.read_text()

    zone = world.tmp / "example.test.zone"  # someone edits it by hand
    zone.write_text(zone.read_text().replace("mailto:tlsrpt@", "mailto:other@"))
    proc = run_cli("-c", cfg, "check", "--no-live", "--prometheus", prom)
    assert proc.returncode == 1 and "holds 'v=TLSRPTv1; rua=mailto:other@" in proc.stdout
    assert f"{metric} 0\n" in prom.read_text()


def test_a_refused_txt_write_is_one_line_and_nothing_changes(world: SimWorld) -> None:
    cfg = world_config(world, service=RECORD)
    zone = world.tmp / "example.test.zone"
    reload = '    reload: ["false"]\n'  # the zone's server refuses to load it
    cfg.write_text(cfg.read_text().replace(f"    path: {zone}\n", f"    path: {zone}\n{reload}"))
    before = zone.read_text()
    proc = run_cli("-c", cfg, "apply")
    assert_one_line_error(proc, "provider 'dns' (zonefile)", "reload command 'false' failed")
    assert "the previous zone file was restored" in proc.stderr
    assert zone.read_text() == before
