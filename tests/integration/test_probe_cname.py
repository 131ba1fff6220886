"""probe follows a CNAME at the TLSA name (RFC 7671 §7: ``_25._tcp.mx`` CNAME a shared
``_dane`` RRset): real BIND (primary + secondary, inline signing), a validating unbound, an SMTP
server with STARTTLS; the CLI as a subprocess. Each step's DNSSEC status counts: a chain into
an unsigned zone is no DANE, a loop fails."""

# ruff: noqa: F811
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import dns.update
import pytest

from tests.support import schemas
from tests.support.helpers import run_cli
from tests.support.servers import BindServers, Unbound, bind, bind_servers, unbound  # noqa: F401
from tests.support.tls_servers import Chain, ServerPool, chains, publish, servers  # noqa: F401
from tlsarotate import material, records

HOST = "mx.example.test"


def cname(b: BindServers, zone: str, name: str, target: str | None) -> None:
    def build(m: dns.update.UpdateMessage) -> None:
        m.delete(name, "CNAME")
        if target is not None:
            m.add(name, 2, "CNAME", target)

    assert b.update(zone, build=build).rcode() == 0
    b.wait_synced(zone)


def rec(chain: Chain) -> str:
    m = material.parse(chain.fullchain.read_bytes(), chain.fullchain)
    return records.to_text(records.build(m, records.parse_params("3 1 1")))


class World:
    def __init__(self, bind: BindServers, unbound: Unbound, port: int) -> None:
        self.bind, self.unbound, self.port = bind, unbound, port
        self.owner = f"_{port}._tcp.{HOST}."
        self.names: list[tuple[str, str]] = []

    def cname(self, zone: str, name: str, target: str) -> None:
        self.names.append((zone, name))
        cname(self.bind, zone, name, target)

    def probe(self, host: str = HOST) -> tuple[int, dict[str, Any]]:
        args = [
            "probe", host, "--port", str(self.port), "--starttls", "smtp", "--output", "json",
            "--resolver", f"{self.unbound.address}:{self.unbound.port}",
            "--nameserver", f"127.0.0.1:{self.bind.port}",
            "--nameserver", f"[::1]:{self.bind.port}",
            "--address", "127.0.0.1",
        ]  # fmt: skip
        # unbound caches for at most 2 s (cache-max-ttl): a fresh answer after the change
        time.sleep(2.2)
        p = run_cli(*args)
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, schemas.validate("probe", p.stdout)


@pytest.fixture
def world(
    bind: BindServers, unbound: Unbound, servers: ServerPool, chains: Callable[..., Chain]
) -> Iterator[tuple[World, Chain]]:
    chain = chains("cur", hosts=(HOST,))
    srv = servers.smtpd(chain)
    w = World(bind, unbound, srv.port)
    yield w, chain
    for zone, name in w.names:
        cname(bind, zone, name, None)


def test_a_cname_to_a_shared_owner_in_the_zone_is_followed(world: tuple[World, Chain]) -> None:
    w, chain = world
    publish(w.bind, "example.test.", "_dane.example.test.", [rec(chain)])
    w.cname("example.test.", w.owner, "_dane.example.test.")
    rc, doc = w.probe()
    assert rc == 0, doc
    assert doc["dane"] == "authenticated"
    assert doc["tlsa"]["records"] == [rec(chain)]
    assert doc["tlsa"]["dnssec"] == "signed"
    assert doc["tlsa"]["cname_chain"] == [w.owner, "_dane.example.test."]
    assert doc["tlsa"]["resolver"]["ad"] is True
    assert doc["tlsa"]["resolver"]["cname_chain"] == [w.owner, "_dane.example.test."]
    p = run_cli(
        "probe", HOST, "--port", w.port, "--starttls", "smtp", "--address", "127.0.0.1",
        "--nameserver", f"127.0.0.1:{w.bind.port}",
    )  # fmt: skip
    assert f"{w.owner} is a CNAME: {w.owner} -> _dane.example.test." in p.stdout, p.stdout


def test_a_cname_into_another_signed_zone_is_followed_there(world: tuple[World, Chain]) -> None:
    w, chain = world
    publish(w.bind, "policy.test.", "_dane.policy.test.", [rec(chain)])
    w.cname("example.test.", w.owner, "_dane.policy.test.")
    rc, doc = w.probe()
    assert rc == 0, doc
    assert doc["tlsa"]["cname_chain"] == [w.owner, "_dane.policy.test."]
    assert doc["tlsa"]["dnssec"] == "signed"


