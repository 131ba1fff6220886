"""Real TLS servers for the probe/check tests, on 127.0.0.1 and ::1, free high ports.

- :class:`SmtpdServer`: aiosmtpd with STARTTLS (``require_starttls=True``), the real thing.
- :class:`ScriptedServer`: a hand-written threaded socket server speaking one of
  ``implicit`` (TLS right away, like 465/993), ``imap`` (IMAP greeting, CAPABILITY, STARTTLS),
  ``pop3`` (CAPA/STLS), ``smtp-odd`` (SMTP whose greeting and EHLO reply arrive byte by byte
  and in odd chunks that split lines and keywords), ``smtp-nostarttls`` (EHLO without
  STARTTLS), ``smtp-inject`` (data after the STARTTLS 220), ``silent`` (accepts and never
  speaks: timeouts).
- :class:`Chain`: throwaway certificate chains written to files (tlsarotate.pki).
- :func:`openssl_dane`: the independent oracle, ``openssl s_client`` with DANE records.

Servers serve whatever chain file they were given (leaf first, as a real server does) and stop
cleanly: threads are joined, the aiosmtpd controller is stopped.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import free_port
from tlsarotate import pki

LOOPBACKS = ("127.0.0.1", "::1")


def publish(bind: object, zone: str, owner: str, texts: Sequence[str], ttl: int = 300) -> None:
    """Replace the TLSA RRset at ``owner`` (absolute) on the BIND primary (``texts`` empty:
    delete it) and wait until the secondary serves it too. ``bind``:
    tests.support.servers.BindServers."""
    import dns.rcode

    def build(m: object) -> None:
        if texts:
            m.replace(owner, ttl, "TLSA", *texts)  # type: ignore[attr-defined]
        else:
            m.delete(owner, "TLSA")  # type: ignore[attr-defined]

    r = bind.update(zone, build=build)  # type: ignore[attr-defined]
    assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())
    bind.wait_synced(zone)  # type: ignore[attr-defined]


def need_openssl() -> str:
    path = shutil.which("openssl")
    if not path:
        pytest.fail("openssl not found: apt-get install -y openssl", pytrace=False)
    return path


@dataclass
class Chain:
    """A leaf (and optionally its CA chain) written as fullchain + key files."""

    leaf: pki.Issued
    cas: tuple[pki.Issued, ...]
    fullchain: Path
    key: Path

    @property
    def leaf_pem(self) -> bytes:
        return self.leaf.cert_pem

    @property
    def leaf_path(self) -> Path:
        p = self.fullchain.with_suffix(".leaf.pem")
        if not p.exists():
            p.write_bytes(self.leaf.cert_pem)
        return p

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.fullchain), str(self.key))
        return ctx


def make_chain(
    directory: Path,
    name: str,
    ca: pki.Issued,
    hosts: Sequence[str] = ("mx.example.test",),
    send_ca: bool = True,
    key: pki.PrivateKey | None = None,
    kind: str = "ecdsa-p256",
) -> Chain:
    leaf = pki.make_leaf(ca, list(hosts), kind, key=key)
    cas = (ca,) if send_ca else ()
    full = directory / f"{name}.fullchain.pem"
    keyf = directory / f"{name}.key"
    full.write_bytes(pki.fullchain_pem(leaf, *cas))
    keyf.write_bytes(leaf.key_pem)
    keyf.chmod(0o600)
    return Chain(leaf, cas, full, keyf)


# ---------------------------------------------------------------------------------------------
# aiosmtpd


class _Handler:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


class SmtpdServer:
    """aiosmtpd with STARTTLS on ``addr``, serving ``chain``."""

    def __init__(self, addr: str, chain: Chain, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.addr = addr
        self.port = port or free_port((addr,))
        self.controller = Controller(
            _Handler(),
            hostname=addr,
            port=self.port,
            tls_context=chain.server_context(),
            require_starttls=True,
            server_hostname="mx.example.test",
            ready_timeout=10,
        )

    def start(self) -> SmtpdServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


# ---------------------------------------------------------------------------------------------
# scripted servers

MODES = (
    "implicit",
    "imap",
    "pop3",
    "smtp-odd",
    "smtp-nostarttls",
    "smtp-inject",
    "silent",
)


def _chunks(data: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    """``data`` in pieces of the given sizes (cycled)."""
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i : i + n]
        i += n
        k += 1


class ScriptedServer:
    """A threaded server on ``addr`` speaking ``mode``; TLS with ``chain``."""

    def __init__(self, addr: str, chain: Chain, mode: str, port: int = 0) -> None:
        assert mode in MODES, mode
        self.addr = addr
        self.mode = mode
        self.ctx = chain.server_context()
        self.sni_seen: list[str | None] = []
        self.ctx.sni_callback = self._sni
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.handshakes = 0
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> ScriptedServer:
        self.acceptor.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in list(self.conns):
            with contextlib.suppress(OSError):
                c.close()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni_seen.append(name)

    # helpers
    def _send_odd(self, conn: socket.socket, data: bytes) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in _chunks(data, (1, 1, 3, 7, 2, 5, 1, 11)):
            conn.sendall(piece)
            time.sleep(0.001)

    @staticmethod
    def _readline(conn: socket.socket, buf: bytearray) -> bytes:
        while b"\n" not in buf:
            chunk = conn.recv(1024)
            if not chunk:
                raise ConnectionError("client went away")
            buf += chunk
        i = buf.index(b"\n")
        line = bytes(buf[: i + 1])
        del buf[: i + 1]
        return line

    def _tls(self, conn: socket.socket) -> None:
        tls = self.ctx.wrap_socket(conn, server_side=True)
        self.handshakes += 1
        tls.settimeout(5)
        with contextlib.suppress(OSError, ssl.SSLError):
            # serve the application protocol a little: answer QUIT / read until close
            while tls.recv(1024):
                pass
        with contextlib.suppress(OSError):
            tls.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = bytearray()
        try:
            m = self.mode
            if m == "silent":
                self.stopping.wait(30)
                return
            if m == "implicit":
                self._tls(conn)
                return
            if m == "imap":
                conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] test ready\r\n")
                line = self._readline(conn, buf)
                tag = line.split()[0]
                conn.sendall(
                    b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"
                    + tag
                    + b" OK CAPABILITY completed\r\n"
                )
                line = self._readline(conn, buf)
                tag = line.split()[0]
                conn.sendall(tag + b" OK Begin TLS negotiation now\r\n")
                self._tls(conn)
                return
            if m == "pop3":
                conn.sendall(b"+OK POP3 ready\r\n")
                self._readline(conn, buf)  # CAPA
                conn.sendall(b"+OK Capability list follows\r\nUSER\r\nSTLS\r\n.\r\n")
                self._readline(conn, buf)  # STLS
                conn.sendall(b"+OK Begin TLS negotiation\r\n")
                self._tls(conn)
                return
            # SMTP variants: the greeting and the EHLO reply in odd chunks
            self._send_odd(conn, b"220-mx.example.test ESMTP test\r\n220 more greeting\r\n")
            line = self._readline(conn, buf)
            assert line.upper().startswith(b"EHLO "), line
            ext = [b"PIPELINING", b"SIZE 10240000", b"8BITMIME"]
            if m != "smtp-nostarttls":
                ext.insert(1, b"STARTTLS")
            ext.append(b"SMTPUTF8")
            reply = b"250-mx.example.test Hello\r\n"
            reply += b"".join(b"250-" + e + b"\r\n" for e in ext[:-1])
            reply += b"250 " + ext[-1] + b"\r\n"
            self._send_odd(conn, reply)
            line = self._readline(conn, buf)
            if not line.upper().startswith(b"STARTTLS"):
                conn.sendall(b"221 bye\r\n")
                return
            if m == "smtp-inject":
                conn.sendall(b"220 go ahead\r\n250 injected\r\n")
            else:
                self._send_odd(conn, b"220 2.0.0 Ready to start TLS\r\n")
            self._tls(conn)
        except (OSError, ssl.SSLError, ConnectionError, AssertionError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()


# ---------------------------------------------------------------------------------------------
# the oracle


@dataclass
class OracleResult:
    ok: bool
    rc: int
    output: str


def openssl_dane(
    addr: str,
    port: int,
    name: str,
    rrdata: Sequence[str],
    starttls: str | None = "smtp",
    timeout: float = 20,
    ee_namechecks: bool = False,
    extra: Sequence[str] = (),
) -> OracleResult:
    """``openssl s_client`` with ``-dane_tlsa_rrdata`` for each record; ok = rc 0 and
    "Verification: OK" (anything else: not ok). ``extra``: more s_client options (``-sigalgs
    ...``, ``-cipher ...``: offer one certificate key type).

    ``-dane_ee_no_namechecks`` is passed unless ``ee_namechecks``: OpenSSL by default checks
    the host name even for a DANE-EE(3) match, while RFC 7672 §3.1.1 (and Postfix, which sets
    that flag) ignore names for DANE-EE. tlsarotate follows the RFC."""
    exe = need_openssl()
    target = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
    cmd = [exe, "s_client", "-brief", "-connect", target, "-servername", name]
    if starttls:
        cmd += ["-starttls", starttls]
    cmd += ["-dane_tlsa_domain", name]
    for rr in rrdata:
        cmd += ["-dane_tlsa_rrdata", rr]
    if not ee_namechecks:
        cmd += ["-dane_ee_no_namechecks"]
    cmd += ["-verify_return_error", *extra]
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    out = proc.stdout + proc.stderr
    ok = proc.returncode == 0 and "Verification: OK" in out
    if proc.returncode == 0 and not ok:
        raise AssertionError(f"openssl rc 0 without 'Verification: OK': {out}")
    if proc.returncode != 0 and "Verification: OK" in out:
        raise AssertionError(f"openssl rc {proc.returncode} with 'Verification: OK': {out}")
    return OracleResult(ok, proc.returncode, out)


# ---------------------------------------------------------------------------------------------
# fixtures


class ServerPool:
    """Starts servers for a test and stops every one of them afterwards."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.started: list[SmtpdServer | ScriptedServer] = []

    def smtpd(self, chain: Chain, addr: str = "127.0.0.1", port: int | None = None) -> SmtpdServer:
        s = SmtpdServer(addr, chain, port).start()
        self.started.append(s)
        return s

    def smtpd_pair(self, chain: Chain) -> int:
        """aiosmtpd on 127.0.0.1 AND ::1 on the same free port (one host, two addresses)."""
        port = free_port(LOOPBACKS)
        for addr in LOOPBACKS:
            self.smtpd(chain, addr, port)
        return port

    def stop(self, server: SmtpdServer | ScriptedServer) -> None:
        server.stop()
        self.started.remove(server)

    def scripted(self, chain: Chain, mode: str, addr: str = "127.0.0.1") -> ScriptedServer:
        s = ScriptedServer(addr, chain, mode).start()
        self.started.append(s)
        return s

    def stop_all(self) -> None:
        """Stop every server, even when one of them fails to stop (the first error is raised
        after the others were stopped)."""
        errors: list[BaseException] = []
        while self.started:
            try:
                self.started.pop().stop()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def chains(tmp_path: Path, ca: pki.Issued) -> Callable[..., Chain]:
    """chains(name, hosts=..., send_ca=True, key=None, issuer=None, kind="ecdsa-p256") -> Chain;
    ``issuer`` defaults to the session ``ca``."""

    def make(
        name: str,
        hosts: Sequence[str] = ("mx.example.test",),
        send_ca: bool = True,
        key: pki.PrivateKey | None = None,
        issuer: pki.Issued | None = None,
        kind: str = "ecdsa-p256",
    ) -> Chain:
        return make_chain(tmp_path, name, issuer or ca, hosts, send_ca, key, kind)

    return make


