"""probe's handshakes per key type (``--key-type``): which handshakes one address gets, and what
counts as a key type not served. A fake fetch stands for the TLS client (the real one, against
real servers: tests/integration/test_tlsprobe.py and test_dual_certs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tlsarotate import material, pki
from tlsarotate.probe import handshakes
from tlsarotate.probe_judge import NotServed
from tlsarotate.served import ServedChain


class Fetch:
    """Serves a leaf per key type offered (None: whatever the server prefers); a str is the
    handshake's error. Records the key type each call offered."""

    def __init__(self, answers: dict[str | None, bytes | str]) -> None:
        self.answers = answers
        self.offered: list[str | None] = []

    def __call__(self, addr: str, port: int, mode: str, timeout: float, sni: Any, **kw: Any) -> Any:
        kt = kw.get("key_type")
        self.offered.append(kt)
        a = self.answers[kt]
        if isinstance(a, str):
            return ServedChain(addr, port, mode, sni, error=a, key_type=kt, tls_refused=True)
        return ServedChain(addr, port, mode, sni, (a,), key_type=kt)


def _leaf(ca: pki.Issued, kind: str) -> bytes:
    leaf = pki.make_leaf(ca, ["mx.example.test"], kind)
    return material.parse(pki.fullchain_pem(leaf, ca), "x").chain_der[0]


@pytest.fixture
def leaves(ca: pki.Issued) -> dict[str, bytes]:
    return {"rsa": _leaf(ca, "rsa2048"), "ecdsa": _leaf(ca, "ecdsa-p256")}


def run(fetch: Fetch, key_type: str = "all") -> tuple[list[ServedChain], list[NotServed]]:
    return handshakes(fetch, "192.0.2.1", 25, "smtp", 5, "mx.example.test", key_type)


def test_all_takes_the_preferred_then_offers_the_other_type_alone(
    leaves: dict[str, bytes],
) -> None:
    f = Fetch({None: leaves["ecdsa"], "rsa": leaves["rsa"]})
    served, missing = run(f)
    assert f.offered == [None, "rsa"]  # the preferred one (ECDSA) is not asked for again
    assert [s.der[0] for s in served] == [leaves["ecdsa"], leaves["rsa"]] and missing == []


def test_all_names_a_type_refused_and_any_failure_of_it_is_not_an_error(
    leaves: dict[str, bytes],
) -> None:
    """The server works (with its one certificate): a second handshake that fails in any way
    (refused, or a server that just times out on it) names the type as not served."""
    for err in ("TLS handshake failed: handshake failure", "timeout after 5s"):
        served, missing = run(Fetch({None: leaves["rsa"], "ecdsa": err}))
        assert [s.der[0] for s in served] == [leaves["rsa"]]
        assert missing == [NotServed("192.0.2.1", 25, "ecdsa", err)]


def test_all_stops_at_a_failed_first_handshake() -> None:
    f = Fetch({None: "connection refused"})
    served, missing = run(f)
    assert f.offered == [None] and [s.error for s in served] == ["connection refused"]
    assert missing == []


def test_one_key_type_is_one_handshake_offering_it(leaves: dict[str, bytes]) -> None:
    f = Fetch({"ecdsa": "TLS handshake failed: handshake failure"})
    served, missing = run(f, "ecdsa")
    assert f.offered == ["ecdsa"] and served[0].error and missing == []  # an error: asked for
