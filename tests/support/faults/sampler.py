"""The independent observer of a fault trial, and the invariants checked on what it saw.

:class:`Sampler` is a thread that, every ~50 ms, asks every authoritative server (dnspython, RD=0,
DO set, straight to each server) for the service's TLSA RRset and reads the files at the deployed
paths. It knows nothing of tlsarotate's state or output: it only sees what a resolver and the
service would see.

:func:`check` then holds that record against the invariants (each a violation *class*):

``dns-vs-served`` / ``dns-vs-deployed``
    every usage/selector/mtype combination of an RRset a server answered must match the
    certificate in use -- the one the service loaded at its last reload (``served``), and the
    one at the deployed paths (what a restart would load) -- for as long as a resolver may cache
    that answer (its TTL from the moment it was answered);
``unsigned-answer``
    a TLSA answer without its RRSIG;
``no-tlsa``
    a server answering no TLSA RRset at all (DANE silently off);
``torn-pair``
    the deployed key does not belong to the deployed certificate, at any moment: one rename
    switches the pair, also in the middle of a swap (each sample reads certificate, key,
    certificate, and one whose certificate changed under it is dropped).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from tlsarotate import records
from tlsarotate.material import Material


@dataclass(frozen=True)
class DnsSample:
    t: float  # when the query was sent
    server: str
    texts: frozenset[str]
    ttl: int
    signed: bool
    answered: float | None = None  # when the answer came back (None: at once)


@dataclass(frozen=True)
class FileSample:
    t: float
    cert: str | None  # sha256 of the deployed certificate file's bytes (None: unreadable)
    key: str | None  # sha256 of the deployed key file's bytes


@dataclass(frozen=True)
class Violation:
    cls: str
    t: float
    detail: str


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class Sampler(threading.Thread):
    """Samples the TLSA answers of ``servers`` for ``owner`` and the deployed files."""

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        owner: dns.name.Name,
        cert_path: Path,
        key_path: Path,
        interval: float = 0.05,
    ) -> None:
        super().__init__(daemon=True, name=f"sampler-{owner}")
        self.servers, self.owner = list(servers), owner
        self.cert_path, self.key_path = cert_path, key_path
        self.interval = interval
        self.dns: list[DnsSample] = []
        self.files: list[FileSample] = []
        self.rounds = 0
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.halt.is_set():
            start = time.time()
            for addr, port in self.servers:
                s = self._ask(addr, port)
                if s is not None:
                    with self.lock:
                        self.dns.append(s)
            # cert, key, cert again: a change between the two cert reads makes the sample
            # unreliable (it is dropped); otherwise the key was read while that cert was there
            c1 = _read(self.cert_path)
            k = _read(self.key_path)
            c2 = _read(self.cert_path)
            if c1 == c2:
                fs = FileSample(
                    time.time(), sha(c1) if c1 is not None else None, sha(k) if k else None
                )
                with self.lock:
                    self.files.append(fs)
            self.rounds += 1
            self.halt.wait(max(0.0, self.interval - (time.time() - start)))

    def _ask(self, addr: str, port: int) -> DnsSample | None:
        q = dns.message.make_query(self.owner, dns.rdatatype.TLSA, want_dnssec=True)
        q.flags &= ~dns.flags.RD
        t = time.time()
        try:
            r = dns.query.udp(q, addr, port=port, timeout=0.5)
        except Exception:
            return None  # no answer: nothing a resolver could cache
        if r.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        rrset = r.get_rrset(r.answer, self.owner, dns.rdataclass.IN, dns.rdatatype.TLSA)
        if rrset is None:
            return DnsSample(t, f"{addr}:{port}", frozenset(), 0, True)
        sig = r.get_rrset(
            r.answer, self.owner, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.TLSA
        )
        texts = frozenset(records.to_text(rd) for rd in rrset)
        return DnsSample(
            t, f"{addr}:{port}", texts, int(rrset.ttl), sig is not None, answered=time.time()
        )

    def stop(self) -> None:
        self.halt.set()
        self.join(5)

    def window(self, t0: float, t1: float) -> tuple[list[DnsSample], list[FileSample]]:
        with self.lock:
            return (
                [s for s in self.dns if t0 <= s.t < t1],
                [f for f in self.files if t0 <= f.t < t1],
            )

    def all_files(self) -> list[FileSample]:
        with self.lock:
            return list(self.files)


@dataclass
class Timeline:
    """What was in use when: ``(time, certificate hash)`` changes, in time order."""

    times: list[float] = field(default_factory=list)
    certs: list[str] = field(default_factory=list)

    def add(self, t: float, cert: str) -> None:
        if self.certs and self.certs[-1] == cert:
            return
        i = bisect.bisect_right(self.times, t)
        self.times.insert(i, t)
        self.certs.insert(i, cert)

    def during(self, t0: float, t1: float) -> set[str]:
        """Every certificate in use at some moment of [t0, t1]."""
        i = bisect.bisect_right(self.times, t0) - 1
        out = {self.certs[i]} if i >= 0 else set()
        j = i + 1
        while j < len(self.times) and self.times[j] <= t1:
            out.add(self.certs[j])
            j += 1
        return out


@dataclass
class Runs:
    """What was certainly in use when, from samples: each run of equal samples, from the first
    to the last sample of it. Between two runs (one sampling interval, longer when the sampler
    was held up) the change happened at a moment not known, and neither is counted there."""

    runs: list[tuple[float, float, str]] = field(default_factory=list)

    def add(self, t: float, cert: str) -> None:
        if self.runs and self.runs[-1][2] == cert and t >= self.runs[-1][1]:
            first, _, _ = self.runs[-1]
            self.runs[-1] = (first, t, cert)
        else:
            self.runs.append((t, t, cert))

    def during(self, t0: float, t1: float) -> set[str]:
        """Every certificate certainly in use at some moment of [t0, t1]."""
        return {c for a, b, c in self.runs if a <= t1 and b >= t0}


def deployed_timeline(files: Sequence[FileSample]) -> Runs:
    tl = Runs()
    for f in sorted(files, key=lambda f: f.t):
        if f.cert is not None:
            tl.add(f.t, f.cert)
    return tl


def check(
    dns_samples: Sequence[DnsSample],
    files: Sequence[FileSample],
    served: Timeline,
    deployed: Timeline | Runs,
    certs: Mapping[str, Material],
    key_of: Mapping[str, str],
    interval: float,
) -> list[Violation]:
    """The violations in one stretch of the record."""
    out: list[Violation] = []
    accepts: dict[tuple[frozenset[str], str], bool] = {}

    def ok(texts: frozenset[str], cert: str) -> bool:
        k = (texts, cert)
        if k not in accepts:
            accepts[k] = records.accepts(
                [records.from_text(t) for t in texts], certs[cert].chain_der
            )
        return accepts[k]

    for s in dns_samples:
        if not s.texts:
            out.append(Violation("no-tlsa", s.t, f"{s.server} answered no TLSA RRset"))
            continue
        if not s.signed:
            out.append(Violation("unsigned-answer", s.t, f"{s.server}: TLSA without RRSIG"))
        # A resolver asking when the server made this answer (between sending and receiving)
        # certainly holds it from its arrival until TTL after the sending; a sampler held up
        # between the two (a loaded machine) narrows that window instead of widening it. (The
        # server may have answered it until just before the next sample too, but tlsarotate
        # cannot have seen the new RRset before then either: each moment bounds its own window.)
        start, end = (s.answered or s.t), s.t + s.ttl
        if start > end:
            continue
        for cls, tl in (("dns-vs-served", served), ("dns-vs-deployed", deployed)):
            for cert in sorted(tl.during(start, end)):
                if cert in certs and not ok(s.texts, cert):
                    out.append(
                        Violation(
                            cls,
                            s.t,
                            f"{s.server} served {sorted(s.texts)} (TTL {s.ttl}) while "
                            f"certificate {cert[:12]} was in use",
                        )
                    )
    for f in files:
        if f.cert is None or f.key is None or key_of.get(f.key) == f.cert:
            continue
        out.append(
            Violation(
                "torn-pair",
                f.t,
                f"deployed key {f.key[:12]} is not the key of the deployed certificate "
                f"{f.cert[:12]}",
            )
        )
    return out
