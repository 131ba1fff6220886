"""The check tests' world: a service on the real BIND pair the tests start (zones
``CHECK_ZONES``: one signed, one unsigned), live STARTTLS endpoints, and the helpers that make
records for a chain. Test modules using it set ``BIND_ZONES = CHECK_ZONES`` for their BIND
fixture and import the ``world`` fixture from here."""

# ruff: noqa: F811
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import (  # noqa: F401
    BindServers,
    BindZone,
    bind,
    bind_servers,
)
from tests.support.tls_servers import (  # noqa: F401
    Chain,
    ServerPool,
    chains,
    servers,
)
from tlsarotate import material, records

CHECK_ZONES = [
    BindZone("example.test.", extra="mx A 127.0.0.1\nmx AAAA ::1\n"),
    BindZone("unsigned.test.", signed=False, extra="mx A 127.0.0.1\nmx AAAA ::1\n"),
]
HOST = "mx.example.test"


def rec(chain: Chain, params: str = "3 1 1") -> str:
    m = material.parse(chain.fullchain.read_bytes(), chain.fullchain)
    return records.to_text(records.build(m, records.parse_params(params)))


def spki(chain: Chain) -> str:
    return hashlib.sha256(material.parse(chain.fullchain.read_bytes(), "x").spki).hexdigest()


@dataclass
class CheckWorld:
    bind: BindServers
    port: int  # SMTP port on both 127.0.0.1 and ::1
    dir: Path

    @property
    def owner(self) -> str:
        return f"_{self.port}._tcp.{HOST}."

    def config(
        self,
        deployed: Chain,
        nxt: Chain | None = None,
        zone: str = "example.test",
        host: str = HOST,
        params: tuple[str, ...] = ("3 1 1",),
        name: str = "config.yaml",
    ) -> Path:
        ns = ", ".join(f'"{n}"' for n in self.bind.nameservers)
        nxt_yaml = (
            f"\n      next: {{cert: {nxt.fullchain}, key: {nxt.key}}}" if nxt is not None else ""
        )
        recs = ", ".join(f'"{p}"' for p in params)
        text = f"""\
state_dir: {self.dir / "state"}
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {self.bind.port}
    tsig_key_file: {self.bind.key_file}
services:
  - name: mail
    zone: {zone}
    provider: bind
    hosts: [{host}]
    ports: [{self.port}]
    records: [{recs}]
    nameservers: [{ns}]
    certificate:
      deployed: {{cert: {deployed.fullchain}, key: {deployed.key}}}{nxt_yaml}
      verify: {{starttls: smtp}}
"""
        p = self.dir / name
        p.write_text(text)
        return p


@pytest.fixture
def world(bind: BindServers, servers: ServerPool, tmp_path: Path) -> Iterator[CheckWorld]:
    yield CheckWorld(bind, 0, tmp_path)


def serve(world: CheckWorld, servers: ServerPool, chain: Chain) -> CheckWorld:
    world.port = servers.smtpd_pair(chain)
    return world
