"""Property-based test of the rollover's safety invariants (hypothesis, stateful).

Random sequences of renewals (new key or reused key), parameter changes, clock jumps, lagging
or dead authoritative servers, reload failures and crashes at every side effect are driven
against the real planner and engine on the simulated world of tests/support/world.py. After every
event:

(a) every usage/selector/mtype combination in the published RRset matches the served chain;
(b) so does every RRset a resolver may still have cached (this is what a swap before the old
    TTL ran out, or before every server served the new records, would break);
(c) records of the served certificate with configured parameters are never removed;
(d) with the faults cleared, apply --wait --force converges to idle with the next certificate
    deployed and only its records published: a rule that may run at any point of a sequence,
    and a check at the end of every sequence, from whatever state it left.

A SwapError is accepted only where a reload failure was injected; any other one fails. A write
the safety thresholds hold back (UnsafeChangeError, tlsarotate/safety.py: too many stale
records at once) is accepted: it waits for the operator's --force, and (a)-(c) hold meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.support.world import Crash, SimWorld
from tlsarotate import caset, phases, pki, records
from tlsarotate.errors import SwapError, UnsafeChangeError

PARAM_SETS = [("3 1 1",), ("3 1 1", "3 0 1"), ("3 0 1",), ("3 1 1", "3 1 2"), ("3 1 2",)]
CRASH_POINTS = ["apply-before", "apply-after", "save", "reload", "observe"]
TTL = 300


class Rollover(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # no fsync cost on tmpfs
        self.dir = Path(tempfile.mkdtemp(prefix="tlsarotate-hyp-", dir=shm))
        try:
            self.world = SimWorld(self.dir, ttl=TTL, lags=(0.0, 0.0), margin=0)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def teardown(self) -> None:
        try:
            # (d) from whatever state the sequence left; not after a failed step (hypothesis
            # calls teardown in a finally): its error is the one to report and shrink
            if sys.exc_info()[0] is None:
                self.converges()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(reuse=st.booleans())
    def renew(self, reuse: bool) -> None:
        self.world.new_next(reuse=reuse)

    @rule(params=st.sampled_from(PARAM_SETS))
    def change_params(self, params: tuple[str, ...]) -> None:
        self.world.set_params(params)

    @rule(seconds=st.sampled_from([1, 10, 100, TTL - 1, TTL, TTL + 1, 3 * TTL]))
    def time_passes(self, seconds: int) -> None:
        self.world.clock.advance(seconds)

    @rule(back=st.sampled_from([1, 20, TTL]))
    def clock_steps_back(self, back: int) -> None:
        """The engine's wall clock is set back (time itself goes on)."""
        self.world.engine_clock.skew -= back

    @rule(server=st.integers(0, 1), lag=st.sampled_from([0.0, 5.0, 50.0, 2.0 * TTL]))
    def server_lag(self, server: int, lag: float) -> None:
        self.world.observer.lags[server] = lag

    @rule(server=st.integers(0, 1), down=st.booleans())
    def server_down(self, server: int, down: bool) -> None:
        self.world.observer.down[server] = down

    @rule()
    def reload_fails_next_time(self) -> None:
        self.world.fail_reload = 1

    @rule()
    def apply(self) -> None:
        injected = self.world.fail_reload > 0
        try:
            self.world.apply()
        except SwapError:
            if not injected:
                raise
            # the injected reload failure: restored, reported, retried by a later run
        except UnsafeChangeError:
            pass  # held back until an operator says --force (converges does)

    @rule(point=st.sampled_from(CRASH_POINTS), skip=st.integers(0, 3))
    def apply_and_crash(self, point: str, skip: int) -> None:
        injected = self.world.fail_reload > 0
        self.world.crash_at, self.world.crash_after = point, skip
        try:
            self.world.apply()
        except (Crash, UnsafeChangeError):
            pass
        except SwapError:
            if not injected:
                raise
        finally:
            self.world.crash_at = None

    @invariant()
    def safe(self) -> None:
        self.world.check()
        assert self.world.violations == [], self.world.violations

    @rule()
    def converges(self) -> None:
        """(d) with faults cleared, apply --wait --force reaches idle with the next cert
        deployed (--force: whatever stale records a sequence of renewals left go too)."""
        w = self.world
        w.crash_at, w.fail_reload = None, 0
        w.observer.down = [False, False]
        start = w.clock.now()
        plans = w.engine(force=True).run([w.service], wait=True, deadline=start + 100 * TTL)
        w.check()
        assert [p.phase for p in plans] == [phases.IDLE], [p.summary for p in plans]
        assert w.deployed().same_as(w.next())
        assert w.served.same_as(w.next())
        want = {records.to_text(r) for r in records.build_all(w.next(), w.service.params)}
        assert w.published_texts() == want


