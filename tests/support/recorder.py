"""A thread that samples what authoritative servers answer for a set of TLSA owners, every few
milliseconds, so a rollover test can check its invariants on the record afterwards (at every
moment, what a resolver may have cached accepts the chain the service serves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype

from tlsarotate import records


@dataclass
class Sample:
    t: float
    server: str
    owner: dns.name.Name
    texts: frozenset[str]


class Recorder(threading.Thread):
    """Samples the TLSA answers of every server for every owner until stopped."""

    def __init__(self, servers: Sequence[tuple[str, int]], owners: Sequence[dns.name.Name]):
        super().__init__(daemon=True)
        self.servers, self.owners = servers, owners
        self.samples: list[Sample] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for addr, port in self.servers:
                for owner in self.owners:
                    q = dns.message.make_query(owner, dns.rdatatype.TLSA)
                    q.flags &= ~dns.flags.RD
                    try:
                        r = dns.query.udp(q, addr, port=port, timeout=0.5)
                    except Exception:
                        continue  # a stopped server answers nothing: nothing to cache
                    rrset = r.get_rrset(r.answer, owner, dns.rdataclass.IN, dns.rdatatype.TLSA)
                    texts = frozenset(records.to_text(rd) for rd in rrset) if rrset else frozenset()
                    self.samples.append(Sample(time.time(), f"{addr}:{port}", owner, texts))
            time.sleep(0.02)
