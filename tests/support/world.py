"""A simulated world for engine tests: certificate files on disk, an in-memory DNS provider,
authoritative servers that lag behind it, resolver caches, a service that serves what it loaded
at its last reload, a controllable clock, and fault injection at every side effect.

It also checks the safety properties after every event (see :meth:`SimWorld.check`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from collections.abc import Sequence
from pathlib import Path

import dns.name

from tlsarotate import certfiles, config, material, pki, records
from tlsarotate.change import TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.engine import Engine
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.providers.base import Provider, ProviderContext, WriteResult, WriteToken
from tlsarotate.providers.memory import MemoryProvider
from tlsarotate.state import State
from tlsarotate.stores.file import FileStateStore

ZONE = dns.name.from_text("example.test.")


class Crash(BaseException):
    """A simulated process death (not an Exception: nothing may catch it on the way)."""


@dataclasses.dataclass
class Version:
    t: float
    data: dict[dns.name.Name, TlsaRRset]


class LaggingObserver:
    """Authoritative servers that each catch up with the provider ``lag`` seconds late, never
    go back to an older version, and can be down."""

    def __init__(self, world: SimWorld, lags: Sequence[float]) -> None:
        self.world = world
        self.lags = list(lags)
        self.down = [False] * len(lags)
        self.at = [0] * len(lags)  # index into world.versions each server serves

    def refresh(self) -> None:
        now = self.world.clock.now()
        for i, lag in enumerate(self.lags):
            if self.down[i]:
                continue
            for k in range(len(self.world.versions) - 1, self.at[i], -1):
                if self.world.versions[k].t <= now - lag:
                    self.at[i] = k
                    break
        self.world.note_served()

    def observe(self, zone: dns.name.Name, owners: Sequence[dns.name.Name]) -> Observation:
        self.world.maybe_crash("observe")
        self.refresh()
        answers = []
        for i in range(len(self.lags)):
            label = f"ns{i + 1}.example.test 127.0.0.{i + 1}"
            if self.down[i]:
                answers.append(ServerAnswer(label, f"127.0.0.{i + 1}", error="timeout after 3s"))
                continue
            data = self.world.versions[self.at[i]].data
            answers.append(
                ServerAnswer(
                    label,
                    f"127.0.0.{i + 1}",
                    rrsets={o: data.get(o) for o in owners},
                    serial=self.at[i] + 1,
                    signed={o: True for o in owners},
                )
            )
        return Observation(zone, tuple(answers), zone_signed=True)


class WorldProvider(MemoryProvider):
    def apply(self, change: ZoneChange) -> WriteResult:
        w: SimWorld = self.world  # type: ignore[attr-defined]
        w.maybe_crash("apply-before")
        w.check_write(change)
        result = super().apply(change)
        w.versions.append(Version(w.clock.now(), dict(self.data.get(ZONE, {}))))
        w.maybe_crash("apply-after")
        return result


class RecordingProvider(Provider):
    """Any real provider, seen by the world: crash points, invariant (c) and the version history
    around each write, and one entry in ``writes`` per ``apply``."""

    type_name = "recording"

    def __init__(self, world: SimWorld, inner: Provider) -> None:
        super().__init__(inner.name, {}, inner.context)
        self.world, self.inner = world, inner
        self.writes: list[ZoneChange] = []

    def read(self, zone: dns.name.Name, owners: Sequence[dns.name.Name]):  # type: ignore[no-untyped-def]
        return self.inner.read(zone, owners)

    def write(self, part: ZoneChange) -> WriteToken:  # apply below is the inner one, whole
        return self.inner.write(part)

    def apply(self, change: ZoneChange) -> WriteResult:
        w = self.world
        w.maybe_crash("apply-before")
        w.check_write(change)
        result = self.inner.apply(change)
        self.writes.append(change)
        w.versions.append(Version(w.clock.now(), w.current()))
        w.maybe_crash("apply-after")
        return result

    def is_live(self, zone: dns.name.Name, tokens: Sequence[WriteToken]) -> bool:
        return self.inner.is_live(zone, tokens)


class WorldStore(FileStateStore):
    def save(self, st: State) -> None:
        self.world.maybe_crash("save")  # type: ignore[attr-defined]
        super().save(st)


class SkewedClock:
    """The engine's wall clock: real time plus a skew (an NTP step back, a wrong clock)."""

    def __init__(self, real: FakeClock) -> None:
        self.real = real
        self.skew = 0.0

    def now(self) -> float:
        return self.real.now() + self.skew

    def sleep(self, seconds: float) -> None:
        self.real.sleep(seconds)


