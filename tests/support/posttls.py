"""The real-client DANE oracle: Postfix ``posttls-finger`` against a validating resolver.

posttls-finger takes DNSSEC from the system resolver (the AD bit of its answers), so this
module runs, for the whole test module:

- one ``named`` on 127.0.0.1:PORT serving the zones of :class:`Zone` (``inline``: signed by
  BIND itself, ``dnssec-policy default; inline-signing yes;``; ``unsigned``: no DNSSEC;
  ``tampered``: signed with ``dnssec-signzone``, then the TLSA data of the names in
  ``tamper`` changed behind the signatures: a real bogus RRset whose A/AAAA still validate);
- one validating ``unbound`` on **127.0.0.53:53** (resolv.conf cannot name a port) with the
  signed zones' DS as trust anchors, stub zones to named, ``aggressive-nsec: no`` and one
  second cache TTLs;
- :meth:`DaneDns.posttls_finger`: ``posttls-finger`` under ``unshare -m`` with
  ``/etc/resolv.conf`` bind-mounted to ``nameserver 127.0.0.53`` + ``options edns0
  trust-ad`` (the host's resolver is untouched) and ``MAIL_CONFIG`` pointing at a private
  ``main.cf``.

:func:`posttls_verdict` turns posttls-finger's output into the RFC 7672 outcome:
``authenticated`` ("Verified TLS connection"), ``fails`` (TLSA records were usable but no
certificate matched: a Postfix sender defers; or the TLSA lookup itself failed: DNSSEC bogus),
``none`` (no TLSA records, insecure ones, or only unusable ones: Postfix sends without DANE;
posttls-finger then says which level it resorts to).

A missing binary fails the test (never a skip).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import dns.query
import dns.rdatatype
import dns.rdtypes.ANY.TLSA
import dns.zone
import pytest

from tests.support.servers import free_port, need_binary, query, stop_process, wait_until

RESOLVER = "127.0.0.53"
NAMED_ADDR = "127.0.0.1"

MAIN_CF = """\
compatibility_level = 3.6
inet_protocols = all
smtp_dns_support_level = dnssec
smtp_tls_loglevel = 1
myhostname = client.tlsarotate.test
dnssec_probe =
"""


@dataclass
class Zone:
    name: str  # "dane.test."
    kind: str  # inline | unsigned | tampered
    lines: list[str] = field(default_factory=list)  # zone-file lines, names relative
    tamper: set[str] = field(default_factory=set)  # absolute TLSA owners to falsify (tampered)

    @property
    def file(self) -> str:
        return self.name.rstrip(".") + ".zone"


def _zone_text(z: Zone) -> str:
    return (
        f"$ORIGIN {z.name}\n$TTL 60\n"
        "@ SOA ns1 hostmaster 1 3600 600 86400 1\n"
        f"@ NS ns1\nns1 A {NAMED_ADDR}\n" + "\n".join(z.lines) + "\n"
    )


def _run(cmd: Sequence[str], cwd: Path | None = None) -> str:
    p = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail(f"{cmd[0]} failed ({p.returncode}): {p.stderr.strip()}", pytrace=False)
    return p.stdout


def _sign_and_tamper(d: Path, z: Zone) -> None:
    """Sign ``z`` with dnssec-signzone (keys made here), then change the TLSA data of every
    owner in ``z.tamper`` while keeping its RRSIG: validators call that RRset bogus."""
    plain = d / (z.file + ".plain")
    plain.write_text(_zone_text(z))
    origin = z.name.rstrip(".")
    keygen = need_binary("dnssec-keygen")
    _run([keygen, "-q", "-K", str(d), "-a", "ECDSAP256SHA256", "-f", "KSK", origin])
    _run([keygen, "-q", "-K", str(d), "-a", "ECDSAP256SHA256", origin])
    signed = d / (z.file + ".signed")
    _run(
        [
            need_binary("dnssec-signzone"),
            "-q",
            "-K",
            str(d),
            "-S",
            "-o",
            origin,
            "-f",
            str(signed),
            str(plain),
        ],
        cwd=d,
    )
    zone = dns.zone.from_file(str(signed), z.name, relativize=False)
    for owner in z.tamper:
        rds = zone.find_rdataset(owner, dns.rdatatype.TLSA)
        old = list(rds)
        rds.clear()  # type: ignore[no-untyped-call]
        for rd in old:
            flipped = bytes([rd.cert[0] ^ 0xFF]) + rd.cert[1:]
            rds.add(
                dns.rdtypes.ANY.TLSA.TLSA(  # type: ignore[no-untyped-call]
                    rd.rdclass, rd.rdtype, rd.usage, rd.selector, rd.mtype, flipped
                )
            )
    zone.to_file(str(d / z.file), relativize=False)


class DaneDns:
    """named + unbound on 127.0.0.53:53 + posttls-finger in a private mount namespace."""

    def __init__(self, workdir: Path, zones: Sequence[Zone]) -> None:
        self.dir = workdir
        self.zones = list(zones)
        self.port = free_port((NAMED_ADDR,), udp=True)
        self.named: subprocess.Popen[bytes] | None = None
        self.unbound: subprocess.Popen[bytes] | None = None
        self.resolv = self.dir / "resolv.conf"
        self.resolv.write_text(f"nameserver {RESOLVER}\noptions edns0 trust-ad\n")
        self.mail_config = self.dir / "postfix"
        self.mail_config.mkdir()
        (self.mail_config / "main.cf").write_text(MAIN_CF)

    # ---- named -----------------------------------------------------------------------------
    def start(self) -> DaneDns:
        d = self.dir / "named"
        d.mkdir()
        conf = [
            f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ {NAMED_ADDR}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    minimal-responses no;
}};
controls {{ }};
"""
        ]
        for z in self.zones:
            if z.kind == "tampered":
                _sign_and_tamper(d, z)
                sign = ""
            else:
                (d / z.file).write_text(_zone_text(z))
                sign = (
                    'dnssec-policy default; inline-signing yes; key-directory "' + str(d) + '";'
                    if z.kind == "inline"
                    else ""
                )
            conf.append(f'zone "{z.name}" {{ type primary; file "{d / z.file}"; {sign} }};')
        (d / "named.conf").write_text("\n".join(conf) + "\n")
        with open(self.dir / "named.log", "ab") as log:
            self.named = subprocess.Popen(
                [need_binary("named"), "-g", "-c", str(d / "named.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        for z in self.zones:
            wait_until(functools.partial(self._signed, z), 20, f"named to serve {z.name} signed")
        self._start_unbound()
        return self

    def _alive(self) -> None:
        for name, p in (("named", self.named), ("unbound", self.unbound)):
            if p is not None and p.poll() is not None:
                log = (self.dir / f"{name}.log").read_text(errors="replace")
                pytest.fail(f"{name} exited:\n{log[-2000:]}", pytrace=False)

    def _signed(self, z: Zone) -> bool:
        """The zone is served, and (signed kinds) completely signed: every RRset in a zone
        transfer carries its RRSIG and the NSEC chain is there (BIND's inline signing works
        in batches; a half-signed zone would make denials or addresses bogus)."""
        self._alive()
        r = query(NAMED_ADDR, self.port, z.name, "SOA", timeout=0.5)
        if not r.answer:
            return False
        if z.kind == "unsigned":
            return True
        xfr = dns.zone.from_xfr(dns.query.xfr(NAMED_ADDR, z.name, port=self.port, lifetime=5))
        assert xfr.origin is not None
        nsec3 = xfr.get_rdataset(xfr.origin, dns.rdatatype.NSEC3PARAM) is not None
        for _, node in xfr.nodes.items():
            types = {rds.rdtype for rds in node.rdatasets}
            covered = {rds.covers for rds in node.rdatasets if rds.rdtype == dns.rdatatype.RRSIG}
            if types - covered - {dns.rdatatype.RRSIG}:
                return False  # an RRset not signed yet
            if not nsec3 and dns.rdatatype.NSEC not in types:
                return False  # the denial chain is not complete yet
        return True

    def ds(self, zone: str) -> str:
        r = query(NAMED_ADDR, self.port, zone, "DNSKEY", dnssec=False)
        keys = "\n".join(rr.to_text() for rr in r.answer if rr.rdtype == dns.rdatatype.DNSKEY)
        out = subprocess.run(
            [need_binary("dnssec-dsfromkey"), "-2", "-f", "-", zone.rstrip(".")],
            input=keys + "\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.strip()

    # ---- unbound ---------------------------------------------------------------------------
    def _start_unbound(self) -> None:
        d = self.dir / "unbound"
        d.mkdir()
        anchors = d / "anchors.ds"
        anchors.write_text(
            "\n".join(self.ds(z.name) for z in self.zones if z.kind != "unsigned") + "\n"
        )
        stubs = "".join(
            f'stub-zone:\n    name: "{z.name}"\n    stub-addr: {NAMED_ADDR}@{self.port}\n'
            for z in self.zones
        )
        (d / "unbound.conf").write_text(
            f"""server:
    interface: {RESOLVER}@53
    port: 53
    do-daemonize: no
    do-ip6: no
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    local-zone: "test." nodefault
    trust-anchor-file: "{anchors}"
    module-config: "validator iterator"
    aggressive-nsec: no
    cache-max-ttl: 1
    cache-max-negative-ttl: 1
    chroot: ""
    username: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
remote-control:
    control-enable: no
{stubs}"""
        )
        with open(self.dir / "unbound.log", "ab") as log:
            self.unbound = subprocess.Popen(
                [need_binary("unbound"), "-d", "-c", str(d / "unbound.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def up() -> bool:
            self._alive()
            import dns.message
            import dns.query

            q = dns.message.make_query("example.invalid.", "A")
            dns.query.udp(q, RESOLVER, port=53, timeout=0.3)
            return True

        wait_until(up, 10, f"unbound on {RESOLVER}:53 to answer")

    def stop(self) -> None:
        for p in (self.unbound, self.named):
            if p is not None:
                stop_process(p)
        self.unbound = self.named = None

    # ---- the client ------------------------------------------------------------------------
    def posttls_finger(
        self, host: str, port: int, family: str = "any", wrapper: bool = False
    ) -> str:
        """posttls-finger's output for ``[host]:port`` (DANE level, public CAs from
        /etc/ssl/certs) with this resolver; ``family`` ipv4/ipv6 picks the address family,
        ``wrapper`` is SMTPS (implicit TLS, ``-w``)."""
        exe = need_binary("posttls-finger")
        unshare = need_binary("unshare")
        # -v: it says when it resorts to "secure" (no usable TLSA records: no DANE)
        args = [exe, "-v", "-c", "-l", "dane", "-P", "/etc/ssl/certs", "-t", "5", "-T", "5"]
        args += ["-a", family]
        if wrapper:
            args.append("-w")
        args.append(f"[{host}]:{port}")
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        p = subprocess.run(
            [unshare, "-m", "--", "sh", "-c", script, str(self.resolv), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"MAIL_CONFIG": str(self.mail_config), "PATH": "/usr/sbin:/usr/bin:/bin"},
        )
        return p.stdout + p.stderr


POSTTLS_RULES: tuple[tuple[str, str], ...] = (
    # (pattern, verdict): the first that matches decides
    # the TLSA lookup failed (SERVFAIL: DNSSEC bogus): Postfix defers the mail
    (r"TLSA lookup error", "fails"),
    # no TLSA records, or none usable: Postfix sends without DANE; posttls-finger then tries
    # the "secure" (public CA) level, which says nothing about DANE
    (r'(no|no usable) TLSA records found, resorting to "secure"', "none"),
    (r"Verified TLS connection established", "authenticated"),
    # usable records, no match: Postfix defers the mail
    (r"server certificate verification failed|Untrusted TLS connection established", "fails"),
)


def posttls_verdict(output: str) -> str:
    """The RFC 7672 outcome posttls-finger reports (see the module docstring)."""
    for pattern, verdict in POSTTLS_RULES:
        if re.search(pattern, output):
            return verdict
    raise AssertionError(f"posttls-finger output not understood:\n{output}")


def make_world(zones: Sequence[Zone]) -> tuple[DaneDns, tempfile.TemporaryDirectory[str]]:
    """A started :class:`DaneDns` and the directory that holds it (cleanup: stop, then
    ``cleanup()`` the directory)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare not found (util-linux)", pytrace=False)
    tmp = tempfile.TemporaryDirectory(prefix="tlsarotate-dane-")
    world = DaneDns(Path(tmp.name), zones)
    try:
        world.start()
    except BaseException:
        world.stop()
        tmp.cleanup()
        raise
    return world, tmp
