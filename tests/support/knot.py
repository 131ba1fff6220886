"""A real Knot DNS primary for tests: ``knotd`` on 127.0.0.1, a free high port, a TSIG key
(made by ``keymgr -t``) allowed to update and transfer, and automatic DNSSEC signing
(``dnssec-signing: on``, the default policy: ECDSA P-256 keys made at start).

Usage from a test module::

    # ruff: noqa: F811
    from tests.support.knot import KnotServer, knot, knot_server  # noqa: F401

    def test_something(knot: KnotServer) -> None:
        opts = knot.provider_options()           # options for the rfc2136 provider

Fixtures
--------
``knot_server`` (module scope)
    A started :class:`KnotServer` with the zones in :data:`KNOT_ZONES` (``example.test.``
    signed; ``unsigned.test.`` not). A test module may set ``KNOT_ZONES = [...]`` itself.
``knot`` (function scope)
    The same server after :meth:`KnotServer.reset`: every TLSA RRset deleted.

Knot signs an UPDATE while it processes it, before it answers, and keeps every change in its
journal (``zonefile-sync: -1``: the zone file is never rewritten). A missing ``knotd`` /
``knotc`` / ``keymgr`` fails the test (never a skip).
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from tests.support.servers import free_port, need_binary, query, stop_process, wait_until
from tlsarotate.config import Nameserver

ADDR = "127.0.0.1"
KEY_NAME = "tlsarotate-knot"
KNOT_ZONES: tuple[tuple[str, bool], ...] = (("example.test.", True), ("unsigned.test.", False))
APT = "apt-get install -y knot knot-dnsutils"


def knot_binary(name: str) -> str:
    try:
        return need_binary(name)
    except pytest.fail.Exception:
        pytest.fail(f"{name} not found: install it ({APT})", pytrace=False)


class KnotServer:
    """One ``knotd`` serving ``zones`` (``(name, signed)`` pairs) from ``workdir``."""

    def __init__(self, workdir: Path | str, zones: Sequence[tuple[str, bool]] = KNOT_ZONES) -> None:
        self.dir = Path(workdir)
        self.zones = {dns.name.from_text(n): signed for n, signed in zones}
        self.port = free_port((ADDR,), udp=True)
        self.key_name = KEY_NAME
        self.conf = self.dir / "knot.conf"
        self.key_file = self.dir / "tsig.key"  # BIND syntax, for the rfc2136 provider
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_files()
        self.keyring = dns.tsigkeyring.from_text({self.key_name: ("hmac-sha256", self.key_secret)})

    @property
    def address(self) -> tuple[str, int]:
        return (ADDR, self.port)

    @property
    def nameservers(self) -> tuple[Nameserver, ...]:
        return (Nameserver(ADDR, self.port),)

    def provider_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for the ``rfc2136`` provider that talk to this server with the test key."""
        opts: dict[str, Any] = {
            "server": ADDR,
            "port": self.port,
            "tsig_key_file": self.key_file,
            "timeout": 2.0,
            "retries": 2,
            "read": "query",
        }
        opts.update(overrides)
        return opts

    def zone_file(self, zone: str | dns.name.Name) -> Path:
        """The master file knotd loads ``zone`` from (for the ``zonefile`` provider; knotd
        keeps UPDATEs in its journal and applies a reloaded file's difference on top)."""
        return (
            self.dir
            / "zones"
            / (dns.name.from_text(str(zone)).to_text(omit_final_dot=True) + ".zone")
        )

    def reload_argv(self, zone: str | dns.name.Name) -> list[str]:
        """``knotc zone-reload ZONE`` for this server (the ``zonefile`` provider's reload)."""
        name = dns.name.from_text(str(zone)).to_text(omit_final_dot=True)
        return [knot_binary("knotc"), "-c", str(self.conf), "zone-reload", name]

    def _write_files(self) -> None:
        for d in ("zones", "db"):  # the db directory must exist, or signing cannot start
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [knot_binary("keymgr"), "-t", self.key_name, "hmac-sha256"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (self.dir / "key.conf").write_text(out)
        m = re.search(r"secret:\s*(\S+)", out)
        assert m, f"no secret in keymgr output: {out!r}"
        self.key_secret = m.group(1)
        self.key_file.write_text(
            f'key "{self.key_name}" {{\n\talgorithm hmac-sha256;\n'
            f'\tsecret "{self.key_secret}";\n}};\n'
        )
        self.key_file.chmod(0o600)
        zones = []
        for origin, signed in self.zones.items():
            name = origin.to_text(omit_final_dot=True)
            (self.dir / "zones" / f"{name}.zone").write_text(
                f"$ORIGIN {origin}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n"
                f"@ NS ns1\nns1 A {ADDR}\nmx A 127.0.0.1\n"
            )
            zones.append(
                f"  - domain: {name}\n    dnssec-signing: {'on' if signed else 'off'}\n"
                "    acl: upd\n    zonefile-sync: -1\n    zonefile-load: difference-no-serial\n"
                "    journal-content: all\n"
            )
        self.conf.write_text(
            f"""server:
    rundir: {self.dir}
    listen: {ADDR}@{self.port}
    pidfile: {self.dir}/knot.pid
log:
  - target: stderr
    any: info
database:
    storage: {self.dir}/db
include: {self.dir}/key.conf
acl:
  - id: upd
    key: {self.key_name}
    action: [update, transfer]
template:
  - id: default
    storage: {self.dir}/zones
    file: "%s.zone"
zone:
"""
            + "".join(zones)
        )
        subprocess.run(
            [knot_binary("knotc"), "-c", str(self.conf), "conf-check"],
            check=True,
            capture_output=True,
        )

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> KnotServer:
        with open(self.dir / "knot.log", "ab") as logf:
            self.proc = subprocess.Popen(
                [knot_binary("knotd"), "-c", str(self.conf)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        for origin in self.zones:
            wait_until(functools.partial(self._serves, origin), 15, f"knotd to serve {origin}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def _serves(self, origin: dns.name.Name) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"knotd exited with {self.proc.returncode}:\n{self.log()}", pytrace=False)
        r = query(*self.address, origin, "SOA", timeout=0.5)
        if r.rcode() != dns.rcode.NOERROR or not r.answer:
            return False
        if not self.zones[origin]:
            return True
        return any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer)

    def log(self) -> str:
        return (self.dir / "knot.log").read_text(errors="replace")

    # ---- queries and helpers -----------------------------------------------------------
    def update(
        self,
        zone: str | dns.name.Name,
        build: Callable[[dns.update.UpdateMessage], object],
        *,
        keyring: Any = "default",
    ) -> dns.message.Message:
        """Send one UPDATE as "another client" would (signed with the test key unless
        ``keyring`` says otherwise); ``build(msg)`` fills it in. Returns the answer."""
        kr = self.keyring if keyring == "default" else keyring
        msg = dns.update.UpdateMessage(zone, keyring=kr) if kr else dns.update.UpdateMessage(zone)
        build(msg)
        return dns.query.tcp(msg, ADDR, port=self.port, timeout=5)

    def axfr(self, zone: str | dns.name.Name, keyring: Any = "default") -> dns.zone.Zone:
        """The served (signed) zone, transferred with the test key."""
        kr = self.keyring if keyring == "default" else keyring
        return dns.zone.from_xfr(dns.query.xfr(ADDR, zone, port=self.port, keyring=kr, lifetime=10))

    def tlsa_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        return sorted(
            name.derelativize(zone)
            for name, node in self.axfr(zone).nodes.items()
            if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA) is not None
        )

    def reset(self) -> None:
        """Delete every TLSA RRset in every zone (one UPDATE per zone)."""
        for zone in self.zones:
            owners = self.tlsa_owners(zone)
            if owners:

                def delete_all(m: Any, o: Any = owners) -> None:
                    for n in o:
                        m.delete(n, "TLSA")

                r = self.update(zone, delete_all)
                assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())

    def ds(self, zone: str | dns.name.Name) -> str:
        """The zone's DS line(s) (SHA-256) from its DNSKEY, as a trust anchor."""
        origin = dns.name.from_text(str(zone))
        r = query(*self.address, origin, "DNSKEY", dnssec=False)
        keys = "\n".join(rr.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.DNSKEY)
        assert keys, f"{origin} has no DNSKEY"
        return subprocess.run(
            [need_binary("dnssec-dsfromkey"), "-2", "-f", "-", origin.to_text()],
            input=keys + "\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()


@pytest.fixture(scope="module")
def knot_server(request: pytest.FixtureRequest) -> Iterator[KnotServer]:
    """The module's knotd. A test module may set ``KNOT_ZONES`` (``(name, signed)`` pairs)."""
    zones = getattr(request.module, "KNOT_ZONES", KNOT_ZONES)
    with tempfile.TemporaryDirectory(prefix="tlsarotate-knot-") as d:
        server = KnotServer(d, zones)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture
def knot(knot_server: KnotServer) -> KnotServer:
    """The module's knotd, reset: no TLSA records anywhere."""
    knot_server.reset()
    return knot_server
