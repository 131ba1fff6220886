"""Provider limits in the plan (issue #12): the TTL a provider really applies is what the
engine waits for; declared limits (minimum / maximum TTL, accepted TTL values, writes per
minute) are refused at ``validate`` and honoured by the write workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.support.helpers import assert_one_line, rrset
from tests.support.world import SimWorld
from tlsarotate import phases
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.errors import ConfigError
from tlsarotate.providers import Limits
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.memory import MemoryProvider, Written

ROUNDED = 3600


class RoundsUp(MemoryProvider):
    """A backend that stores every RRset with a TTL of at least an hour, whatever it is sent
    (and says nothing about it)."""

    def write(self, part: ZoneChange) -> Written:
        up = ZoneChange(
            part.zone,
            tuple(
                c.__class__(c.owner, c.old, TlsaRRset.of(max(c.new.ttl, ROUNDED), c.new.records))
                if c.new is not None
                else c
                for c in part.changes
            ),
        )
        return super().write(up)


def test_a_provider_that_rounds_ttls_up_is_waited_for_with_its_real_ttl(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, ttl=300)
    prov = w.use_provider(RoundsUp("dns", {}, ProviderContext()))
    assert {rr.ttl for rr in w.current().values()} == {ROUNDED}
    w.clock.advance(10 * ROUNDED)
    w.new_next()
    plans = w.apply()
    assert [p.phase for p in plans] == [phases.WAIT_TTL]
    assert plans[0].ready_at == pytest.approx(w.clock.now() + ROUNDED)
    w.clock.advance(301)
    assert [p.phase for p in w.apply()] == [phases.WAIT_TTL]
    assert w.reloads == 0
    w.clock.advance(ROUNDED - 301)
    assert [p.phase for p in w.apply()] == [phases.IDLE]
    assert w.reloads == 1 and w.violations == []
    assert len(prov.writes) == 2, prov.writes  # publish, retire: no TTL rewrite loop


# -- declared limits ------------------------------------------------------------------------


class DesecLike(MemoryProvider):
    """deSEC's published limits: TTL at least 3600 s, 15 writes a minute."""

    type_name = "desec-like"
    label = "deSEC"
    limits = Limits(min_ttl=3600, max_ttl=86400, writes_per_minute=15)


@pytest.mark.parametrize(
    ("limits", "ttl", "problem"),
    [
        (Limits(min_ttl=3600), 300, "accepts at least 3600 seconds"),
        (Limits(min_ttl=3600), 3600, None),
        (Limits(max_ttl=86400), 86401, "accepts at most 86400 seconds"),
        (Limits(min_ttl=60, max_ttl=86400, ttl_values={1: "automatic"}), 1, None),
        (
            Limits(min_ttl=60, max_ttl=86400, ttl_values={1: "automatic"}),
            30,
            "accepts 1 (automatic) or 60-86400 seconds",
        ),
        (
            Limits(min_ttl=60, ttl_values={5: "", 1: "automatic"}),
            2,
            "accepts 1 (automatic) or 5 or at least 60 seconds",
        ),
        (Limits(), 1, None),
    ],
)
def test_accepted_ttls(limits: Limits, ttl: int, problem: str | None) -> None:
    assert limits.ttl_problem(ttl) == problem


def test_cloudflare_declares_its_ttls() -> None:
    from tlsarotate.providers.cloudflare import CloudflareProvider

    with pytest.raises(
        ConfigError, match=r"^ttl 30: Cloudflare accepts 1 \(automatic\) or 60-86400 seconds$"
    ):
        CloudflareProvider.check_limits(30)
    CloudflareProvider.check_limits(1)


CONFIG = """
state_dir: state
providers:
  desec:
    type: memory
services:
  - name: mail
    zone: example.test.
    provider: desec
    hosts: [mx.example.test]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1"]
    certificate:
      deployed: {{cert: fullchain.pem, key: privkey.pem}}
"""


def test_validate_refuses_a_ttl_below_the_providers_minimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_pair: Any
) -> None:
    from tlsarotate import config, providers
    from tlsarotate.config import checks

    write_pair("x")
    (tmp_path / "x.crt").rename(tmp_path / "fullchain.pem")
    (tmp_path / "x.key").rename(tmp_path / "privkey.pem")
    real = providers.get_class
    monkeypatch.setattr(providers, "get_class", lambda t: DesecLike if t == "memory" else real(t))
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(ttl=300))
    with pytest.raises(ConfigError) as ei:
        checks.check_files(config.load(path))
    line = assert_one_line(ei.value, "service 'mail'", "provider desec", "ttl 300")
    assert line.endswith("ttl 300: deSEC accepts 3600-86400 seconds")
    path.write_text(CONFIG.format(ttl=3600))
    checks.check_files(config.load(path))  # at the minimum: fine


def test_writes_are_paced_by_the_rate_limit_on_the_clock() -> None:
    clock = FakeClock()
    prov = DesecLike("desec", {}, ProviderContext(clock=clock))
    prov.part_size = 1  # one write per owner
    at: list[float] = []
    write = prov.write

    def timed(part: ZoneChange) -> Written:
        at.append(clock.now())
        return write(part)

    prov.write = timed  # type: ignore[method-assign]
    owners = [dns.name.from_text(f"_25._tcp.mx{i}.example.test.") for i in range(3)]
    zone = dns.name.from_text("example.test.")
    start = clock.now()
    prov.apply(ZoneChange(zone, tuple(OwnerChange(o, None, rrset(1, ttl=3600)) for o in owners)))
    assert [t - start for t in at] == [0, 4, 8]  # 15 a minute: 4 s apart
    clock.advance(1)  # the next apply, a second later, still waits for its turn
    prov.apply(ZoneChange(zone, (OwnerChange(owners[0], rrset(1, ttl=3600), None),)))
    assert at[-1] - start == 12
    clock.advance(100)  # long after: no wait
    before = clock.now()
    prov.apply(ZoneChange(zone, (OwnerChange(owners[1], rrset(1, ttl=3600), None),)))
    assert at[-1] == before
    # reads are not writes: never paced
    prov.read(zone, owners)
    assert clock.now() == before


def test_the_applied_ttl_is_kept_in_the_state_only_once_seen() -> None:
    from tlsarotate.state import State

    plain = State("mail")
    assert "ttl_applied" not in plain.to_json()
    seen = plain.with_(ttl_asked=300, ttl_applied=3600)
    assert State.from_json(seen.to_json()) == seen
    assert State.from_json(plain.to_json()) == plain