# ---------------------------------------------------------------------------------------------
# PKIX-valid chains (for PKIX-TA(0)/PKIX-EE(1) off SMTP)


def make_pkix_chain(directory: Path, name: str, hosts: Sequence[str]) -> tuple[Chain, Path]:
    """A root + leaf that pass strict RFC 5280 / CA/B path validation (cryptography's
    x509.verification wants the leaf's authorityKeyIdentifier, which tlsarotate.pki leaves
    out). Returns the chain (leaf + root, as a server sends it) and the root's PEM file, to
    use as a trust store (``SSL_CERT_FILE`` for tlsarotate, ``-CAfile`` for openssl)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    root_key = pki.new_key()
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} PKIX root")])
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    root = pki.Issued(root_key, root_cert)
    leaf_key = pki.new_key()
    ski = root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = pki.Issued(leaf_key, leaf_cert)
    full = directory / f"{name}.fullchain.pem"
    keyf = directory / f"{name}.key"
    full.write_bytes(pki.fullchain_pem(leaf, root))
    keyf.write_bytes(leaf.key_pem)
    keyf.chmod(0o600)
    anchor = directory / f"{name}.root.pem"
    anchor.write_bytes(root.cert_pem)
    return Chain(leaf, (root,), full, keyf), anchor


class SmtpsServer:
    """aiosmtpd with implicit TLS (SMTPS, as on 465) on ``addr``, serving ``chain``."""

    def __init__(self, addr: str, chain: Chain, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.addr = addr
        self.port = port or free_port((addr,))
        self.controller = Controller(
            _Handler(),
            hostname=addr,
            port=self.port,
            ssl_context=chain.server_context(),
            server_hostname="mx.example.test",
            ready_timeout=10,
        )

    def start(self) -> SmtpsServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
