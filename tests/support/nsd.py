"""A real NSD for tests: ``nsd -d`` on 127.0.0.1 (a free high port, its control port another),
serving a zone PRE-SIGNED with ``dnssec-signzone`` (NSD does not sign): the unsigned master
file ``example.test.zone`` is what the ``zonefile`` provider edits, ``example.test.zone.signed``
what NSD loads. :meth:`NsdServer.provider_options` gives the provider the ``sign`` and
``reload`` commands an operator would configure (re-sign, then ``nsd-control reload ZONE``).

Usage from a test module::

    # ruff: noqa: F811
    from tests.support.nsd import NsdServer, nsd  # noqa: F401

    def test_something(nsd: NsdServer) -> None:
        opts = nsd.provider_options()            # options for the zonefile provider

``nsd`` (function scope) is a started :class:`NsdServer` with fresh files and keys (an NSD
starts in about half a second). A missing ``nsd`` / ``nsd-control`` / ``dnssec-signzone``
fails the test (never a skip).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.servers import free_ports, need_binary, query, stop_process, wait_until
from tlsarotate.config import Nameserver

ADDR = "127.0.0.1"
APT = "apt-get install -y nsd bind9-utils"

ZONE_TEXT = """$ORIGIN {zone}
$TTL 300
@   IN SOA ns1 hostmaster ( 2026010100 3600 600 86400 60 )
    IN NS ns1
ns1 IN A 127.0.0.1
mx  IN A 127.0.0.1
"""


def nsd_binary(name: str) -> str:
    try:
        return need_binary(name)
    except pytest.fail.Exception:
        pytest.fail(f"{name} not found: install it ({APT})", pytrace=False)


class NsdServer:
    """One ``nsd`` serving ``zone`` signed from ``workdir``."""

    def __init__(self, workdir: Path | str, zone: str = "example.test.") -> None:
        self.dir = Path(workdir)
        self.origin = dns.name.from_text(zone)
        self.name = self.origin.to_text(omit_final_dot=True)
        self.port, self.control_port = free_ports(2, (ADDR,), udp=True)
        self.conf = self.dir / "nsd.conf"
        self.zone_file = self.dir / f"{self.name}.zone"
        self.signed_file = self.dir / f"{self.name}.zone.signed"
        self.keys = self.dir / "keys"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_files()

    @property
    def address(self) -> tuple[str, int]:
        return (ADDR, self.port)

    @property
    def nameservers(self) -> tuple[Nameserver, ...]:
        return (Nameserver(ADDR, self.port),)

    @property
    def sign_argv(self) -> list[str]:
        """Re-sign the master file into the file NSD loads, keeping the serial the provider
        wrote (``-N keep``), with the keys in :attr:`keys` (``-S``: smart signing), its
        ``dsset-`` file there too (``-d``)."""
        return [
            nsd_binary("dnssec-signzone"),
            "-q",
            "-K",
            str(self.keys),
            "-d",  # its dsset- file goes there, not into the working directory
            str(self.keys),
            "-S",
            "-N",
            "keep",
            "-o",
            self.name,
            "-f",
            str(self.signed_file),
            str(self.zone_file),
        ]

    @property
    def reload_argv(self) -> list[str]:
        return [nsd_binary("nsd-control"), "-c", str(self.conf), "reload", self.name]

    def provider_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for the ``zonefile`` provider: this master file, re-signed and reloaded."""
        opts: dict[str, Any] = {
            "path": str(self.zone_file),
            "sign": self.sign_argv,
            "reload": self.reload_argv,
        }
        opts.update(overrides)
        return opts

    def _run(self, argv: list[str]) -> str:
        p = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir)
        assert p.returncode == 0, f"{argv}: {p.stdout}{p.stderr}"
        return p.stdout

    def _write_files(self) -> None:
        self.keys.mkdir(parents=True, exist_ok=True)
        self.zone_file.write_text(ZONE_TEXT.format(zone=self.origin))
        keygen = nsd_binary("dnssec-keygen")
        for extra in (["-f", "KSK"], []):
            self._run(
                [keygen, "-q", "-K", str(self.keys), "-a", "ECDSAP256SHA256", *extra, self.name]
            )
        self._run(self.sign_argv)
        self._run([nsd_binary("nsd-control-setup"), "-d", str(self.dir)])
        d = self.dir
        self.conf.write_text(
            f"""server:
    ip-address: {ADDR}@{self.port}
    port: {self.port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    verbosity: 1
remote-control:
    control-enable: yes
    control-interface: {ADDR}
    control-port: {self.control_port}
    server-key-file: "{d}/nsd_server.key"
    server-cert-file: "{d}/nsd_server.pem"
    control-key-file: "{d}/nsd_control.key"
    control-cert-file: "{d}/nsd_control.pem"
zone:
    name: {self.name}
    zonefile: "{self.signed_file}"
"""
        )
        self._run([nsd_binary("nsd-checkconf"), str(self.conf)])

    def start(self) -> NsdServer:
        with open(self.dir / "nsd.out", "ab") as logf:
            self.proc = subprocess.Popen(
                [nsd_binary("nsd"), "-d", "-c", str(self.conf)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_until(self._serves, 15, f"nsd to serve {self.origin}")
        return self

    def _serves(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"nsd exited with {self.proc.returncode}:\n{self.log()}", pytrace=False)
        r = query(*self.address, self.origin, "SOA", timeout=0.5)
        return r.rcode() == dns.rcode.NOERROR and any(
            rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def log(self) -> str:
        return "".join(
            (self.dir / f).read_text(errors="replace")
            for f in ("nsd.out", "nsd.log")
            if (self.dir / f).exists()
        )

    def serial(self) -> int:
        r = query(*self.address, self.origin, "SOA", dnssec=False)
        return int(r.answer[0][0].serial)

    def ds(self) -> str:
        """The zone's DS (SHA-256) from its served DNSKEY, as a trust anchor."""
        r = query(*self.address, self.origin, "DNSKEY", dnssec=False)
        keys = "\n".join(rr.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.DNSKEY)
        return subprocess.run(
            [nsd_binary("dnssec-dsfromkey"), "-2", "-f", "-", self.origin.to_text()],
            input=keys + "\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()


@pytest.fixture
def nsd() -> Iterator[NsdServer]:
    """A started NSD with a freshly signed zone (fresh keys, fresh files)."""
    with tempfile.TemporaryDirectory(prefix="tlsarotate-nsd-") as d:
        server = NsdServer(d)
        try:
            server.start()
            yield server
        finally:
            server.stop()
