"""postswap: after a swap's reload, does every address of the service serve the certificate
just installed? A fake fetch and a fake clock stand for the TLS client and the pauses."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dns.name

from tlsarotate import material, pki
from tlsarotate.clock import FakeClock
from tlsarotate.config import CertPaths, CertSlot, Service, Verify
from tlsarotate.postswap import ATTEMPTS, PAUSE, verify_live
from tlsarotate.served import ServedChain


def _service(verify: Verify | None) -> tuple[Service, CertSlot]:
    slot = CertSlot("default", CertPaths(cert=Path("c"), key=Path("k")), None, verify=verify)
    svc = Service(
        name="mail",
        zone=dns.name.from_text("example.test."),
        provider="p",
        hosts=("mx.example.test.",),
        ports=(25,),
        protocol="tcp",
        ttl=300,
        params=(),
        certificates=(slot,),
    )
    return svc, slot


def _installed(ca: pki.Issued) -> material.Material:
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    return material.parse(pki.fullchain_pem(leaf, ca), "next")


class Fetch:
    """Serves ``answers`` in turn (the last one again and again); records each call."""

    def __init__(self, *answers: tuple[bytes, ...] | str) -> None:
        self.answers = answers
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, addr: str, port: int, starttls: str, timeout: float, **kw: Any) -> Any:
        self.calls.append((addr, port, starttls, timeout, kw.get("server_name")))
        a = self.answers[min(len(self.calls) - 1, len(self.answers) - 1)]
        if isinstance(a, str):
            return ServedChain(addr, port, starttls, error=a)
        return ServedChain(addr, port, starttls, der=a)


def test_no_verify_section_probes_nothing(ca: pki.Issued) -> None:
    svc, slot = _service(None)
    fetch = Fetch("unused")
    assert verify_live(svc, slot, _installed(ca), fetch=fetch, clock=FakeClock()) is None
    assert fetch.calls == []


def test_the_installed_leaf_served_is_none_at_the_first_look(ca: pki.Issued) -> None:
    svc, slot = _service(Verify(starttls="smtp", host="127.0.0.1", port=2525, timeout=3))
    m = _installed(ca)
    fetch, clock = Fetch(m.chain_der), FakeClock()
    assert verify_live(svc, slot, m, fetch=fetch, clock=clock) is None
    assert fetch.calls == [("127.0.0.1", 2525, "smtp", 3, "mx.example.test")]
    assert clock.now() == FakeClock().now()  # no pause


def test_a_slow_reload_is_looked_at_again_after_a_pause(ca: pki.Issued) -> None:
    svc, slot = _service(Verify(host="127.0.0.1"))
    m, old = _installed(ca), _installed(ca)
    fetch, clock = Fetch(old.chain_der, "connection refused", m.chain_der), FakeClock()
    assert verify_live(svc, slot, m, fetch=fetch, clock=clock) is None
    assert len(fetch.calls) == 3 and fetch.calls[0][1] == 25  # the service's first port
    assert clock.now() == FakeClock().now() + 2 * PAUSE


def test_another_certificate_served_to_the_end_says_which(ca: pki.Issued) -> None:
    svc, slot = _service(Verify(host="127.0.0.1", port=2525))
    m, old = _installed(ca), _installed(ca)
    fetch, clock = Fetch(old.chain_der), FakeClock()
    got = verify_live(svc, slot, m, fetch=fetch, clock=clock)
    sha = hashlib.sha256(old.chain_der[0]).hexdigest()[:16]
    assert got == (
        f"after the reload, 127.0.0.1:2525 still serves another certificate (sha256 {sha}…)"
    )
    assert len(fetch.calls) == ATTEMPTS
    assert clock.now() == FakeClock().now() + (ATTEMPTS - 1) * PAUSE


def test_an_error_answer_to_the_end_is_the_line(ca: pki.Issued) -> None:
    svc, slot = _service(Verify(host="127.0.0.1", port=2525))
    got = verify_live(svc, slot, _installed(ca), fetch=Fetch("no STARTTLS"), clock=FakeClock())
    assert got == "after the reload, 127.0.0.1:2525 answered: no STARTTLS"
