"""Real DNS servers for tests: a BIND primary + secondary pair (TSIG, DNSSEC inline signing,
NOTIFY/AXFR propagation) and a validating unbound resolver.

Usage from a test module (the fixtures are plain pytest fixtures; import them by name)::

    # ruff: noqa: F811
    from tests.support.servers import BindServers, bind, bind_servers, unbound  # noqa: F401

    def test_something(bind: BindServers) -> None:
        opts = bind.provider_options()           # options for the rfc2136 provider
        bind.wait_synced("example.test.")        # secondary caught up with the primary

Fixtures
--------
``bind_servers`` (module scope)
    A started :class:`BindServers` with the zones in :data:`DEFAULT_ZONES`:
    ``example.test.`` (signed, ``allow-update { key K; }``), ``unsigned.test.`` (no DNSSEC) and
    ``policy.test.`` (signed; ``update-policy`` that denies ``_25._tcp.denied.policy.test.``).
    A test module may set ``BIND_ZONES = [BindZone(...), ...]`` and ``BIND_SETTINGS = {...}``
    (keyword arguments for :class:`BindServers`, e.g. ``{"notify_delay": 0}``) at module level.
``bind`` (function scope)
    The same servers after :meth:`BindServers.reset`: every TLSA RRset deleted, the secondary
    running and in sync. Use this in tests.
``unbound`` (module scope)
    An :class:`Unbound` validating resolver whose trust anchors are the signed zones' DS.

Both servers listen on the SAME free high port: the primary on 127.0.0.1, the secondary on ::1
(the zones' NS records are ``ns1.<zone> A 127.0.0.1`` and ``ns2.<zone> AAAA ::1``, so an
observer that discovers servers from NS and queries them on :attr:`BindServers.port` finds both).
A missing ``named``/``unbound`` binary fails the test (never a skip).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.serial
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from tlsarotate.config import Nameserver

T = TypeVar("T")

PRIMARY_ADDR = "127.0.0.1"
SECONDARY_ADDR = "::1"
KEY_NAME = "tlsarotate-test"


def need_binary(name: str) -> str:
    """The path of a server binary, or ``pytest.fail`` (never skip: CI must not go green
    without the real server)."""
    for d in ("", "/usr/sbin", "/usr/local/sbin", "/sbin"):
        path = (
            shutil.which(name)
            if not d
            else (f"{d}/{name}" if os.access(f"{d}/{name}", os.X_OK) else None)
        )
        if path:
            return path
    pytest.fail(
        f"{name} not found: install it "
        "(apt-get install -y bind9 bind9-utils bind9-dnsutils unbound)",
        pytrace=False,
    )


def free_port(addrs: Sequence[str] = ("127.0.0.1",), *, udp: bool = False) -> int:
    """A high port the kernel hands out on ``addrs[0]`` (bind to port 0) that is also free for
    TCP -- and UDP with ``udp`` -- on every address in ``addrs``. Nothing holds it afterwards:
    bind it soon (a server that fails to bind can retry with another one)."""
    for _ in range(200):
        fam = socket.AF_INET6 if ":" in addrs[0] else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((addrs[0], 0))
            port = int(s.getsockname()[1])
        if port < 1024:
            continue
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
        ok = True
        for addr in addrs:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            for kind in kinds:
                try:
                    with socket.socket(fam, kind) as s:
                        s.bind((addr, port))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free port found on " + ", ".join(addrs))


def free_ports(n: int, addrs: Sequence[str] = ("127.0.0.1",), *, udp: bool = False) -> list[int]:
    """``n`` distinct ports, each as :func:`free_port` picks them."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port(addrs, udp=udp)
        if port not in ports:
            ports.append(port)
    return ports