class SimWorld:
    def __init__(
        self,
        tmp: Path,
        params: Sequence[str] = ("3 1 1", "3 0 1"),
        ttl: int = 300,
        lags: Sequence[float] = (0.0, 0.0),
        margin: int = 0,
        hosts: Sequence[str] = ("mx1.example.test",),
    ) -> None:
        self.tmp = tmp
        # the world's true time (caches and lagging servers live by it), as opposed to the
        # engine's clock, which may be skewed (engine_clock)
        self.clock = FakeClock()
        self.engine_clock = SkewedClock(self.clock)
        # certificates valid around the fake clock's time, for long enough for any sequence
        # (the planner refuses to swap in one that is expired or not valid yet)
        # (and at the real time too: test_verify serves them to real TLS clients)
        start = min(self.clock.now(), dt.datetime.now(dt.timezone.utc).timestamp()) - 86400
        self.not_before = dt.datetime.fromtimestamp(start, dt.timezone.utc)
        self.ca = pki.make_ca(days=3650, not_before=self.not_before)
        self.keys = [pki.new_key("ecdsa-p256") for _ in range(3)]
        self.crash_at: str | None = None
        self.crash_after = 0
        self.fail_reload = 0
        self.reloads = 0
        self.violations: list[str] = []
        self.gone_at: dict[int, float] = {}
        self.last_served: dict[int, float] = {}
        (tmp / "deployed").mkdir()
        (tmp / "next").mkdir()
        first = self._leaf([hosts[0]], self.keys[0])
        self._write_pair(tmp / "deployed", first)
        self._write_pair(tmp / "next", first)
        self.served: material.Material = self.deployed()
        slot = config.CertSlot(
            "default",
            config.CertPaths(cert=tmp / "deployed/fullchain.pem", key=tmp / "deployed/privkey.pem"),
            config.CertPaths(cert=tmp / "next/fullchain.pem", key=tmp / "next/privkey.pem"),
            reload=("reload-service",),
        )
        self.service = config.Service(
            name="mail",
            zone=ZONE,
            provider="dns",
            hosts=tuple(f"{h}." for h in hosts),
            ports=(25,),
            protocol="tcp",
            ttl=ttl,
            params=tuple(records.parse_params(p) for p in params),
            certificates=(slot,),
            observe="dns",
        )
        self.cfg = config.Config(tmp / "config.yaml", tmp / "state", margin, {}, (self.service,))
        self.provider = WorldProvider("dns", {}, ProviderContext())
        self.provider.world = self  # type: ignore[attr-defined]
        initial = {
            o: TlsaRRset.of(ttl, records.build_all(self.served, self.service.params))
            for o in self.service.owners
        }
        self.provider.data[ZONE] = dict(initial)
        self.versions = [Version(self.clock.now() - 10 * ttl, dict(initial))]
        self.observer = LaggingObserver(self, lags)
        self.store = WorldStore(tmp / "state")
        self.store.world = self  # type: ignore[attr-defined]

    # -- files -----------------------------------------------------------------------------

    def _leaf(self, names: list[str], key: pki.PrivateKey | None) -> pki.Issued:
        return pki.make_leaf(self.ca, names, key=key, days=3650, not_before=self.not_before)

    @staticmethod
    def _write_pair(d: Path, leaf: pki.Issued) -> None:
        (d / "fullchain.pem").write_bytes(leaf.cert_pem)
        (d / "privkey.pem").write_bytes(leaf.key_pem)

    def deployed(self) -> material.Material:
        return certfiles.load_pair(
            self.tmp / "deployed/fullchain.pem", self.tmp / "deployed/privkey.pem"
        )

    def next(self) -> material.Material:
        return certfiles.load_pair(self.tmp / "next/fullchain.pem", self.tmp / "next/privkey.pem")

    def new_next(self, key_index: int | None = None, reuse: bool = False) -> None:
        """A renewal: a new next certificate (the deployed key when ``reuse``, a key of the
        pool, or a fresh key)."""
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        if reuse:
            pem = (self.tmp / "deployed/privkey.pem").read_bytes()
            key = load_pem_private_key(pem, None)  # type: ignore[assignment]
        elif key_index is not None:
            key = self.keys[key_index]
        else:
            key = pki.new_key("ecdsa-p256")
        leaf = self._leaf([self.service.hosts[0].rstrip(".")], key)  # type: ignore[arg-type]
        self._write_pair(self.tmp / "next", leaf)

    def set_params(self, params: Sequence[str]) -> None:
        svc = dataclasses.replace(
            self.service, params=tuple(records.parse_params(p) for p in params)
        )
        self.service = svc
        self.cfg = dataclasses.replace(self.cfg, services=(svc,))

    # -- side effects ----------------------------------------------------------------------

    def maybe_crash(self, point: str) -> None:
        if self.crash_at == point:
            if self.crash_after == 0:
                self.crash_at = None
                raise Crash(point)
            self.crash_after -= 1

    def runner(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.maybe_crash("reload")
        if self.fail_reload:
            self.fail_reload -= 1
            return subprocess.CompletedProcess(list(argv), 1, "", "job for mail.service failed")
        self.reloads += 1
        self.served = self.deployed()  # the service now serves what is on disk
        self.check()
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def engine(self, force: bool = False) -> Engine:
        return Engine(
            self.cfg,
            self.store,
            {"dns": self.provider},
            clock=self.engine_clock,
            observer_for=lambda svc, provider, timeout: self.observer,
            runner=self.runner,
            force=force,
        )

    def apply(self, wait: bool = False, force: bool = False) -> list:  # type: ignore[type-arg]
        plans = self.engine(force).run([self.service], wait=wait)
        self.check()
        return plans

    # -- the safety properties -------------------------------------------------------------

    def note_served(self) -> None:
        now = self.clock.now()
        served = {self.observer.at[i] for i in range(len(self.observer.lags))}
        for k in range(len(self.versions)):
            if k in served:
                self.last_served[k] = now
            elif k in self.last_served and k not in self.gone_at:
                self.gone_at[k] = now

    def cacheable(self) -> list[int]:
        """Versions some resolver may still have cached now."""
        now = self.clock.now()
        out = []
        for k, v in enumerate(self.versions):
            if k not in self.last_served:
                continue
            until = self.gone_at.get(k, now)
            ttl = max((rr.ttl for rr in v.data.values()), default=0)
            if now < until + ttl or k not in self.gone_at:
                out.append(k)
        return out

    def check(self) -> None:
        """(a) every combination in the published RRset matches the served chain; (b) so does
        every RRset a resolver may still hold in its cache (which is what makes swapping
        before the old TTL ran out unsafe)."""
        self.observer.refresh()
        chain = self.served.chain_der
        for owner, rr in self.current().items():
            if not records.accepts(rr.records, chain):
                bad = records.unmatched_combos(rr.records, chain)
                self.violations.append(f"(a) published {owner} has unmatched {bad}")
        for k in self.cacheable():
            for owner, rr in self.versions[k].data.items():
                if not records.accepts(rr.records, chain):
                    self.violations.append(
                        f"(b) cached version {k} at {owner} does not accept the served chain"
                    )

    def check_write(self, change: ZoneChange) -> None:
        """(c) records of the deployed certificate with configured parameters are never removed."""
        keep = set(records.build_all(self.served, self.service.params))
        for ch in change.changes:
            for rd in ch.removed:
                if rd in keep:
                    self.violations.append(f"(c) removed {records.to_text(rd)} at {ch.owner}")

    def current(self) -> dict[dns.name.Name, TlsaRRset]:
        """What the provider holds now at the service's owners."""
        return dict(self.provider.read(ZONE, self.service.owners))

    def published_texts(self) -> set[str]:
        return {t for rr in self.current().values() for t in rr.texts()}

    def use_provider(self, inner: Provider) -> RecordingProvider:
        """Roll on a real provider from now on: it gets the currently published records."""
        from tlsarotate.change import OwnerChange

        now = self.current()
        inner.apply(ZoneChange(ZONE, tuple(OwnerChange(o, None, rr) for o, rr in now.items())))
        rec = RecordingProvider(self, inner)
        self.provider = rec  # type: ignore[assignment]
        self.versions = [
            Version(self.clock.now() - 10 * self.service.ttl, rec.read(ZONE, list(now)))
        ]
        self.observer.at = [0] * len(self.observer.lags)
        self.gone_at.clear()
        self.last_served.clear()
        return rec
