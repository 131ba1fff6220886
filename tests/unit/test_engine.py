"""The rollover engine on a simulated world (tests/support/world.py): phases, waits, swaps,
faults."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

import pytest

from tests.support.world import Crash, SimWorld
from tlsarotate import phases, plan_render, planner, records
from tlsarotate.change import TlsaRRset
from tlsarotate.errors import ConcurrentChangeError, SwapError, UnsafeChangeError


def phase_names(plans: list[planner.Plan]) -> list[str]:
    return [p.phase for p in plans]


def texts(world: SimWorld, m) -> set[str]:  # type: ignore[no-untyped-def]
    return {records.to_text(r) for r in records.build_all(m, world.service.params)}


def test_idle_when_published_matches_deployed(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    plans = w.apply()
    assert phase_names(plans) == [phases.IDLE]
    assert w.provider.writes == []


def test_full_rollover_publish_wait_swap_retire(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, ttl=300, margin=60)
    old = w.deployed()
    w.new_next()
    nxt = w.next()
    plans = w.apply()
    # publish happened, then the engine stopped in the TTL wait
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert len(w.provider.writes) == 1
    assert w.published_texts() == texts(w, old) | texts(w, nxt)
    assert plans[0].ready_at == pytest.approx(w.clock.now() + 300 + 60)
    assert w.deployed().same_as(old) and w.reloads == 0
    # not yet: one second before the wait runs out
    w.clock.advance(359)
    assert phase_names(w.apply()) == [phases.WAIT_TTL]
    assert w.reloads == 0
    w.clock.advance(1)
    plans = w.apply()
    assert phase_names(plans) == [phases.IDLE]
    assert w.deployed().same_as(nxt) and w.reloads == 1
    assert w.published_texts() == texts(w, nxt)
    assert len(w.provider.writes) == 2  # publish, retire
    assert w.violations == []
    # the deployed paths are links into the versioned store; the previous pair is kept there
    store = tmp_path / "deployed/.tlsarotate/privkey.pem"
    assert (tmp_path / "deployed/privkey.pem").is_symlink()
    assert (tmp_path / "deployed/fullchain.pem").is_symlink()
    assert os.readlink(store / "current") == "2"
    from tlsarotate import certfiles

    assert certfiles.load_pair(store / "1/cert.pem", store / "1/key.pem").same_as(old)
    # the key keeps its mode (SimWorld writes 0644), minus what others could read
    assert (tmp_path / "deployed/privkey.pem").stat().st_mode & 0o777 == 0o640
    assert (store / "1/key.pem").stat().st_mode & 0o777 == 0o640


def test_wait_uses_the_old_ttl_as_observed_not_as_configured(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, ttl=300)
    # the zone holds the deployed records with a TTL of 7200 that the config does not know
    owner = w.service.owners[0]
    long = TlsaRRset.of(7200, w.provider.data[w.service.zone][owner].records)
    w.provider.data[w.service.zone][owner] = long
    w.versions[-1].data[owner] = long
    w.new_next()
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert plans[0].ready_at == pytest.approx(w.clock.now() + 7200)
    assert {rr.ttl for rr in w.provider.data[w.service.zone].values()} == {300}
    w.clock.advance(301)
    assert phase_names(w.apply()) == [phases.WAIT_TTL]
    assert w.reloads == 0
    w.clock.advance(7200 - 301)
    assert phase_names(w.apply()) == [phases.IDLE]
    assert w.reloads == 1 and w.violations == []


def test_lagging_server_blocks_and_is_named(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, lags=(0.0, 0.0))
    w.apply()
    w.observer.down[1] = True
    w.new_next()
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_PROPAGATION]
    assert any("ns2.example.test" in x and "timeout" in x for x in plans[0].waiting_for)
    w.clock.advance(100_000)
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_PROPAGATION]
    assert w.reloads == 0  # never swaps while a server does not serve the new records
    w.observer.down[1] = False
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_TTL]  # the wait starts only now
    w.clock.advance(300)
    assert phase_names(w.apply()) == [phases.IDLE]
    assert w.reloads == 1 and w.violations == []


def test_fast_path_key_reuse_swaps_without_write_or_wait(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, params=("3 1 1",))
    w.apply()
    w.clock.advance(1000)  # the published RRset has long been visible
    w.apply()
    w.new_next(key_index=0)  # renewal with the same key
    writes = len(w.provider.writes)
    plans = w.apply()
    assert phase_names(plans) == [phases.IDLE]
    assert w.reloads == 1
    assert len(w.provider.writes) == writes  # no DNS write at all
    assert w.deployed().same_as(w.next())


def test_reuse_key_renewal_right_after_a_rollover_swaps_at_once(tmp_path: Path) -> None:
    """The RRset caches may still hold from before the retire ({old, new}) accepts a renewal
    with the new key, so the swap needs no wait (the hook's apply finishes it)."""
    w = SimWorld(tmp_path, params=("3 1 1",))
    w.apply()
    w.clock.advance(1000)
    w.new_next(key_index=1)
    assert phase_names(w.apply()) == [phases.WAIT_TTL]
    w.clock.advance(300)
    assert phase_names(w.apply()) == [phases.IDLE]  # swapped and retired: only the new record
    assert w.reloads == 1 and len(w.published_texts()) == 1
    w.new_next(reuse=True)  # renewed again at once, same key
    writes = len(w.provider.writes)
    plans = w.engine().step([w.service], act=True)
    assert phase_names(plans) == [phases.SWAP]
    assert w.reloads == 2 and len(w.provider.writes) == writes
    assert w.deployed().same_as(w.next()) and w.violations == []


def test_swap_waits_for_a_cached_rrset_with_a_combination_the_next_chain_lacks(
    tmp_path: Path,
) -> None:
    """Right after 3 0 1 is retired, caches may still hold {3 1 1, 3 0 1 (old certificate)}: a
    client holding it requires the 3 0 1 to match too, so a same-key renewal waits one TTL."""
    w = SimWorld(tmp_path)  # 3 1 1 + 3 0 1
    w.apply()
    w.clock.advance(1000)
    w.apply()
    w.set_params(["3 1 1"])
    assert phase_names(w.apply()) == [phases.IDLE]  # 3 1 1 has long been visible: 3 0 1 goes
    assert {t[:5] for t in w.published_texts()} == {"3 1 1"}
    w.new_next(reuse=True)
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert "caches may still hold an older RRset" in plans[0].summary
    assert plans[0].ready_at == pytest.approx(w.clock.now() + 300)
    assert w.reloads == 0
    w.clock.advance(299)
    assert phase_names(w.apply()) == [phases.WAIT_TTL] and w.reloads == 0
    w.clock.advance(1)
    assert phase_names(w.apply()) == [phases.IDLE]
    assert w.reloads == 1 and w.violations == []


def test_state_without_record_history_waits_for_the_unknown_cache(tmp_path: Path) -> None:
    """A state file written before older RRsets were remembered: what caches hold is unknown,
    so even a swap the current RRset accepts waits out the TTL."""
    import json

    w = SimWorld(tmp_path, params=("3 1 1",))
    w.apply()
    w.clock.advance(1000)
    w.new_next(key_index=1)
    w.apply()
    w.clock.advance(300)
    w.apply()  # swapped and retired
    path = tmp_path / "state/mail.json"
    doc = json.loads(path.read_text())
    assert doc["records"] and len(doc["cached"]) == 1  # {old, new} until its TTL runs out
    for k in ("records", "cached"):
        del doc[k]
    path.write_text(json.dumps(doc))
    w.new_next(reuse=True)
    # the swap does not wait: the current RRset was recorded before the history was lost, and
    # only a change of the RRset pushes the (now unknown) records into the cache list
    assert phase_names(w.apply()) == [phases.IDLE] and w.reloads == 2
    w.new_next(key_index=2)
    plans = w.apply()  # publish: the RRset before it is unknown
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert json.loads(path.read_text())["cached"][0]["records"] is None
    assert w.violations == []


def test_parameter_change_adds_waits_then_drops(tmp_path: Path) -> None:
    w = SimWorld(tmp_path, params=("3 0 1",))
    w.clock.advance(1000)
    w.apply()
    w.set_params(["3 1 1"])
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert {t[:5] for t in w.published_texts()} == {"3 0 1", "3 1 1"}
    w.clock.advance(300)
    plans = w.apply()
    assert phase_names(plans) == [phases.IDLE]
    assert {t[:5] for t in w.published_texts()} == {"3 1 1"}
    assert w.violations == []


def _exclusive(w: SimWorld) -> None:
    w.service = dataclasses.replace(w.service, owners_mode="exclusive")
    w.cfg = dataclasses.replace(w.cfg, services=(w.service,))


def test_stale_record_is_marked_and_removed_only_after_deployed_visible(tmp_path: Path) -> None:
    """With ``owners: exclusive`` a record nobody accounts for is stale and goes (once the
    deployed certificate's records are visible)."""
    w = SimWorld(tmp_path, params=("3 1 1",), lags=(0.0, 50.0))
    _exclusive(w)
    owner = w.service.owners[0]
    stale = records.from_text("3 1 1 " + "ab" * 32)
    # the incident: DNS holds only a stale 3 1 1
    w.provider.data[w.service.zone][owner] = TlsaRRset.of(300, [stale])
    w.versions[-1].data[owner] = TlsaRRset.of(300, [stale])
    plan = w.engine().step([w.service], act=False)[0]
    assert plan.phase == phases.PUBLISH
    assert [m.why for m in plan.stale] == ["stale"]
    w.engine().step([w.service], act=True)
    assert records.to_text(stale) in w.published_texts()  # kept until the fix is visible
    w.apply()
    assert records.to_text(stale) in w.published_texts()
    w.clock.advance(50)
    # 1 of the 2 records there (50%) is over max_stale_share: held back until --force
    plan = w.engine().step([w.service], act=False)[0]
    assert plan.phase == phases.CLEANUP and [u.owner for u in plan.unsafe] == [owner]
    writes = len(w.provider.writes)
    with pytest.raises(UnsafeChangeError, match=r"service 'mail'.* removes 1 of 2 records"):
        w.apply()
    assert records.to_text(stale) in w.published_texts() and len(w.provider.writes) == writes
    w.apply(force=True)
    assert records.to_text(stale) not in w.published_texts()


def test_unknown_record_on_a_shared_owner_is_foreign_and_kept(tmp_path: Path) -> None:
    """The incident without ``owners: exclusive``: the deployed certificate's records are
    added, the record nobody here accounts for (maybe another host's) is kept and shown."""
    w = SimWorld(tmp_path, params=("3 1 1",))
    owner = w.service.owners[0]
    other = records.from_text("3 1 1 " + "ab" * 32)
    w.provider.data[w.service.zone][owner] = TlsaRRset.of(300, [other])
    w.versions[-1].data[owner] = TlsaRRset.of(300, [other])
    plans = w.apply(wait=True)
    assert phase_names(plans) == [phases.IDLE]
    assert [(m.owner, m.record, m.why) for m in plans[0].foreign] == [(owner, other, "foreign")]
    assert w.published_texts() == texts(w, w.deployed()) | {records.to_text(other)}
    assert len(w.provider.writes) == 1
    # (the world started broken: only the RRset from before the fix fails the chain)
    assert all(v.startswith("(b) cached version 0 ") for v in w.violations), w.violations


def test_records_published_just_before_a_crash_stay_ours(tmp_path: Path) -> None:
    """The planner claims a write's records before it is made: a crash right after the write
    (before the state is saved) cannot leave them looking like another writer's. A renewal
    then replaces that next certificate, and its records go as ours."""
    w = SimWorld(tmp_path)
    w.new_next()
    first = w.next()
    w.crash_at = "apply-after"
    with pytest.raises(Crash):
        w.apply()
    assert texts(w, first) <= w.published_texts()
    w.new_next()  # renewed again before the rollover went on
    plans = w.apply(wait=True)
    assert phase_names(plans) == [phases.IDLE] and plans[0].foreign == ()
    assert w.published_texts() == texts(w, w.next()) and w.violations == []


def test_engine_folds_each_write_into_ours(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    old = w.deployed()
    w.new_next()
    w.engine().step([w.service], act=True)  # publish
    owner = w.service.owners[0].to_text()
    ours = w.store.load("mail").ours
    assert ours is not None and set(ours[owner]) == texts(w, old) | texts(w, w.next())
    assert phase_names(w.engine().step([w.service], act=True)) == [phases.WAIT_TTL]
    w.clock.advance(300)
    assert phase_names(w.engine().step([w.service], act=True)) == [phases.SWAP]
    assert phase_names(w.engine().step([w.service], act=True)) == [phases.CLEANUP]
    # right after the retire write, before any new look at DNS: the retired are not ours
    ours = w.store.load("mail").ours
    assert ours is not None and set(ours[owner]) == texts(w, w.next())


def test_reload_failure_restores_previous_and_does_not_retire(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    old = w.deployed()
    w.new_next()
    w.apply()
    w.clock.advance(300)
    w.fail_reload = 1
    with pytest.raises(SwapError, match=r"restored.*NOT retired"):
        w.apply()
    assert w.deployed().same_as(old)
    assert w.served.same_as(old)
    assert texts(w, old) <= w.published_texts()
    # the next run tries again and succeeds
    w.apply()
    assert w.deployed().same_as(w.next()) and w.violations == []


# how often each crash point is reached by the four runs below (publish, wait, swap+retire):
# crashing at its skip-th pass covers every reachable (point, pass) pair and no unreachable one
CRASH_REACH = {"apply-before": 2, "apply-after": 2, "save": 4, "reload": 1, "observe": 4}


@pytest.mark.parametrize(
    ("point", "skip"), [(p, k) for p, n in CRASH_REACH.items() for k in range(n)]
)
def test_crash_anywhere_then_rerun_converges(tmp_path: Path, point: str, skip: int) -> None:
    w = SimWorld(tmp_path)
    w.new_next()
    nxt = w.next()
    w.crash_at, w.crash_after = point, skip
    for _ in range(4):
        with contextlib.suppress(Crash):
            w.apply()
        w.clock.advance(200)
    # maybe_crash clears crash_at when it fires: the crash really happened
    assert w.crash_at is None, f"{point} was reached fewer than {skip + 1} times: no crash"
    w.apply(wait=True)
    assert w.deployed().same_as(nxt)
    assert w.served.same_as(nxt)
    assert w.published_texts() == texts(w, nxt)
    assert w.violations == []


def test_concurrent_change_is_detected_and_replanned(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    w.new_next()
    owner = w.service.owners[0]
    original = w.provider.apply
    calls = {"n": 0}

    def racing_apply(change):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:  # someone else adds a record between our read and our write
            other = records.from_text("3 1 1 " + "cd" * 32)
            cur = w.provider.data[w.service.zone][owner]
            w.provider.set(w.service.zone, owner, TlsaRRset.of(cur.ttl, cur.records | {other}))
        return original(change)

    w.provider.apply = racing_apply  # type: ignore[method-assign]
    events: list[str] = []
    engine = w.engine()
    engine.on_event = events.append
    engine.run([w.service], wait=False)
    assert calls["n"] >= 2  # the first write failed on its prerequisite, the replan succeeded
    assert any("re-planning" in e for e in events)
    # the successful publish was planned from a fresh read: it kept the other writer's record
    first = w.provider.writes[0].changes[0]
    assert first.old is not None and first.new is not None
    other = "3 1 1 " + "cd" * 32
    assert other in first.old.texts() and other in first.new.texts()


def test_concurrent_change_every_time_gives_up(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    w.new_next()

    def always_conflict(change):  # type: ignore[no-untyped-def]
        raise ConcurrentChangeError("the TLSA RRset changed since it was read")

    w.provider.apply = always_conflict  # type: ignore[method-assign]
    with pytest.raises(ConcurrentChangeError):
        w.apply()


def test_one_write_per_zone_per_step_across_services(tmp_path: Path) -> None:
    import dataclasses

    w = SimWorld(tmp_path, hosts=("mx1.example.test", "mx2.example.test"))
    w.new_next()
    svc2 = dataclasses.replace(w.service, name="web", hosts=("www.example.test.",), ports=(443,))
    for o in svc2.owners:
        w.provider.data[w.service.zone][o] = TlsaRRset.of(
            300, records.build_all(w.deployed(), svc2.params)
        )
    engine = w.engine()
    engine.cfg = dataclasses.replace(w.cfg, services=(w.service, svc2))
    before = len(w.provider.writes)
    engine.step([w.service, svc2], act=True)
    assert len(w.provider.writes) == before + 1
    touched = {ch.owner.to_text() for ch in w.provider.writes[-1].changes}
    # both services roll the same certificate: their changes went out in ONE write
    assert touched == {o.to_text() for o in (*w.service.owners, *svc2.owners)}
    assert len(touched) == 3


def test_two_certificates_rolled_independently(tmp_path: Path) -> None:
    import dataclasses

    from tlsarotate import config, pki

    w = SimWorld(tmp_path, params=("3 1 1",))
    (tmp_path / "rsa").mkdir()
    (tmp_path / "rsa-next").mkdir()
    rsa = pki.make_leaf(w.ca, ["mx1.example.test"], "rsa2048", days=3650, not_before=w.not_before)
    SimWorld._write_pair(tmp_path / "rsa", rsa)
    SimWorld._write_pair(tmp_path / "rsa-next", rsa)
    rsa_slot = config.CertSlot(
        "rsa",
        config.CertPaths(cert=tmp_path / "rsa/fullchain.pem", key=tmp_path / "rsa/privkey.pem"),
        config.CertPaths(
            cert=tmp_path / "rsa-next/fullchain.pem", key=tmp_path / "rsa-next/privkey.pem"
        ),
        reload=("reload",),
    )
    svc = dataclasses.replace(w.service, certificates=(*w.service.certificates, rsa_slot))
    w.service = svc
    w.cfg = dataclasses.replace(w.cfg, services=(svc,))
    w.apply()  # publishes the RSA record beside the ECDSA one
    w.clock.advance(300)
    assert phase_names(w.apply()) == [phases.IDLE]
    both = w.published_texts()
    assert len(both) == 2
    w.new_next()  # only the ECDSA certificate renews
    w.apply()
    w.clock.advance(300)
    w.apply()
    from tlsarotate import certfiles

    assert (tmp_path / "deployed/fullchain.pem").is_symlink()  # the ECDSA slot was swapped
    assert not (tmp_path / "rsa/fullchain.pem").is_symlink()  # the rsa slot was never swapped
    assert w.deployed().same_as(w.next())
    rsa_rec = records.to_text(
        records.build(certfiles.load(tmp_path / "rsa/fullchain.pem"), records.parse_params("3 1 1"))
    )
    assert rsa_rec in w.published_texts() and len(w.published_texts()) == 2


def test_unsigned_zone_is_refused(tmp_path: Path) -> None:
    from tlsarotate.observation import Observation

    w = SimWorld(tmp_path)
    real = w.observer.observe

    def unsigned(zone, owners):  # type: ignore[no-untyped-def]
        o = real(zone, owners)
        return Observation(o.zone, o.servers, zone_signed=False)

    w.observer.observe = unsigned  # type: ignore[method-assign]
    w.new_next()
    plans = w.apply()
    assert phase_names(plans) == [phases.BLOCKED]
    assert "not signed" in plans[0].summary and "allow_unsigned" in plans[0].summary
    assert w.provider.writes == []
    assert plan_render.exit_code(plans) == 1


def test_next_equal_to_deployed_is_idle(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)  # next and deployed hold the same certificate (as after any rollover)
    plans = w.apply()
    assert phase_names(plans) == [phases.IDLE]
    assert w.provider.writes == [] and w.reloads == 0


def test_corrupt_state_is_rebuilt_and_takes_the_safe_path(tmp_path: Path) -> None:
    w = SimWorld(tmp_path)
    w.apply()
    w.clock.advance(10_000)
    w.apply()
    (tmp_path / "state/mail.json").write_text("{not json")
    w.new_next(key_index=0)
    w.set_params(["3 1 1"])
    plan = w.engine().step([w.service], act=False)[0]
    assert any("corrupt" in x for x in plan.warnings)
    # the old 3 0 1 has to go first; and the wait restarts from now, not from the past
    writes = len(w.provider.writes)
    plans = w.apply()
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert plans[0].ready_at == pytest.approx(w.clock.now() + 300)
    assert w.reloads == 0 and len(w.provider.writes) == writes
    assert {t[:5] for t in w.published_texts()} == {"3 0 1", "3 1 1"}
    w.clock.advance(300)
    plans = w.apply()  # 3 0 1 retired; caches may still hold it: the swap waits one more TTL
    assert {t[:5] for t in w.published_texts()} == {"3 1 1"}
    assert phase_names(plans) == [phases.WAIT_TTL]
    assert plans[0].ready_at == pytest.approx(w.clock.now() + 300)
    assert w.reloads == 0
    w.clock.advance(300)
    assert phase_names(w.apply()) == [phases.IDLE]
    assert w.reloads == 1 and w.deployed().same_as(w.next()) and w.violations == []


def test_keep_ahead_next_key_gives_a_zero_wait_renewal(tmp_path: Path) -> None:
    """A pre-generated next key's 3 1 1 is published long before the renewal; the renewal
    made with that key swaps at once (no write, no wait), and a fresh next key follows."""
    import dataclasses

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tlsarotate import certfiles, config

    w = SimWorld(tmp_path, params=("3 1 1",))
    key_path = tmp_path / "keys/next.key"
    slot = dataclasses.replace(
        w.service.certificates[0], next_key=config.NextKey(key_path, "ecdsa-p256")
    )
    w.service = dataclasses.replace(w.service, certificates=(slot,))
    w.cfg = dataclasses.replace(w.cfg, services=(w.service,))
    w.apply()  # generates the key and publishes its 3 1 1 beside the deployed one
    assert key_path.stat().st_mode & 0o777 == 0o600
    first_key = certfiles.load(key_path)
    ahead = records.to_text(records.build(first_key, records.parse_params("3 1 1")))
    assert ahead in w.published_texts() and len(w.published_texts()) == 2
    w.clock.advance(10_000)
    assert phase_names(w.apply()) == [phases.IDLE]
    # the renewal: certbot certonly --csr with the next key
    key = load_pem_private_key(key_path.read_bytes(), None)
    leaf = w._leaf(["mx1.example.test"], key)  # type: ignore[arg-type]
    SimWorld._write_pair(tmp_path / "next", leaf)
    writes = len(w.provider.writes)
    reloads = w.reloads
    plans = w.engine().step([w.service], act=True)
    assert [p.phase for p in plans] == [phases.SWAP]  # the very first step is the swap
    assert w.reloads == reloads + 1 and len(w.provider.writes) == writes
    assert w.deployed().spki == first_key.spki
    # a fresh next key took the used one's place, and its record goes out next
    fresh = certfiles.load(key_path)
    assert fresh.spki != first_key.spki
    assert (tmp_path / "keys/next.key.used").exists()
    w.apply()
    fresh_rec = records.to_text(records.build(fresh, records.parse_params("3 1 1")))
    assert fresh_rec in w.published_texts()
    assert w.violations == []


def test_a_keep_ahead_swap_finished_after_a_crash_rotates_the_next_key(tmp_path: Path) -> None:
    """Killed at the reload of a keep-ahead swap: the next run finishes the swap (reload,
    retire) AND replaces the used next key, as the uninterrupted swap does. It did not: the
    next key stayed the deployed key, so no fresh key was ever published ahead again."""
    import dataclasses

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tlsarotate import certfiles, config

    w = SimWorld(tmp_path, params=("3 1 1",))
    key_path = tmp_path / "keys/next.key"
    slot = dataclasses.replace(
        w.service.certificates[0], next_key=config.NextKey(key_path, "ecdsa-p256")
    )
    w.service = dataclasses.replace(w.service, certificates=(slot,))
    w.cfg = dataclasses.replace(w.cfg, services=(w.service,))
    w.apply()
    first_key = certfiles.load(key_path)
    w.clock.advance(10_000)
    assert phase_names(w.apply()) == [phases.IDLE]
    key = load_pem_private_key(key_path.read_bytes(), None)
    leaf = w._leaf(["mx1.example.test"], key)  # type: ignore[arg-type]
    SimWorld._write_pair(tmp_path / "next", leaf)
    w.crash_at = "reload"
    with pytest.raises(Crash):
        w.apply()
    assert w.deployed().spki == first_key.spki  # switched, not reloaded
    assert certfiles.load(key_path).spki == first_key.spki
    w.apply()  # recovers: finishes the swap
    assert w.served.spki == first_key.spki
    fresh = certfiles.load(key_path)
    assert fresh.spki != first_key.spki
    assert certfiles.load(tmp_path / "keys/next.key.used").spki == first_key.spki
    w.apply()
    fresh_rec = records.to_text(records.build(fresh, records.parse_params("3 1 1")))
    assert fresh_rec in w.published_texts()
    assert w.violations == []


def test_a_run_killed_before_the_next_key_rotation_rotates_it_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the keep-ahead swap was recorded (journal cleared) but before the used
    next key was replaced: the next run sees the next key is the deployed key and replaces
    it. Before, nothing ever did."""
    import dataclasses

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from tests.support.world import Crash
    from tlsarotate import certfiles, config, nextkey

    w = SimWorld(tmp_path, params=("3 1 1",))
    key_path = tmp_path / "keys/next.key"
    slot = dataclasses.replace(
        w.service.certificates[0], next_key=config.NextKey(key_path, "ecdsa-p256")
    )
    w.service = dataclasses.replace(w.service, certificates=(slot,))
    w.cfg = dataclasses.replace(w.cfg, services=(w.service,))
    w.apply()
    first_key = certfiles.load(key_path)
    w.clock.advance(10_000)
    key = load_pem_private_key(key_path.read_bytes(), None)
    leaf = w._leaf(["mx1.example.test"], key)  # type: ignore[arg-type]
    SimWorld._write_pair(tmp_path / "next", leaf)
    real = nextkey.rotate

    def killed(*a: object, **k: object) -> None:
        raise Crash("rotate")

    monkeypatch.setattr(nextkey, "rotate", killed)
    with pytest.raises(Crash):
        w.apply()
    monkeypatch.setattr(nextkey, "rotate", real)
    assert w.served.spki == first_key.spki and certfiles.load(key_path).spki == first_key.spki
    w.apply()
    fresh = certfiles.load(key_path)
    assert fresh.spki != first_key.spki
    assert certfiles.load(tmp_path / "keys/next.key.used").spki == first_key.spki
    w.apply()
    fresh_rec = records.to_text(records.build(fresh, records.parse_params("3 1 1")))
    assert fresh_rec in w.published_texts()
    assert w.violations == []


def test_a_next_key_that_is_the_deployed_key_is_never_moved_away(tmp_path: Path) -> None:
    """``next_key.path`` naming the deployed key file itself (a config mistake): the check for
    a used next key at the start of every apply must not move the deployed key aside."""
    import dataclasses

    from tlsarotate import certfiles, config

    w = SimWorld(tmp_path, params=("3 1 1",))
    deployed_key = tmp_path / "deployed/privkey.pem"
    deployed_key.chmod(0o600)
    slot = dataclasses.replace(
        w.service.certificates[0], next_key=config.NextKey(deployed_key, "ecdsa-p256")
    )
    w.service = dataclasses.replace(w.service, certificates=(slot,))
    w.cfg = dataclasses.replace(w.cfg, services=(w.service,))
    before = w.deployed()
    w.apply()
    assert w.deployed().same_as(before)
    assert not deployed_key.with_name("privkey.pem.used").exists()
    assert certfiles.load(deployed_key).spki == before.spki


def test_swap_installs_only_the_bytes_it_checked(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The ACME client replaces the next files between the plan and the copy: nothing is
    installed, the swap says so, and the next run plans afresh."""
    from tlsarotate import material, swap

    w = SimWorld(tmp_path)
    old = w.deployed()
    w.new_next()
    w.apply()
    w.clock.advance(300)
    from tlsarotate import pair

    real = pair.read_pair
    other = w._leaf(["mx1.example.test"], None)

    def changed_underneath(paths):  # type: ignore[no-untyped-def]
        real(paths)
        return pair.Pair(other.cert_pem, other.key_pem, material.parse(other.cert_pem, "x"))

    monkeypatch.setattr(swap, "read_pair", changed_underneath)
    with pytest.raises(SwapError, match="changed while it was read"):
        w.apply()
    assert w.deployed().same_as(old) and w.reloads == 0
    monkeypatch.setattr(swap, "read_pair", real)
    w.apply()
    assert w.deployed().same_as(w.next()) and w.violations == []


def test_crashed_swap_whose_next_changed_restores_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while the new pair is written (after the first swap converted the deployed
    files into the versioned store, between the new key and the new certificate); before the
    rerun the ACME client renewed again. The rerun keeps the deployed pair (nothing was
    switched) AND reloads, then rolls to the newest certificate safely."""
    from tlsarotate import certstore, fsutil

    w = SimWorld(tmp_path)
    old = w.deployed()
    w.new_next()
    w.apply()
    w.clock.advance(300)
    real = fsutil.atomic_write
    calls = {"n": 0}

    def crash_on_fourth(*a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1  # the deployed key and cert into version 1, the new key, the new cert
        if calls["n"] == 4:
            raise Crash("between the key and the certificate")
        return real(*a, **kw)

    monkeypatch.setattr(certstore, "atomic_write", crash_on_fourth)
    with contextlib.suppress(Crash):
        w.apply()
    assert calls["n"] == 4  # the crash really came between the key and the certificate
    monkeypatch.setattr(certstore, "atomic_write", real)
    w.new_next()  # another renewal before the rerun
    reloads = w.reloads
    w.apply()
    assert w.reloads == reloads + 1  # the restore reloaded the service
    assert w.deployed().same_as(old) and w.served.same_as(old)
    assert w.violations == []
    w.clock.advance(300)
    w.apply(wait=True)
    assert w.deployed().same_as(w.next()) and w.served.same_as(w.next())
    assert w.violations == []


def test_a_write_not_live_yet_says_what_happens_next(tmp_path: Path) -> None:
    """The provider's own servers do not serve a write yet when asked right after it: the event
    says the write is made and that the authoritative servers are asked next -- not a bare "not
    reported live yet" right before the plan that finds it served (and says idle)."""
    w = SimWorld(tmp_path)
    w.new_next()
    events: list[str] = []
    eng = w.engine()
    eng.on_event = events.append
    eng.providers["dns"].is_live = lambda zone, tokens: False  # type: ignore[method-assign]
    eng.step([w.service], act=True)
    assert events[0] == "mail: add the records of the next certificate"
    assert events[1] == (
        "dns: the write to example.test. is made; the provider did not serve it yet when asked "
        "right after the write; asking the authoritative servers next"
    )
    assert not any("reported live" in e for e in events)


def test_a_due_swap_comes_right_after_its_own_look(tmp_path: Path) -> None:
    """N services due in one step: each one's swap follows its own look, not all N looks (at
    2,000 owners the last swap came the looks of every other service late)."""
    import shutil

    from tlsarotate import config

    w = SimWorld(tmp_path, ttl=300, margin=0)
    w.new_next()
    paths = {}
    for which in ("deployed", "next"):
        d = tmp_path / f"web-{which}"
        d.mkdir()
        for f in ("fullchain.pem", "privkey.pem"):
            shutil.copy(tmp_path / which / f, d / f)
        paths[which] = config.CertPaths(cert=d / "fullchain.pem", key=d / "privkey.pem")
    slot = config.CertSlot("web", paths["deployed"], paths["next"], reload=("reload",))
    svc2 = dataclasses.replace(
        w.service, name="web", hosts=("www.example.test.",), ports=(443,), certificates=(slot,)
    )
    for o in svc2.owners:
        w.provider.data[w.service.zone][o] = TlsaRRset.of(
            300, records.build_all(w.deployed(), svc2.params)
        )
    w.cfg = dataclasses.replace(w.cfg, services=(w.service, svc2))
    engine = w.engine()
    engine.cfg = w.cfg
    engine.run([w.service, svc2], wait=False)  # publish both, then the TTL wait
    w.clock.advance(301)
    order: list[str] = []
    engine = w.engine()
    engine.cfg = w.cfg
    engine.on_plan = lambda p: order.append(f"plan {p.service} {p.phase}")
    engine.on_event = order.append
    engine.step([w.service, svc2], act=True)
    looks = [x for x in order if x.startswith("plan ")]
    assert looks == [f"plan {w.service.name} swap", "plan web swap"]
    installs = [i for i, x in enumerate(order) if "installing" in x]
    assert len(installs) == 2
    # the first service's swap is made before the second service is even looked at
    assert installs[0] < order.index("plan web swap") < installs[1]
    assert order[installs[0]].startswith(f"{w.service.name}: installing")