def stop_process(p: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM ``p`` and wait until it has exited (SIGKILL after ``timeout`` s); a process that
    is already gone is only reaped."""
    if p.poll() is None:
        p.terminate()  # Popen ignores a process that exits just now
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def wait_until(
    fn: Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll ``fn`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:
            last_exc = e
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{extra}", pytrace=False)
        time.sleep(interval)


def query(
    addr: str,
    port: int,
    name: str | dns.name.Name,
    rdtype: str | int,
    *,
    dnssec: bool = True,
    timeout: float = 2.0,
    tcp: bool = False,
    keyring: dict[dns.name.Name, dns.tsig.Key] | None = None,
) -> dns.message.Message:
    """One non-recursive query (RD=0, EDNS DO when ``dnssec``) straight to a server."""
    q = dns.message.make_query(name, dns.rdatatype.RdataType.make(rdtype), want_dnssec=dnssec)
    q.flags &= ~dns.flags.RD
    if keyring:
        q.use_tsig(keyring)
    if tcp:
        return dns.query.tcp(q, addr, port=port, timeout=timeout)
    return dns.query.udp_with_fallback(q, addr, port=port, timeout=timeout)[0]


@dataclass(frozen=True)
class BindZone:
    """One zone served by :class:`BindServers`.

    ``update_policy``: the rules inside ``update-policy { ... };`` with ``{key}`` replaced by
    the TSIG key name, e.g. ``'deny "{key}" name _25._tcp.no.example.test. ANY; grant "{key}"
    zonesub ANY;'`` (first match wins). ``None`` means ``allow-update { key K; }``.
    ``extra``: zone-file lines appended (names relative to the zone, default TTL 300).
    """

    name: str = "example.test."
    signed: bool = True
    update_policy: str | None = None
    extra: str = ""
    secondary: bool = True  # also served by the secondary (NS ns2 AAAA ::1)

    @property
    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.name)

    @property
    def file(self) -> str:
        return self.origin.to_text(omit_final_dot=True) + ".zone"


DEFAULT_ZONES: tuple[BindZone, ...] = (
    BindZone("example.test."),
    BindZone("unsigned.test.", signed=False),
    BindZone(
        "policy.test.",
        update_policy='deny "{key}" name _25._tcp.denied.policy.test. ANY; '
        'grant "{key}" zonesub ANY;',
    ),
)


class _Named:
    """One ``named -g`` process (foreground, logs to a file), stopped by pid."""

    def __init__(self, conf: Path, log: Path) -> None:
        self.conf, self.log = conf, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        named = need_binary("named")
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [named, "-g", "-c", str(self.conf)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            pytest.fail(
                f"named {self.conf} exited with {self.proc.returncode}:\n" + "\n".join(tail),
                pytrace=False,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)  # named takes ~1.5 s to shut down
        self.proc = None


class BindServers:
    """A BIND primary (127.0.0.1:port) and secondary ([::1]:port) serving ``zones``.

    The primary holds a TSIG key (:attr:`key_name`, :attr:`key_file` as written by
    ``tsig-keygen -a hmac-sha256``), signs DNSSEC zones with ``dnssec-policy default;
    inline-signing yes;`` and NOTIFYs the secondary after ``notify_delay`` seconds; the
    secondary fetches by AXFR. Start with :meth:`start` (or the fixtures), stop with :meth:`stop`.
    """

    def __init__(
        self,
        workdir: Path | str,
        zones: Sequence[BindZone] = DEFAULT_ZONES,
        *,
        key_name: str = KEY_NAME,
        notify_delay: int = 1,
        with_secondary: bool = True,
    ) -> None:
        self.dir = Path(workdir)
        # without a secondary every zone is served by the primary alone (NS ns1 only)
        self.with_secondary = with_secondary
        self.zones = {
            z.origin: z if with_secondary else dataclasses.replace(z, secondary=False)
            for z in zones
        }
        self.key_name = key_name
        self.notify_delay = notify_delay
        self.port = free_port((PRIMARY_ADDR, SECONDARY_ADDR), udp=True)
        self.primary_dir = self.dir / "primary"
        self.secondary_dir = self.dir / "secondary"
        self.key_file = self.dir / f"{key_name}.key"
        self._primary = _Named(self.primary_dir / "named.conf", self.dir / "primary.log")
        self._secondary = _Named(self.secondary_dir / "named.conf", self.dir / "secondary.log")
        self._write_files()
        self.key_secret = self._parse_secret()
        self.keyring = dns.tsigkeyring.from_text({self.key_name: ("hmac-sha256", self.key_secret)})

    # ---- addresses ---------------------------------------------------------------------
    @property
    def primary(self) -> tuple[str, int]:
        return (PRIMARY_ADDR, self.port)

    @property
    def secondary(self) -> tuple[str, int]:
        return (SECONDARY_ADDR, self.port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``[(addr, port), ...]`` of both servers, primary first (primary only when
        ``with_secondary`` is False)."""
        return [self.primary, self.secondary] if self.with_secondary else [self.primary]

    @property
    def nameservers(self) -> tuple[Nameserver, ...]:
        """Both servers as config Nameservers (for a Service's ``nameservers``)."""
        return tuple(Nameserver(a, p) for a, p in self.addresses)

    def provider_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for the ``rfc2136`` provider that talk to the primary with the test key."""
        opts: dict[str, Any] = {
            "server": PRIMARY_ADDR,
            "port": self.port,
            "tsig_key_file": self.key_file,
            "timeout": 2.0,
            "retries": 2,
            "read": "query",
        }
        opts.update(overrides)
        return opts

    # ---- files -------------------------------------------------------------------------
    def _parse_secret(self) -> str:
        import re

        m = re.search(r'secret\s+"([^"]+)"', self.key_file.read_text())
        assert m, f"no secret in {self.key_file}"
        return m.group(1)

    def _options(self, d: Path, listen: str) -> str:
        return f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    {listen}
    recursion no;
    dnssec-validation no;
    notify-delay {self.notify_delay};
    max-journal-size 10M;
    minimal-responses no;
}};
controls {{ }};
"""

    def _write_files(self) -> None:
        for d in (self.primary_dir, self.secondary_dir):
            d.mkdir(parents=True, exist_ok=True)
        keygen = need_binary("tsig-keygen")
        out = subprocess.run(
            [keygen, "-a", "hmac-sha256", self.key_name], check=True, capture_output=True, text=True
        ).stdout
        self.key_file.write_text(out)
        self.key_file.chmod(0o600)
        p, s = self.primary_dir, self.secondary_dir
        pconf = [
            self._options(
                p, f"listen-on port {self.port} {{ {PRIMARY_ADDR}; }}; listen-on-v6 {{ none; }};"
            ),
            f'include "{self.key_file}";',
        ]
        sconf = [
            self._options(
                s, f"listen-on {{ none; }}; listen-on-v6 port {self.port} {{ {SECONDARY_ADDR}; }};"
            ),
            # the key too: an observer's TSIG-signed transfer (observe_read: axfr)
            f'include "{self.key_file}";',
        ]
        for z in self.zones.values():
            self._write_zone_file(z)
            if z.update_policy is not None:
                upd = "update-policy { " + z.update_policy.replace("{key}", self.key_name) + " };"
            else:
                upd = f'allow-update {{ key "{self.key_name}"; }};'
            sign = "dnssec-policy default; inline-signing yes;" if z.signed else ""
            notify = (
                f"notify explicit; also-notify {{ {SECONDARY_ADDR} port {self.port}; }};"
                if z.secondary
                else "notify no;"
            )
            pconf.append(
                f'zone "{z.name}" {{ type primary; file "{p / z.file}"; key-directory "{p}"; '
                f"{sign} {upd} {notify} "
                f'allow-transfer {{ key "{self.key_name}"; {PRIMARY_ADDR}; '
                f"{SECONDARY_ADDR}; }}; }};"
            )
            if z.secondary:
                sconf.append(
                    f'zone "{z.name}" {{ type secondary; file "{s / z.file}"; '
                    f"primaries {{ {PRIMARY_ADDR} port {self.port}; }}; "
                    "allow-notify { any; }; };"
                )
        (p / "named.conf").write_text("\n".join(pconf) + "\n")
        (s / "named.conf").write_text("\n".join(sconf) + "\n")

    def _write_zone_file(self, z: BindZone) -> None:
        ns2 = f"@ NS ns2\nns2 AAAA {SECONDARY_ADDR}\n" if z.secondary else ""
        text = (
            f"$ORIGIN {z.name}\n$TTL 300\n"
            f"@ SOA ns1 hostmaster 1 3600 600 86400 60\n"
            f"@ NS ns1\nns1 A {PRIMARY_ADDR}\n{ns2}"
            f"mx A 127.0.0.1\n{z.extra}\n"
        )
        (self.primary_dir / z.file).write_text(text)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> BindServers:
        self.start_primary()
        self.start_secondary()
        return self

    def start_primary(self) -> None:
        self._primary.start()
        for z in self.zones.values():
            wait_until(
                functools.partial(self._serves_zone, self.primary, z),
                15,
                f"primary to serve {z.name}",
            )

    def start_secondary(self) -> None:
        """(Re)start the secondary on the same port; waits until it serves every zone
        (signed where the primary signs) at the primary's serial."""
        if self._secondary.running or not self.with_secondary:
            return
        # a restarted secondary would serve its old copy until its SOA refresh timer fires;
        # start it empty so it transfers the zone at once (what an operator's `rndc retransfer`
        # does), keeping the tests fast and deterministic
        for z in self.zones.values():
            for stale in (self.secondary_dir / z.file, self.secondary_dir / f"{z.file}.jnl"):
                stale.unlink(missing_ok=True)
        self._secondary.start()
        for z in self.zones.values():
            if z.secondary:
                wait_until(
                    functools.partial(self._serves_zone, self.secondary, z),
                    15,
                    f"secondary to serve {z.name}",
                )
        self.wait_synced()

    def stop_secondary(self) -> None:
        """SIGTERM the secondary and wait for its pid to exit (the port is then free)."""
        self._secondary.stop()

    def stop(self) -> None:
        self._secondary.stop()
        self._primary.stop()

    @property
    def secondary_running(self) -> bool:
        return self._secondary.running

    def _serves_zone(self, server: tuple[str, int], z: BindZone) -> bool:
        (self._primary if server == self.primary else self._secondary).check_alive()
        r = query(*server, z.origin, "SOA", timeout=0.5)
        if r.rcode() != dns.rcode.NOERROR or not r.answer:
            return False
        if not z.signed:
            return True
        has_sig = any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer)
        k = query(*server, z.origin, "DNSKEY", timeout=0.5)
        return has_sig and any(rr.rdtype == dns.rdatatype.DNSKEY for rr in k.answer)

    # ---- queries and helpers -----------------------------------------------------------
    def serial(self, server: tuple[str, int], zone: str | dns.name.Name) -> int | None:
        try:
            r = query(*server, zone, "SOA", dnssec=False, timeout=0.5)
        except Exception:
            return None
        for rr in r.answer:
            if rr.rdtype == dns.rdatatype.SOA:
                return int(rr[0].serial)
        return None

    def wait_synced(self, zone: str | dns.name.Name | None = None, timeout: float = 20) -> None:
        """Wait until the secondary serves the primary's (signed) serial for the zone(s)."""
        zones = [self.zones[dns.name.from_text(str(zone))]] if zone else list(self.zones.values())
        for z in zones:
            if not z.secondary:
                continue

            def same(z: BindZone = z) -> bool:
                ps = self.serial(self.primary, z.origin)
                return ps is not None and ps == self.serial(self.secondary, z.origin)

            wait_until(same, timeout, f"secondary to catch up on {z.name}")

    def update(
        self,
        zone: str | dns.name.Name,
        *,
        keyring: Any = "default",
        build: Callable[[dns.update.UpdateMessage], object] | None = None,
        wait: bool = True,
    ) -> dns.message.Message:
        """Send one UPDATE (signed with the test key unless ``keyring`` says otherwise) as
        "another client" would; ``build(msg)`` fills it in. Returns the response.

        With ``wait`` (and NOERROR) it waits up to 3 s until the primary's served serial has
        grown (inline signing serves the change a moment after the UPDATE's answer); a no-op
        update therefore costs those 3 s: pass ``wait=False`` for those."""
        kr = self.keyring if keyring == "default" else keyring
        msg = dns.update.UpdateMessage(zone, keyring=kr) if kr else dns.update.UpdateMessage(zone)
        if build:
            build(msg)
        before = self.serial(self.primary, zone)
        r = dns.query.tcp(msg, PRIMARY_ADDR, port=self.port, timeout=5)
        if wait and r.rcode() == dns.rcode.NOERROR and before is not None:
            self.wait_primary_serial(zone, before)
        return r

    def wait_primary_serial(
        self, zone: str | dns.name.Name, above: int, timeout: float = 3.0
    ) -> bool:
        """Wait until the primary serves a serial above ``above``; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.serial(self.primary, zone)
            if s is not None and dns.serial.Serial(s) > above:
                return True
            time.sleep(0.005)
        return False

    def axfr(self, zone: str | dns.name.Name) -> dns.zone.Zone:
        """The primary's (signed) zone, transferred with the test key."""
        return dns.zone.from_xfr(
            dns.query.xfr(PRIMARY_ADDR, zone, port=self.port, keyring=self.keyring, lifetime=10)
        )

    def reset(self) -> None:
        """Delete every TLSA RRset in every zone (one UPDATE per zone), make sure the secondary
        runs, and wait until it has caught up."""
        if self.with_secondary and not self._secondary.running:
            self.start_secondary()
        changed = False
        for z in self.zones.values():
            owners = sorted(
                {
                    name.derelativize(z.origin)
                    for name, node in self.axfr(z.origin).nodes.items()
                    if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA) is not None
                }
            )
            if not owners:
                continue
            changed = True

            def delete_all(m: dns.update.UpdateMessage, o: list[dns.name.Name] = owners) -> None:
                for n in o:
                    m.delete(n, "TLSA")

            r = self.update(z.origin, build=delete_all)
            assert r.rcode() == dns.rcode.NOERROR, (z.name, dns.rcode.to_text(r.rcode()))
        if changed:
            self.wait_synced()

    def ds(self, zone: str | dns.name.Name) -> str:
        """The zone's DS line(s) (SHA-256, via ``dnssec-dsfromkey -2``) from its DNSKEY."""
        origin = dns.name.from_text(str(zone))
        r = query(*self.primary, origin, "DNSKEY", dnssec=False)
        keys = "\n".join(rr.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.DNSKEY)
        assert keys, f"{origin} has no DNSKEY"
        out = subprocess.run(
            [need_binary("dnssec-dsfromkey"), "-2", "-f", "-", origin.to_text()],
            input=keys + "\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.strip()

    def log(self, which: str = "primary") -> str:
        return (self.dir / f"{which}.log").read_text(errors="replace")


class Unbound:
    """A validating unbound on 127.0.0.1:port with stub zones to the BIND primary and the
    signed zones' DS as trust anchors."""

    def __init__(self, workdir: Path | str, bind: BindServers) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bind = bind
        self.address = "127.0.0.1"
        self.port = free_port((self.address,), udp=True)
        self.proc: subprocess.Popen[bytes] | None = None
        anchors = self.dir / "anchors.ds"
        anchors.write_text(
            "\n".join(bind.ds(z.origin) for z in bind.zones.values() if z.signed) + "\n"
        )
        stubs = "".join(
            f'stub-zone:\n    name: "{z.name}"\n    stub-addr: {PRIMARY_ADDR}@{bind.port}\n'
            for z in bind.zones.values()
        )
        insecure = "".join(
            f'    domain-insecure: "{z.name}"\n' for z in bind.zones.values() if not z.signed
        )
        (self.dir / "unbound.conf").write_text(
            f"""server:
    interface: {self.address}@{self.port}
    port: {self.port}
    do-ip6: no
    do-not-query-localhost: no
    local-zone: "test." nodefault
    trust-anchor-file: "{anchors}"
{insecure}    chroot: ""
    username: ""
    directory: "{self.dir}"
    pidfile: "{self.dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    cache-max-ttl: 2
    cache-max-negative-ttl: 1
    val-log-level: 2
remote-control:
    control-enable: no
{stubs}"""
        )

    def start(self) -> Unbound:
        exe = need_binary("unbound")
        with open(self.dir / "unbound.log", "ab") as logf:
            self.proc = subprocess.Popen(
                [exe, "-d", "-c", str(self.dir / "unbound.conf")],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(
                    "unbound exited:\n" + (self.dir / "unbound.log").read_text(), pytrace=False
                )
            q = dns.message.make_query("example.invalid.", "A")
            dns.query.udp(q, self.address, port=self.port, timeout=0.3)
            return True

        wait_until(up, 10, "unbound to answer")
        return self

    def resolver(self) -> dns.resolver.Resolver:
        """A dnspython resolver that asks this unbound (DO bit set, so AD is meaningful)."""
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [self.address]
        r.port = self.port
        r.use_edns(0, dns.flags.DO, 1232)
        r.lifetime = 5
        r.cache = None
        return r

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None


# ---- pytest fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def bind_servers(request: pytest.FixtureRequest) -> Iterator[BindServers]:
    """The module's BIND pair. A test module may set ``BIND_ZONES`` (a list of
    :class:`BindZone`) and ``BIND_SETTINGS`` (keyword arguments for :class:`BindServers`)."""
    zones = getattr(request.module, "BIND_ZONES", DEFAULT_ZONES)
    settings = getattr(request.module, "BIND_SETTINGS", {})
    with tempfile.TemporaryDirectory(prefix="tlsarotate-bind-") as d:
        servers = BindServers(d, zones, **settings)
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()


@pytest.fixture
def bind(bind_servers: BindServers) -> BindServers:
    """The module's BIND pair, reset: no TLSA records anywhere, secondary up and in sync."""
    bind_servers.reset()
    return bind_servers


@pytest.fixture(scope="module")
def unbound(bind_servers: BindServers) -> Iterator[Unbound]:
    with tempfile.TemporaryDirectory(prefix="tlsarotate-unbound-") as d:
        u = Unbound(d, bind_servers)
        try:
            u.start()
            yield u
        finally:
            u.stop()
