"""The fault-injection harness: kill ``tlsarotate apply --wait`` at random moments on real BIND.

A *world* (:class:`FaultBind`) is one BIND 9 primary (127.0.0.1) and secondary (::1) with TSIG,
inline signing (``dnssec-policy default``) and NOTIFY, serving one zone per *lane*. A lane
(:class:`Lane`) is one service in its own zone with its own directory: a CA, the deployed
certificate and key as separate files (``deployed/fullchain.pem`` + ``privkey.pem``), the next
pair the "ACME client" writes (``next/``), and a fake service whose reload command is a shell
script: it checks that the deployed key belongs to the deployed certificate (a real server
refuses such a pair), sleeps a little (a real reload takes time: it widens the window), then
copies the certificate to ``served.pem`` and logs ``served <sha256>``. A zonefile lane edits the
primary's own zone file and reloads it with ``rndc reload ZONE``; an rfc2136 lane sends UPDATEs to
the primary (optionally through the fault proxy of :mod:`tests.support.faults.inject`).

A *trial* (:meth:`Lane.trial`) rolls the lane to a fresh certificate (new key):

1. the next pair is written, then ``python -m tests.support.faults.launch -c CONFIG apply --wait``
(the
   real CLI as a subprocess, see :mod:`tests.support.faults.launch` for the markers it writes) runs
   in its
   own process group and is SIGKILLed -- the whole group, reload commands included -- at a seeded
   random moment: ``uniform`` over the whole run, or a random delay after the run *entered* the
   swap (``swap``), a reload command (``reload``: the service's or the zone's) or a provider call
   (``provider``: the first or the second write of the rollover, or one of the first reads);
2. sometimes (``renew_p``) a renewal lands while nothing runs: another next pair is written;
3. ``apply --wait`` is run again, each attempt bounded (``attempt_timeout``), at most
   ``max_reruns`` times, until it exits 0;
4. the lane must then be *converged*: every server serves exactly the records of the newest next
   certificate, the deployed files are that pair, the service serves it, no swap journal is left
   in the state, no lock is held, and no run printed a traceback.

Meanwhile a :class:`~tests.support.faults.sampler.Sampler` records what every server answers and
what the
deployed files hold, every ~50 ms; :func:`~tests.support.faults.sampler.check` turns that record
into
violations. With ``two_runners_p`` a second ``apply --wait`` on the same config starts beside the
first (it waits for the lock, then must finish the job).

:class:`Campaign` runs trials over several lanes in parallel (one thread per lane; trials of one
lane are sequential, each starting from the idle state the previous one converged to) and sums
them up in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.name
import dns.rdatatype

from tests.support.faults.sampler import (
    Sampler,
    Timeline,
    Violation,
    check,
    deployed_timeline,
    sha,
)
from tests.support.helpers import cli_env
from tests.support.servers import BindServers, BindZone, free_port, need_binary, query, wait_until
from tlsarotate import material, pki, records

TTL = 1
PARAMS = ("3 1 1", "3 0 1")
PAUSE = 0.03  # the launcher's sleep after each swap / zone-file write
RELOAD_SLEEP = 0.15  # the fake service's reload takes this long
INTERVAL = 0.05  # the sampler's period
PHASES = ("uniform", "swap", "reload", "provider")

_SERVICE_RELOAD = """#!/bin/sh
# the fake service: refuses a key that does not belong to the certificate, takes a moment,
# then "serves" the deployed certificate (served.pem) and logs when
d='{d}'
echo "$(date +%s.%N) $$ reload-start" >> "$d/markers"
if [ -e "$d/fault-reload-fail" ]; then echo "service reload failed (injected)" >&2; exit 1; fi
if [ -e "$d/fault-reload-hang" ]; then sleep 3600; fi
sleep {sleep}
c=$(openssl x509 -in "$d/deployed/fullchain.pem" -pubkey -noout 2>/dev/null)
k=$(openssl pkey -in "$d/deployed/privkey.pem" -pubout 2>/dev/null)
if [ -z "$c" ] || [ "$c" != "$k" ]; then
  echo "service reload failed: the key does not match the certificate" >&2; exit 1