def test_a_cname_into_an_unsigned_zone_is_no_dane(world: tuple[World, Chain]) -> None:
    w, chain = world
    publish(w.bind, "unsigned.test.", "_dane.unsigned.test.", [rec(chain)])
    w.cname("example.test.", w.owner, "_dane.unsigned.test.")
    rc, doc = w.probe()
    assert rc == 3, doc
    assert doc["dane"] == "none"
    assert any("zone unsigned.test. is not DNSSEC-signed" in i for i in doc["insecure"])
    assert doc["tlsa"]["resolver"]["ad"] is False
    assert any(
        "the TLSA RRset at _dane.unsigned.test. is not DNSSEC-secure" in i for i in doc["insecure"]
    ), doc["insecure"]


def test_a_cname_loop_fails(world: tuple[World, Chain]) -> None:
    w, _ = world
    w.cname("example.test.", w.owner, "_loop.example.test.")
    w.cname("example.test.", "_loop.example.test.", w.owner)
    rc, doc = w.probe()
    assert rc == 2, doc
    assert doc["dane"] == "fails"
    assert any(
        f"CNAME loop: {w.owner} -> _loop.example.test. -> {w.owner}" in p for p in doc["problems"]
    )


# The host name itself an alias (RFC 7671 §7, RFC 7672 §2.2.2): the TLSA base domain is the
# CNAME's target when the expansion is secure, failing that the host name.


def test_a_host_that_is_a_secure_alias_is_looked_up_at_its_target(
    world: tuple[World, Chain],
) -> None:
    w, chain = world
    publish(w.bind, "example.test.", w.owner, [rec(chain)])
    w.cname("example.test.", "alias.example.test.", f"{HOST}.")
    rc, doc = w.probe("alias.example.test")
    assert rc == 0, doc
    assert doc["dane"] == "authenticated"
    assert doc["owner"] == w.owner
    assert doc["tlsa"]["host_cname_chain"] == ["alias.example.test.", f"{HOST}."]
    assert doc["tlsa"]["host_expansion"] == "secure"
    p = run_cli(
        "probe", "alias.example.test", "--port", w.port, "--starttls", "smtp",
        "--address", "127.0.0.1", "--nameserver", f"127.0.0.1:{w.bind.port}",
    )  # fmt: skip
    assert (
        f"host alias.example.test is a CNAME: alias.example.test. -> {HOST}. (expansion "
        f"secure): TLSA base domain {HOST}." in p.stdout
    ), p.stdout


def test_a_secure_alias_whose_target_has_no_tlsa_falls_back_to_the_host_name(
    world: tuple[World, Chain],
) -> None:
    w, chain = world
    own = f"_{w.port}._tcp.alias2.example.test."
    publish(w.bind, "example.test.", own, [rec(chain)])
    w.cname("example.test.", "alias2.example.test.", f"{HOST}.")
    try:
        rc, doc = w.probe("alias2.example.test")
    finally:
        publish(w.bind, "example.test.", own, [])
    assert rc == 0, doc
    assert doc["owner"] == own
    assert doc["tlsa"]["host_expansion"].startswith(f"secure, but _{w.port}._tcp.{HOST}.")


def test_an_alias_into_an_unsigned_zone_uses_the_host_name(world: tuple[World, Chain]) -> None:
    w, chain = world
    own = f"_{w.port}._tcp.alias3.example.test."
    publish(w.bind, "unsigned.test.", f"_{w.port}._tcp.mx.unsigned.test.", [rec(chain)])
    publish(w.bind, "example.test.", own, [rec(chain)])
    w.cname("example.test.", "alias3.example.test.", "mx.unsigned.test.")
    try:
        rc, doc = w.probe("alias3.example.test")
    finally:
        publish(w.bind, "example.test.", own, [])
    assert rc == 0, doc
    assert doc["dane"] == "authenticated"
    assert doc["owner"] == own  # not the target's records in the unsigned zone
    assert doc["tlsa"]["host_expansion"].startswith("not secure (")
    assert "unsigned.test." in doc["tlsa"]["host_expansion"]
