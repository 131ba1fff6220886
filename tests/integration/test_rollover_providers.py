# ruff: noqa: F811
"""The same full rollover (publish -> wait -> swap -> retire) on every provider of the contract
suite: memory, zone file, the example plugin, RFC 2136 on real BIND, Route 53 on moto_server,
Cloudflare on the fake API. Exactly one backend write per zone per engine step, and the safety
invariants of tests/support/world.py after every event."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_provider_contract import Case, case  # noqa: F401  the contract's fixture
from tests.support.fake_cloudflare import cf_server  # noqa: F401
from tests.support.knot import knot, knot_server  # noqa: F401
from tests.support.moto_server import moto_url, route53_env  # noqa: F401
from tests.support.plugins import plugin_dir, plugin_installed  # noqa: F401
from tests.support.powerdns import powerdns, powerdns_server  # noqa: F401
from tests.support.servers import bind, bind_servers  # noqa: F401
from tests.support.world import SimWorld
from tlsarotate import phases, records


def test_full_rollover_one_write_per_step(case: Case, tmp_path: Path) -> None:
    (tmp_path / "world").mkdir()
    w = SimWorld(tmp_path / "world", ttl=300, hosts=("mx1.example.test", "mx2.example.test"))
    rec = w.use_provider(case.provider)
    old = w.deployed()
    w.new_next()
    nxt = w.next()

    def step_writes() -> int:
        before = case.helpers.writes()
        w.engine().step([w.service], act=True)
        w.check()
        return case.helpers.writes() - before

    # publish: one write for both owners
    assert step_writes() == 1
    assert len(rec.writes[-1].changes) == 2
    assert w.published_texts() == {
        records.to_text(r) for m in (old, nxt) for r in records.build_all(m, w.service.params)
    }
    # waiting: no writes, no swap
    assert step_writes() == 0
    assert w.reloads == 0
    w.clock.advance(300)
    # swap (no DNS write), then retire: one write
    assert step_writes() == 0
    assert w.reloads == 1 and w.deployed().same_as(nxt)
    assert step_writes() == 1
    plans = w.apply()
    assert [p.phase for p in plans] == [phases.IDLE]
    assert w.published_texts() == {
        records.to_text(r) for r in records.build_all(nxt, w.service.params)
    }
    assert len(rec.writes) == 2
    assert w.violations == []