fi
cp "$d/deployed/fullchain.pem" "$d/served.tmp"
t=$(date +%s.%N)
mv "$d/served.tmp" "$d/served.pem"
echo "$t $$ served $(sha256sum < "$d/served.pem" | cut -c1-64)" >> "$d/markers"
"""

_ZONE_RELOAD = """#!/bin/sh
# the zonefile provider's reload: rndc reload ZONE on the primary
d='{d}'
echo "$(date +%s.%N) $$ zone-reload-start" >> "$d/markers"
if [ -e "$d/fault-zreload-fail" ]; then echo "rndc: reload failed (injected)" >&2; exit 1; fi
if [ -e "$d/fault-zreload-hang" ]; then sleep 3600; fi
exec {rndc} reload {zone}
"""


class FaultBind(BindServers):
    """BIND primary + secondary serving ``rfc_zones`` (dynamic: TSIG UPDATE) and ``file_zones``
    (static: the zonefile backend edits the primary's file, ``rndc reload`` loads it)."""

    def __init__(self, workdir: Path, rfc_zones: Sequence[str], file_zones: Sequence[str]) -> None:
        self.file_zones = [dns.name.from_text(z) for z in file_zones]
        zones = [BindZone(z) for z in (*rfc_zones, *file_zones)]
        super().__init__(workdir, zones, notify_delay=0)
        self.rndc_port = free_port()
        self.rndc_key = self.dir / "rndc.key"
        subprocess.run(
            [need_binary("rndc-confgen"), "-a", "-c", str(self.rndc_key), "-k", "rndc-key"],
            check=True,
            capture_output=True,
        )
        conf = self.primary_dir / "named.conf"
        lines = []
        for line in conf.read_text().splitlines():
            if line.startswith("controls"):
                line = (
                    f'include "{self.rndc_key}";\n'
                    f"controls {{ inet 127.0.0.1 port {self.rndc_port} allow {{ 127.0.0.1; }} "
                    'keys { "rndc-key"; }; };'
                )
            for z in self.file_zones:
                if line.startswith(f'zone "{z.to_text()}"'):
                    line = re.sub(r"allow-update \{[^}]*\};", "", line)
            lines.append(line)
        conf.write_text("\n".join(lines) + "\n")

    def rndc(self) -> list[str]:
        return [
            need_binary("rndc"),
            "-s",
            "127.0.0.1",
            "-p",
            str(self.rndc_port),
            "-k",
            str(self.rndc_key),
        ]

    def zone_file(self, zone: str) -> Path:
        return self.primary_dir / self.zones[dns.name.from_text(zone)].file


@dataclass
class KillPlan:
    phase: str  # uniform | swap | reload | provider
    delay: float  # seconds after the run started (uniform) or after the marker
    marker: str = ""  # marker text the delay counts from
    nth: int = 1  # which occurrence of the marker


@dataclass
class Run:
    argv: list[str]
    rc: int | None
    out: str
    err: str
    seconds: float
    killed: bool = False
    timed_out: bool = False
    kill_point: str = ""  # the last marker before the kill
    pid: int = 0
    ended: float = 0.0  # when the process was gone


@dataclass
class TrialResult:
    lane: str
    kind: str
    index: int
    phase: str
    killed: bool
    kill_point: str
    renewed: bool
    two_runners: bool
    reruns: int
    converged: bool
    seconds: float
    converge_seconds: float
    violations: list[Violation] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


class Lane:
    """One service in its own zone, driven through kill trials."""

    def __init__(
        self,
        world: FaultBind,
        kind: str,
        zone: str,
        root: Path,
        *,
        provider_port: int | None = None,
        attempt_timeout: float = 30.0,
        max_reruns: int = 3,
    ) -> None:
        assert kind in ("zonefile", "rfc2136")
        self.world, self.kind, self.zone = world, kind, zone
        self.name = zone.rstrip(".")
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = f"mx.{self.name}"
        self.owner = records.owner_name(self.host, 25)
        self.provider_port = provider_port or world.port
        self.attempt_timeout, self.max_reruns = attempt_timeout, max_reruns
        self.ca = pki.make_ca()
        self.certs: dict[str, material.Material] = {}  # sha256(fullchain bytes) -> material
        self.key_of: dict[str, str] = {}  # sha256(key bytes) -> sha256(its fullchain bytes)
        self.pem: dict[str, tuple[bytes, bytes]] = {}
        self.served = Timeline()
        self.markers = self.dir / "markers"
        self.sampler: Sampler | None = None
        self.run_count = 0
        self.est_run = 6.0  # seconds one rollover takes, measured by setup()
        self.dead = ""
        self._served_offset = 0

    # ---- files ------------------------------------------------------------------------
    def new_pair(self) -> str:
        leaf = pki.make_leaf(self.ca, [self.host])
        chain, key = pki.fullchain_pem(leaf, self.ca), leaf.key_pem
        h = sha(chain)
        self.certs[h] = material.parse(chain, "fullchain")
        self.key_of[sha(key)] = h
        self.pem[h] = (chain, key)
        return h

    @staticmethod
    def _put(path: Path, data: bytes, mode: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".acme.")
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def write_next(self, h: str) -> None:
        """What an ACME client does on renewal: the key, then the chain, each renamed."""
        chain, key = self.pem[h]
        self._put(self.dir / "next/privkey.pem", key, 0o600)
        self._put(self.dir / "next/fullchain.pem", chain, 0o644)

    def next_hash(self) -> str:
        return sha((self.dir / "next/fullchain.pem").read_bytes())

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    def write_config(self) -> None:
        if self.kind == "zonefile":
            zr = self.dir / "zone-reload.sh"
            zr.write_text(
                _ZONE_RELOAD.format(d=self.dir, rndc=" ".join(self.world.rndc()), zone=self.name)
            )
            zr.chmod(0o755)
            prov = (
                f"    type: zonefile\n    path: {self.world.zone_file(self.zone)}\n"
                f"    reload: [{zr}]\n"
            )
        else:
            prov = (
                f"    type: rfc2136\n    server: 127.0.0.1\n    port: {self.provider_port}\n"
                f"    tsig_key_file: {self.world.key_file}\n    timeout: 2\n    retries: 2\n"
            )
        sr = self.dir / "service-reload.sh"
        sr.write_text(_SERVICE_RELOAD.format(d=self.dir, sleep=RELOAD_SLEEP))
        sr.chmod(0o755)
        port = self.world.port
        params = ", ".join(f'"{p}"' for p in PARAMS)
        self.config.write_text(
            f"state_dir: state\nsafety_margin: 0\nlock_timeout: 120\nproviders:\n  p:\n{prov}"
            f"services:\n  - name: svc\n    zone: {self.zone}\n    provider: p\n"
            f"    hosts: [{self.host}]\n    ports: [25]\n    ttl: {TTL}\n"
            f"    records: [{params}]\n"
            f'    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]\n'
            "    certificate:\n"
            "      deployed: {cert: deployed/fullchain.pem, key: deployed/privkey.pem}\n"
            "      next: {cert: next/fullchain.pem, key: next/privkey.pem}\n"
            f"      reload: [{sr}]\n"
        )

    # ---- runs -------------------------------------------------------------------------
    def _markers_since(self, offset: int) -> tuple[list[tuple[float, str]], int]:
        try:
            with open(self.markers, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1
        out = []
        for line in data[:end].decode(errors="replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                with contextlib.suppress(ValueError):
                    out.append((float(parts[0]), parts[2]))
        return out, offset + end

    def _size(self) -> int:
        try:
            return self.markers.stat().st_size
        except FileNotFoundError:
            return 0

    def start(
        self, *args: str, prefix: Sequence[str] = ()
    ) -> tuple[subprocess.Popen[bytes], list[str], Path]:
        self.run_count += 1
        base = self.dir / "runs" / f"{self.run_count:05d}"
        base.parent.mkdir(exist_ok=True)
        argv = [
            *prefix,
            sys.executable,
            "-m",
            "tests.support.faults.launch",
            "-c",
            str(self.config),
            *args,
        ]
        env = cli_env(TLSAROTATE_FAULT_MARKERS=str(self.markers), TLSAROTATE_FAULT_PAUSE=str(PAUSE))
        with open(f"{base}.out", "wb") as out, open(f"{base}.err", "wb") as err:
            p = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.dir,
                start_new_session=True,
            )
        return p, argv, base

    @staticmethod
    def _killpg(p: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)

    def finish(
        self, p: subprocess.Popen[bytes], argv: list[str], base: Path, t0: float, **kw: Any
    ) -> Run:
        p.wait()
        ended = time.time()
        self._killpg(p)  # reload commands left behind by a killed run die with it
        return Run(
            argv,
            p.returncode,
            Path(f"{base}.out").read_text(errors="replace"),
            Path(f"{base}.err").read_text(errors="replace"),
            ended - t0,
            **kw,
            pid=p.pid,
            ended=ended,
        )

    def run(
        self,
        *args: str,
        kill: KillPlan | None = None,
        timeout: float | None = None,
        prefix: Sequence[str] = (),
    ) -> Run:
        """One CLI run; SIGKILL its process group as ``kill`` says, or after ``timeout``."""
        timeout = timeout or self.attempt_timeout
        offset = self._size()
        t0 = time.time()
        p, argv, base = self.start(*args, prefix=prefix)
        kill_at: float | None = None
        if kill is not None and kill.phase == "uniform":
            kill_at = t0 + kill.delay
        seen = 0
        last = "start"
        killed = timed_out = False
        while p.poll() is None:
            now = time.time()
            new, offset = self._markers_since(offset)
            for t, text in new:
                if kill_at is None or t <= kill_at:
                    last = text
                if kill is not None and kill_at is None and text.startswith(kill.marker):
                    seen += 1
                    if seen == kill.nth:
                        kill_at = t + kill.delay
            if kill_at is not None and now >= kill_at:
                self._killpg(p)
                killed = True
                break
            if now - t0 > timeout:
                self._killpg(p)
                timed_out = True
                break
            time.sleep(0.002)
        return self.finish(p, argv, base, t0, killed=killed, timed_out=timed_out, kill_point=last)

    def apply(self, timeout: float | None = None, prefix: Sequence[str] = ()) -> Run:
        return self.run("apply", "--wait", timeout=timeout, prefix=prefix)

    # ---- setup ------------------------------------------------------------------------
    def setup(self) -> None:
        """Deployed = next = a first pair; publish its records; then one unkilled rollover to
        measure how long a run takes (for ``uniform`` kills)."""
        h = self.new_pair()
        chain, key = self.pem[h]
        self._put(self.dir / "deployed/privkey.pem", key, 0o600)
        self._put(self.dir / "deployed/fullchain.pem", chain, 0o644)
        self._put(self.dir / "served.pem", chain, 0o644)
        self.served.add(time.time() - 3600, h)
        self.write_next(h)
        self.write_config()
        r = self.apply(timeout=90)
        assert r.rc == 0, f"{self.name}: first apply failed: {r.out}{r.err}"
        self.wait_serving(h, 30)
        self.sampler = Sampler(
            self.world.addresses,
            self.owner,
            self.dir / "deployed/fullchain.pem",
            self.dir / "deployed/privkey.pem",
            INTERVAL,
        )
        self.sampler.start()
        t0 = time.time()
        self.write_next(self.new_pair())
        r = self.apply(timeout=90)
        assert r.rc == 0, f"{self.name}: calibration rollover failed: {r.out}{r.err}"
        self.est_run = max(1.0, time.time() - t0)
        # a re-run that takes four rollovers' time is stuck (a "waits forever" defect)
        self.attempt_timeout = min(self.attempt_timeout, max(15.0, 4 * self.est_run))
        self.refresh_served()

    def want(self, h: str) -> frozenset[str]:
        ps = [records.parse_params(p) for p in PARAMS]
        return frozenset(records.to_text(rd) for rd in records.build_all(self.certs[h], ps))

    def serving(self) -> list[frozenset[str]]:
        """The TLSA records each server answers now."""
        out = []
        for addr, port in self.world.addresses:
            r = query(addr, port, self.owner, "TLSA", timeout=1)
            out.append(
                frozenset(
                    records.to_text(rd)
                    for rrset in r.answer
                    if rrset.rdtype == dns.rdatatype.TLSA
                    for rd in rrset
                )
            )
        return out

    def wait_serving(self, h: str, timeout: float) -> bool:
        want = self.want(h)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if all(s == want for s in self.serving()):
                    return True
            except Exception:
                pass
            time.sleep(0.05)
        return False

    def refresh_served(self) -> None:
        new, self._served_offset = self._markers_since(self._served_offset)
        for t, text in new:
            if text.startswith("served "):
                self.served.add(t, text.split()[1])

    # ---- a trial ----------------------------------------------------------------------
    def kill_plan(self, rng: random.Random, phase: str) -> KillPlan:
        if phase == "uniform":
            return KillPlan(phase, rng.uniform(0, self.est_run))
        if phase == "swap":
            return KillPlan(phase, rng.uniform(0, 2 * PAUSE + 0.06), "swap-begin")
        if phase == "reload":
            if self.kind == "zonefile" and rng.random() < 0.5:
                return KillPlan(phase, rng.uniform(0, 0.08), "zone-reload-start", rng.randint(1, 2))
            return KillPlan(phase, rng.uniform(0, RELOAD_SLEEP + 0.05), "reload-start")
        if rng.random() < 0.25:  # inside a read of the published records
            return KillPlan(phase, rng.uniform(0, 0.03), "provider-read-begin", rng.randint(1, 3))
        window = PAUSE + 0.08 if self.kind == "zonefile" else 0.06
        return KillPlan(phase, rng.uniform(0, window), "provider-begin", rng.randint(1, 2))

    def trial(
        self,
        rng: random.Random,
        index: int,
        *,
        phase: str | None = None,
        renew_p: float = 0.25,
        two_runners_p: float = 0.0,
    ) -> TrialResult:
        assert self.sampler is not None
        t_start = time.time()
        phase = phase or rng.choice(PHASES)
        plan = self.kill_plan(rng, phase)
        self.write_next(self.new_pair())
        two = rng.random() < two_runners_p
        runs: list[Run] = []
        if two:
            other = threading.Thread(
                target=lambda: runs.append(self.run("apply", "--wait")), daemon=True
            )
            time.sleep(rng.uniform(0, 0.3))
            other.start()
        first = self.run("apply", "--wait", kill=plan)
        runs.insert(0, first)
        if two:
            other.join(self.attempt_timeout + 10)
        renewed = rng.random() < renew_p
        if renewed:
            self.write_next(self.new_pair())
        reruns = 0
        t_conv = time.time()
        done = first.rc == 0 and not first.killed and not renewed
        if two and not (len(runs) > 1 and runs[1].rc == 0):
            done = False
        while not done and reruns < self.max_reruns:
            reruns += 1
            r = self.apply()
            runs.append(r)
            done = r.rc == 0
        violations: list[Violation] = []
        final = self.next_hash()
        if not done:
            violations.append(
                Violation(
                    "no-convergence",
                    time.time(),
                    f"{self.name}: {reruns} re-run(s) of apply --wait did not finish "
                    f"(last: rc={runs[-1].rc}, timed out={runs[-1].timed_out}, "
                    f"{(runs[-1].err.strip().splitlines() or [''])[-1][:200]})",
                )
            )
        violations += self.converged_checks(final, runs)
        converge_seconds = time.time() - t_conv
        self.refresh_served()
        t_end = time.time()
        ds, fs = self.sampler.window(t_start, t_end)
        dep = deployed_timeline(self.sampler.all_files())
        v = check(ds, fs, self.served, dep, self.certs, self.key_of, INTERVAL)
        violations += v
        if not done or any(x.cls in ("final-records", "final-deployed") for x in violations):
            self.repair(final)
        return TrialResult(
            self.name,
            self.kind,
            index,
            phase,
            first.killed,
            first.kill_point if first.killed else "",
            renewed,
            two,
            reruns,
            done,
            t_end - t_start,
            converge_seconds,
            violations,
            runs,
        )

    def converged_checks(self, final: str, runs: Sequence[Run]) -> list[Violation]:
        now = time.time()
        out: list[Violation] = []
        for r in runs:
            if "Traceback" in r.out + r.err:
                out.append(Violation("traceback", now, (r.err or r.out)[-300:]))
        if not self.wait_serving(final, 8):
            try:
                got = self.serving()
            except Exception as e:
                got = [frozenset({repr(e)})]
            out.append(
                Violation(
                    "final-records",
                    now,
                    f"{self.name}: servers serve {[sorted(g) for g in got]}, "
                    f"want only {sorted(self.want(final))}",
                )
            )
        dep_c = sha(_read(self.dir / "deployed/fullchain.pem"))
        dep_k = sha(_read(self.dir / "deployed/privkey.pem"))
        if dep_c != final or self.key_of.get(dep_k) != final:
            out.append(
                Violation(
                    "final-deployed",
                    now,
                    f"{self.name}: deployed {dep_c[:12]}/{self.key_of.get(dep_k, '?')[:12]}, "
                    f"want {final[:12]}",
                )
            )
        if sha(_read(self.dir / "served.pem")) != final:
            out.append(Violation("final-served", now, f"{self.name}: service not reloaded"))
        state = self.dir / "state/svc.json"
        try:
            journal = json.loads(state.read_text()).get("swap")
        except (OSError, ValueError) as e:
            journal = f"unreadable: {e}"
        if journal:
            out.append(Violation("journal-left", now, f"{self.name}: swap journal {journal}"))
        locks = [self.dir / "state/svc.lock"]
        if self.kind == "zonefile":
            zf = self.world.zone_file(self.zone)
            locks.append(zf.parent / f".{zf.name}.tlsarotate.lock")
        for lock in locks:
            if lock.exists() and not _can_lock(lock):
                out.append(Violation("stale-lock", now, f"{lock} is still locked"))
        return out

    def repair(self, final: str) -> None:
        """After a trial that did not converge: what an operator would do (reload the zone,
        run again), so the next trial starts from idle; a lane that stays stuck is dropped."""
        if self.kind == "zonefile":
            subprocess.run([*self.world.rndc(), "reload", self.name], capture_output=True)
        r = self.apply(timeout=60)
        if r.rc != 0 or not self.wait_serving(self.next_hash(), 10):
            # still stuck (e.g. a torn deployed pair tlsarotate refuses to read): the operator
            # puts a matching pair in place (the next one) and runs again
            h = self.next_hash()
            chain, key = self.pem[h]
            self._put(self.dir / "deployed/privkey.pem", key, 0o600)
            self._put(self.dir / "deployed/fullchain.pem", chain, 0o644)
            if self.kind == "zonefile":
                subprocess.run([*self.world.rndc(), "reload", self.name], capture_output=True)
            r = self.apply(timeout=60)
            subprocess.run([str(self.dir / "service-reload.sh")], capture_output=True)
            self.refresh_served()
        if r.rc != 0 or not self.wait_serving(self.next_hash(), 10):
            self.dead = f"{self.name}: stuck after repair (rc={r.rc}: {r.err.strip()[-200:]})"

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _point(marker: str) -> str:
    """A kill point for the summary: the marker, without the zone file's name."""
    return marker.split(" ")[0] if marker.startswith("zonefile-written") else marker


def _can_lock(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@dataclass
class Summary:
    seed: int
    results: list[TrialResult]
    dead: list[str]
    seconds: float

    @property
    def violations(self) -> list[tuple[TrialResult, Violation]]:
        return [(r, v) for r in self.results for v in r.violations]

    def by_class(self) -> Counter[str]:
        """Violation class -> number of trials showing it."""
        c: Counter[str] = Counter()
        for r in self.results:
            for cls in {v.cls for v in r.violations}:
                c[cls] += 1
        return c

    def line(self) -> str:
        rs = self.results
        kills = Counter(r.phase for r in rs if r.killed)
        kinds = Counter(r.kind for r in rs)
        points = Counter(_point(r.kill_point) for r in rs if r.killed)
        bad = self.by_class()
        conv = [r.converge_seconds for r in rs if r.converged]
        return (
            f"fault campaign seed={self.seed}: {len(rs)} trials "
            f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}), "
            f"{sum(kills.values())} killed by phase "
            f"{{{', '.join(f'{k}: {kills[k]}' for k in PHASES)}}}, "
            f"at {{{', '.join(f'{k}: {n}' for k, n in points.most_common())}}}; "
            f"renewals {sum(r.renewed for r in rs)}, two runners {sum(r.two_runners for r in rs)}; "
            f"violations: {len(self.violations)} in {sum(bool(r.violations) for r in rs)} trials "
            f"{dict(sorted(bad.items()))}; "
            f"max re-runs to converge {max((r.reruns for r in rs), default=0)}, "
            f"converged {sum(r.converged for r in rs)}/{len(rs)}, "
            f"max convergence {max(conv, default=0):.1f}s; {self.seconds:.0f}s"
            + (f"; dead lanes: {self.dead}" if self.dead else "")
        )

    def examples(self, n: int = 3) -> list[str]:
        """Up to ``n`` examples of each violation class, for the failure message."""
        out: list[str] = []
        seen: Counter[str] = Counter()
        for r, v in self.violations:
            if seen[v.cls] < n:
                seen[v.cls] += 1
                out.append(
                    f"  [{v.cls}] trial {r.lane}#{r.index} ({r.phase} kill at "
                    f"{r.kill_point or '-'}, renewed={r.renewed}): {v.detail}"
                )
        return out


class Campaign:
    """Lanes over one BIND world; trials in parallel, one thread per lane."""

    def __init__(
        self,
        root: Path,
        *,
        zonefile_lanes: int = 2,
        rfc2136_lanes: int = 2,
        attempt_timeout: float = 30.0,
        max_reruns: int = 3,
    ) -> None:
        self.root = root
        rz = [f"r{i}.test." for i in range(rfc2136_lanes)]
        fz = [f"z{i}.test." for i in range(zonefile_lanes)]
        self.world = FaultBind(root / "bind", rz, fz)
        self.lanes = [
            Lane(
                self.world,
                "rfc2136",
                z,
                root,
                attempt_timeout=attempt_timeout,
                max_reruns=max_reruns,
            )
            for z in rz
        ] + [
            Lane(
                self.world,
                "zonefile",
                z,
                root,
                attempt_timeout=attempt_timeout,
                max_reruns=max_reruns,
            )
            for z in fz
        ]

    def start(self) -> None:
        self.world.start()
        errors: list[BaseException] = []

        def setup(lane: Lane) -> None:
            try:
                lane.setup()
            except BaseException as e:
                errors.append(e)

        ts = [threading.Thread(target=setup, args=(lane,)) for lane in self.lanes]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        for lane in self.lanes:
            lane.stop()
        self.world.stop()

    def run(
        self,
        trials: int,
        seed: int,
        *,
        renew_p: float = 0.25,
        two_runners_p: float = 0.05,
        progress: Any = None,
    ) -> Summary:
        t0 = time.time()
        results: list[TrialResult] = []
        lock = threading.Lock()
        n = len(self.lanes)

        def work(k: int, lane: Lane) -> None:
            # trial i runs on lane i % n with its own generator: the choices are the seed's
            for i in range(k, trials, n):
                if lane.dead:
                    return
                rng = random.Random(f"{seed}/{i}")
                r = lane.trial(rng, i, renew_p=renew_p, two_runners_p=two_runners_p)
                with lock:
                    results.append(r)
                if progress:
                    progress(r)

        ts = [
            threading.Thread(target=work, args=(k, lane), daemon=True)
            for k, lane in enumerate(self.lanes)
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        results.sort(key=lambda r: r.index)
        return Summary(
            seed, results, [lane.dead for lane in self.lanes if lane.dead], time.time() - t0
        )


def wait_file(path: Path, timeout: float = 10) -> None:
    wait_until(path.exists, timeout, f"{path} to appear")