TestRollover = Rollover.TestCase
TestRollover.settings = settings(
    # 500 in CI (the floor); TLSAROTATE_EXAMPLES=N for a quicker or longer local run
    max_examples=int(os.environ.get("TLSAROTATE_EXAMPLES", "500")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- CA sets for DANE-TA (config ca_set, tlsarotate.caset) -----------------------------------


class CaSetWorld(SimWorld):
    """The simulated world with ``2 1 1`` pinned to a set of intermediates (``ca_set``, a
    directory of one file per CA): each certificate's chain carries the CA that issued it."""

    def __init__(self, tmp: Path) -> None:
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
        root = pki.make_ca("root", days=3650, not_before=start)
        self.cas = [
            pki.make_ca(f"R{i}", issuer=root, days=3650, not_before=start) for i in range(3)
        ]
        self.issuer = 0  # the CA the next renewal comes from
        self.next_issuer = 0
        super().__init__(tmp, params=("3 1 1", "2 1 1"), ttl=TTL, lags=(0.0, 0.0), margin=0)
        (tmp / "cas").mkdir()
        self.service = dataclasses.replace(self.service, ca_set=(tmp / "cas",))
        self.cfg = dataclasses.replace(self.cfg, services=(self.service,))
        self.in_set: list[int] = []
        self.set_ca_set([0, 1])

    def _leaf(self, names: list[str], key: pki.PrivateKey | None) -> pki.Issued:
        ca = self.cas[self.issuer]
        return pki.make_leaf(ca, names, key=key, days=3650, not_before=self.not_before)

    def _write_pair(self, d: Path, leaf: pki.Issued) -> None:  # type: ignore[override]
        (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, self.cas[self.issuer]))
        (d / "privkey.pem").write_bytes(leaf.key_pem)

    def renew_from(self, ca: int, reuse: bool) -> None:
        self.issuer = self.next_issuer = ca
        self.new_next(reuse=reuse)

    def set_ca_set(self, cas: list[int]) -> None:
        d = self.tmp / "cas"
        for f in d.iterdir():
            f.unlink()
        for i in cas:
            (d / f"R{i}.pem").write_bytes(self.cas[i].cert_pem)
        self.in_set = list(cas)

    def pins(self) -> set[str]:
        p211 = records.parse_params("2 1 1")
        return {records.to_text(caset.CaCert("-", self.cas[i].cert).pin(p211)) for i in self.in_set}


class CaSetRollover(Rollover):
    """The same properties (a)-(d) while renewals come from any CA of three, pinned or not,
    and the CA set changes under the rollover; (c) covers the served issuer's ``2 1 1``: it
    is never removed, in the set or not."""

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
        self.dir = Path(tempfile.mkdtemp(prefix="tlsarotate-hyp-ca-", dir=shm))
        try:
            self.world = CaSetWorld(self.dir)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @rule(ca=st.integers(0, 2), reuse=st.booleans())
    def renew(self, ca: int, reuse: bool) -> None:  # type: ignore[override]
        assert isinstance(self.world, CaSetWorld)
        self.world.renew_from(ca, reuse)

    @rule(cas=st.sets(st.integers(0, 2), min_size=1))
    def change_params(self, cas: set[int]) -> None:  # type: ignore[override]
        """(here: the CA set changes, the parameters stay 3 1 1 + 2 1 1)"""
        assert isinstance(self.world, CaSetWorld)
        self.world.set_ca_set(sorted(cas))

    @rule()
    def converges(self) -> None:
        """(d), once the next certificate's issuer is in the set: idle, the next certificate
        deployed, and published exactly its 3 1 1 and one 2 1 1 per CA of the set."""
        w = self.world
        assert isinstance(w, CaSetWorld)
        w.set_ca_set(sorted({*w.in_set, w.next_issuer}))
        w.crash_at, w.fail_reload = None, 0
        w.observer.down = [False, False]
        plans = w.engine(force=True).run([w.service], wait=True, deadline=w.clock.now() + 100 * TTL)
        w.check()
        assert [p.phase for p in plans] == [phases.IDLE], [p.summary for p in plans]
        assert w.deployed().same_as(w.next()) and w.served.same_as(w.next())
        ee = records.to_text(records.build(w.next(), records.parse_params("3 1 1")))
        assert w.published_texts() == {ee} | w.pins()


TestCaSetRollover = CaSetRollover.TestCase
TestCaSetRollover.settings = settings(
    # a fifth of the main machine's examples (TLSAROTATE_EXAMPLES scales both)
    max_examples=max(1, int(os.environ.get("TLSAROTATE_EXAMPLES", "500")) // 5),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
