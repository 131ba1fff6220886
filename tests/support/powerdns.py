"""A real PowerDNS authoritative server for tests: ``pdns_server`` with the gsqlite3 backend, its
HTTP API on loopback, and zones created through that API signed by the server itself
(``"dnssec": true``: a CSK made at once, every answer signed, no cache to purge).

Usage from a test module::

    # ruff: noqa: F811
    from tests.support.powerdns import PowerDns, powerdns, powerdns_server  # noqa: F401

    def test_something(powerdns: PowerDns) -> None:
        powerdns.api_url, powerdns.api_key     # http://127.0.0.1:PORT/api/v1/servers/localhost

Fixtures: ``powerdns_server`` (module scope) starts one server with the zone ``example.test.``
(signed; SOA, NS ``ns1``, ``ns1 A 127.0.0.1``, ``mx A 127.0.0.1`` and the other records of
:data:`OTHER_RECORDS`); ``powerdns`` (function scope) is the same server after
:meth:`PowerDns.reset`: every TLSA RRset deleted. A missing ``pdns_server`` binary or sqlite
schema fails the test (never a skip).
"""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.name
import pytest
import requests

from tests.support.servers import free_ports, need_binary, stop_process, wait_until

SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
API_KEY = "pdns-test-api-key-4f3e2d1c"
ZONE = "example.test."
ADDRESS = "127.0.0.1"
# records beside the TLSA ones that every write must leave exactly as they are
OTHER_RECORDS: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("mx.example.test.", "A", 300, ("127.0.0.1",)),
    ("example.test.", "MX", 300, ("10 mx.example.test.",)),
    ("example.test.", "TXT", 300, ('"v=spf1 mx -all"',)),
    ("_dmarc.example.test.", "TXT", 600, ('"v=DMARC1; p=reject"',)),
)


class PowerDns:
    """One ``pdns_server`` (gsqlite3 with DNSSEC, API on :attr:`api_port`, DNS on :attr:`port`)."""

    def __init__(self, workdir: Path | str) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.api_port = free_ports(2, (ADDRESS,), udp=True)
        self.api_key = API_KEY
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = API_KEY

    @property
    def api_url(self) -> str:
        return f"http://{ADDRESS}:{self.api_port}/api/v1/servers/localhost"

    @property
    def address(self) -> tuple[str, int]:
        return (ADDRESS, self.port)

    def octodns_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for ``octodns_powerdns.PowerDnsProvider`` (the key inline: tests only)."""
        opts: dict[str, Any] = {"host": ADDRESS, "port": self.api_port, "api_key": API_KEY}
        opts.update(overrides)
        return opts

    def _write_files(self) -> None:
        if not SCHEMA.is_file():
            pytest.fail(
                f"{SCHEMA} not found: apt-get install -y pdns-server pdns-backend-sqlite3",
                pytrace=False,
            )
        db = self.dir / "pdns.sqlite3"
        with sqlite3.connect(db) as con:
            con.executescript(SCHEMA.read_text())
        (self.dir / "pdns.conf").write_text(
            f"""launch=gsqlite3
gsqlite3-database={db}
gsqlite3-dnssec=yes
local-address={ADDRESS}
local-port={self.port}
socket-dir={self.dir}
daemon=no
guardian=no
disable-syslog=yes
loglevel=4
security-poll-suffix=
api=yes
api-key={API_KEY}
webserver=yes
webserver-address={ADDRESS}
webserver-port={self.api_port}
webserver-allow-from=127.0.0.0/8,::1
default-soa-content=ns1.example.test. hostmaster.@ 0 10800 3600 604800 60
"""
        )

    def start(self) -> PowerDns:
        exe = need_binary("pdns_server")
        self._write_files()
        with open(self.dir / "pdns.log", "ab") as logf:
            self.proc = subprocess.Popen(
                [exe, f"--config-dir={self.dir}"],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail("pdns_server exited:\n" + self.log(), pytrace=False)
            return self.session.get(self.api_url, timeout=1).status_code == 200

        wait_until(up, 15, "pdns_server's API to answer")
        self.create_zone(ZONE)
        return self

    def create_zone(self, name: str) -> None:
        """Create ``name`` (signed by the server) with SOA, NS and :data:`OTHER_RECORDS`."""
        rrsets = [
            {
                "name": f"ns1.{name}",
                "type": "A",
                "ttl": 300,
                "records": [{"content": ADDRESS, "disabled": False}],
            }
        ]
        for owner, rtype, ttl, contents in OTHER_RECORDS:
            rrsets.append(
                {
                    "name": owner.replace(ZONE, name),
                    "type": rtype,
                    "ttl": ttl,
                    "records": [{"content": c, "disabled": False} for c in contents],
                }
            )
        body = {
            "name": name,
            "kind": "Native",
            "nameservers": [f"ns1.{name}"],
            "dnssec": True,
            "rrsets": rrsets,
        }
        r = self.session.post(f"{self.api_url}/zones", json=body, timeout=10)
        assert r.status_code == 201, r.text

    def rrsets(self, zone: str = ZONE) -> list[dict[str, Any]]:
        r = self.session.get(f"{self.api_url}/zones/{zone}", timeout=10)
        r.raise_for_status()
        return list(r.json()["rrsets"])

    def patch(self, rrsets: list[dict[str, Any]], zone: str = ZONE) -> None:
        r = self.session.patch(f"{self.api_url}/zones/{zone}", json={"rrsets": rrsets}, timeout=30)
        assert r.status_code == 204, r.text

    def set_tlsa(self, owner: dns.name.Name, ttl: int, texts: list[str] | None) -> None:
        """Replace (``texts``) or delete (None) the TLSA RRset at ``owner``: another writer."""
        if texts is None:
            self.patch([{"name": owner.to_text(), "type": "TLSA", "changetype": "DELETE"}])
            return
        records = [{"content": t, "disabled": False} for t in texts]
        self.patch(
            [
                {
                    "name": owner.to_text(),
                    "type": "TLSA",
                    "ttl": ttl,
                    "changetype": "REPLACE",
                    "records": records,
                }
            ]
        )

    def reset(self) -> None:
        """Delete every TLSA RRset of the zone (one PATCH)."""
        gone = [
            {"name": s["name"], "type": "TLSA", "changetype": "DELETE"}
            for s in self.rrsets()
            if s["type"] == "TLSA"
        ]
        if gone:
            self.patch(gone)

    def ds(self, zone: str = ZONE) -> str:
        """The zone's DS (SHA-256) as the API lists it, as a trust anchor line."""
        r = self.session.get(f"{self.api_url}/zones/{zone}/cryptokeys", timeout=10)
        r.raise_for_status()
        for key in r.json():
            for ds in key.get("ds", []):
                if ds.split()[2] == "2":
                    return f"{zone} IN DS {ds}"
        raise AssertionError(f"no SHA-256 DS for {zone}")

    def log(self) -> str:
        return (self.dir / "pdns.log").read_text(errors="replace")

    def stop(self) -> None:
        self.session.close()
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None


@pytest.fixture(scope="module")
def powerdns_server() -> Iterator[PowerDns]:
    with tempfile.TemporaryDirectory(prefix="tlsarotate-pdns-") as d:
        server = PowerDns(d)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture
def powerdns(powerdns_server: PowerDns) -> PowerDns:
    """The module's PowerDNS server with no TLSA RRset in its zone."""
    powerdns_server.reset()
    return powerdns_server


__all__ = ["API_KEY", "OTHER_RECORDS", "ZONE", "PowerDns", "powerdns", "powerdns_server"]
