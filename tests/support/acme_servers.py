"""Real-server fixtures for the operations side: pebble (ACME CA), certbot, a private Postfix.

Every server listens on 127.0.0.1 on a free port picked at runtime and is stopped by pid and
waited for. A missing binary is a test failure (pytest.fail), never a skip.

* :func:`start_pebble` - pebble (apt ``pebble``) with a self-made HTTPS certificate for its
  listener, ``PEBBLE_VA_ALWAYS_VALID=1`` (no challenge is really checked), no sleeps, no nonce
  rejections. Pebble keeps everything in memory: each start gets a fresh :class:`Certbot`.
* :class:`Certbot` - certbot (pip) as a subprocess with private config/work/logs directories.
* :func:`start_postfix` - a private Postfix instance (``postfix -c DIR``) whose smtpd offers
  STARTTLS with ``smtpd_tls_chain_files`` (key then full chain, one file).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port, free_ports, stop_process
from tlsarotate import pki

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"


# -- generic helpers -------------------------------------------------------------------------


def wait_port(
    port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 20
) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}") from None
            time.sleep(0.03)


def require(binary: str, hint: str) -> str:
    """The path of ``binary``; a missing one fails the test (never a skip)."""
    found = shutil.which(binary)
    if found is None:
        cand = Path(sys.executable).with_name(binary)
        if cand.exists():
            return str(cand)
        pytest.fail(f"{binary} not found: {hint}")
    return found


def wait_pid_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a zombie child of ours still answers kill(0); reap it if it is ours
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):  # it may exit right now
        os.kill(pid, signal.SIGKILL)


def ip_leaf(ca: pki.Issued, ip: str = "127.0.0.1", days: int = 30) -> pki.Issued:
    """A server certificate for an IP address (pki.make_leaf only does DNS names)."""
    key = pki.new_key("ecdsa-p256")
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca.key, hashes.SHA256())
    )
    return pki.Issued(key, cert)


# -- pebble ----------------------------------------------------------------------------------


@dataclass
class Pebble:
    dir: Path
    port: int
    mgmt_port: int
    ca_bundle: Path  # the CA that signed pebble's HTTPS listener certificate
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def stop(self) -> None:
        stop_process(self.proc)

    def root_pem(self) -> bytes:
        """Pebble's issuing root (regenerated at every start)."""
        import requests

        r = requests.get(
            f"https://127.0.0.1:{self.mgmt_port}/roots/0", verify=str(self.ca_bundle), timeout=10
        )
        r.raise_for_status()
        return r.content


def start_pebble(base: Path) -> Pebble:
    exe = require("pebble", "apt-get install pebble")
    base.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca("pebble listener test CA")
    leaf = ip_leaf(ca)
    (base / "listener-ca.pem").write_bytes(ca.cert_pem)
    (base / "listener.pem").write_bytes(leaf.cert_pem)
    (base / "listener.key").write_bytes(leaf.key_pem)
    (base / "listener.key").chmod(0o600)
    port, mgmt, http, tls = free_ports(4)
    conf = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{mgmt}",
            "certificate": str(base / "listener.pem"),
            "privateKey": str(base / "listener.key"),
            "httpPort": http,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (base / "pebble.json").write_text(json.dumps(conf, indent=2))
    env = {
        **os.environ,
        "PEBBLE_VA_ALWAYS_VALID": "1",
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
    }
    log = base / "pebble.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "-config", str(base / "pebble.json")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=base,
        )
    try:
        wait_port(port, proc, "pebble")
        wait_port(mgmt, proc, "pebble management")
    except RuntimeError as e:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{e}; log:\n{log.read_text()}") from None
    return Pebble(base, port, mgmt, base / "listener-ca.pem", proc, log)


# -- certbot ---------------------------------------------------------------------------------


@dataclass
class Certbot:
    """certbot as a subprocess against one pebble, with its own config/work/logs dirs."""

    pebble: Pebble
    base: Path
    env: dict[str, str] = field(default_factory=dict)  # extra environment (hooks see it too)

    def __post_init__(self) -> None:
        self.exe = require("certbot", "pip install certbot")
        for d in ("config", "work", "logs"):
            (self.base / d).mkdir(parents=True, exist_ok=True)

    @property
    def config_dir(self) -> Path:
        return self.base / "config"

    def lineage(self, name: str) -> Path:
        return self.config_dir / "live" / name

    def renewal_conf(self, name: str) -> str:
        return (self.config_dir / "renewal" / f"{name}.conf").read_text()

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [
            self.exe,
            *args,
            "--config-dir",
            str(self.base / "config"),
            "--work-dir",
            str(self.base / "work"),
            "--logs-dir",
            str(self.base / "logs"),
            "--non-interactive",
        ]
        env = {**os.environ, "REQUESTS_CA_BUNDLE": str(self.pebble.ca_bundle), **self.env}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
        if check and r.returncode != 0:
            raise AssertionError(
                f"certbot {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        return r

    def _acme(self) -> list[str]:
        return [
            "--server",
            self.pebble.url,
            "--agree-tos",
            "--register-unsafely-without-email",
            "--manual",
            "--preferred-challenges",
            "http",
            "--manual-auth-hook",
            "/bin/true",
            "--no-random-sleep-on-renew",
        ]

    def issue(
        self,
        domains: Sequence[str],
        *,
        name: str | None = None,
        deploy_hook: str | os.PathLike[str] | None = None,
        key_type: str = "ecdsa",
        reuse_key: bool | None = None,
    ) -> Path:
        """``certbot certonly`` for ``domains``; returns the lineage (live/NAME)."""
        args = ["certonly", *self._acme(), "--key-type", key_type]
        for d in domains:
            args += ["-d", d]
        name = name or domains[0]
        args += ["--cert-name", name]
        if deploy_hook is not None:
            args += ["--deploy-hook", str(deploy_hook)]
        if reuse_key is True:
            args.append("--reuse-key")
        elif reuse_key is False:
            args.append("--no-reuse-key")
        self.run(*args)
        return self.lineage(name)

    def renew(
        self, *, name: str | None = None, reuse_key: bool | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``certbot renew --force-renewal`` (hooks from renewal/NAME.conf run again)."""
        args = ["renew", "--force-renewal", "--no-random-sleep-on-renew"]
        if name:
            args += ["--cert-name", name]
        if reuse_key is True:
            args.append("--reuse-key")
        elif reuse_key is False:
            args.append("--no-reuse-key")
        return self.run(*args, check=check)

    def issue_csr(self, csr: Path, domains: Sequence[str], out: Path) -> tuple[Path, Path, Path]:
        """``certbot certonly --csr``: no lineage, no renewal config; files go to ``out``.
        Returns (cert, fullchain, chain)."""
        out.mkdir(parents=True, exist_ok=True)
        cert, full, chain = out / "cert.pem", out / "fullchain.pem", out / "chain.pem"
        args = ["certonly", *self._acme(), "--csr", str(csr)]
        for d in domains:
            args += ["-d", d]
        args += [
            "--cert-path",
            str(cert),
            "--fullchain-path",
            str(full),
            "--chain-path",
            str(chain),
        ]
        self.run(*args)
        return cert, full, chain


# -- Postfix ---------------------------------------------------------------------------------

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {hostname}
mydestination =
alias_maps =
alias_database =
maillog_file = {dir}/log/postfix.log
maillog_file_prefixes = {dir}/log
smtpd_tls_chain_files = {chain}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_banner = $myhostname ESMTP tlsarotate-test
default_transport = error:test instance, no delivery
local_transport = error:test instance, no delivery
relay_transport = error:test instance, no delivery
notify_classes =
biff = no
smtputf8_enable = no
"""


@dataclass
class Postfix:
    dir: Path
    port: int
    chain_file: Path  # smtpd_tls_chain_files: private key then full chain, one file
    hostname: str
    # more key+chain files smtpd serves beside it (an RSA and an ECDSA certificate side by side)
    more_chain_files: tuple[Path, ...] = ()

    @property
    def log(self) -> Path:
        return self.dir / "log" / "postfix.log"

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        exe = require("postfix", "apt-get install postfix (preseed main_mailer_type)")
        return subprocess.run(
            [exe, "-c", str(self.dir), *args], capture_output=True, text=True, timeout=60
        )

    def master_pid(self) -> int | None:
        try:
            return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def start(self) -> None:
        r = self._postfix("start")
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed: {r.stderr}{self._log_tail()}")
        wait_port(self.port, None, "postfix smtpd")

    def reload(self) -> None:
        r = self._postfix("reload")
        if r.returncode != 0:
            raise RuntimeError(f"postfix reload failed: {r.stderr}{self._log_tail()}")

    def stop(self) -> None:
        pid = self.master_pid()
        self._postfix("stop")
        if pid is not None:
            wait_pid_gone(pid)

    def remove(self) -> None:
        """Delete the instance directory (after stop)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return "\n" + "\n".join(self.log.read_text().splitlines()[-20:])
        except FileNotFoundError:
            return ""

    def install_chain(self, key_pem: bytes, fullchain_pem: bytes) -> None:
        """Write key + full chain atomically (one rename swaps both), as tlsarotate does."""
        from tlsarotate.fsutil import atomic_write

        atomic_write(self.chain_file, key_pem + fullchain_pem, mode=0o600)

    def served(self, timeout: float = 10) -> bytes | None:
        """DER of the leaf smtpd serves after STARTTLS; None when TLS is unavailable: STARTTLS
        not offered, or refused with 454 (Postfix 3.7 with a key that does not match its
        certificate logs "disabling TLS support" and answers STARTTLS with 454)."""
        return served_leaf("127.0.0.1", self.port, timeout)


def served_leaf(host: str, port: int, timeout: float = 10) -> bytes | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(host, port, timeout=timeout) as s:
        s.ehlo("client.example.test")
        if not s.has_extn("starttls"):
            return None
        try:
            s.starttls(context=ctx)
        except smtplib.SMTPResponseException as e:
            if e.smtp_code == 454:  # "TLS not available due to local problem" (bad key/cert)
                return None
            raise
        sock = s.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        s.ehlo("client.example.test")
        return der


def start_postfix(
    key_pem: bytes,
    fullchain_pem: bytes,
    hostname: str = "mx.example.test",
    more: Sequence[tuple[bytes, bytes]] = (),
) -> Postfix:
    """A private Postfix instance in its own directory under the system temp dir. ``more``:
    further (key, full chain) pairs it serves side by side (``smtpd_tls_chain_files`` lists
    every file: an RSA and an ECDSA certificate), in ``chain-2.pem``, ``chain-3.pem``, ...

    Not under pytest's tmp_path: that lives in a 0700 directory the ``postfix`` user cannot
    traverse ("open lock file .../data/master.lock: Permission denied")."""
    require("postfix", "apt-get install postfix (preseed main_mailer_type)")
    d = Path(tempfile.mkdtemp(prefix="tlsarotate-postfix-")).resolve()
    pf: Postfix | None = None
    try:
        d.chmod(0o755)
        for sub in ("queue", "data", "log"):
            (d / sub).mkdir()
        shutil.chown(d / "data", "postfix")
        port = free_port()
        chain = d / "chain.pem"
        extra = tuple(d / f"chain-{n}.pem" for n in range(2, len(more) + 2))
        pf = Postfix(d, port, chain, hostname, extra)
        pf.install_chain(key_pem, fullchain_pem)
        from tlsarotate.fsutil import atomic_write

        for path, (k, full) in zip(extra, more, strict=True):
            atomic_write(path, k + full, mode=0o600)
        files = ", ".join(str(p) for p in (chain, *extra))
        (d / "main.cf").write_text(MAIN_CF.format(dir=d, hostname=hostname, chain=files))
        (d / "master.cf").write_text(MASTER_CF.format(port=port))
        pf.start()
    except BaseException:
        try:
            if pf is not None:
                pf.stop()
        finally:
            shutil.rmtree(d, ignore_errors=True)
        raise
    return pf


@contextlib.contextmanager
def postfix_running(
    key_pem: bytes,
    fullchain_pem: bytes,
    hostname: str = "mx.example.test",
    more: Sequence[tuple[bytes, bytes]] = (),
) -> Iterator[Postfix]:
    """A started :func:`start_postfix` instance, stopped and its directory removed afterwards
    (removed even when stopping fails)."""
    pf = start_postfix(key_pem, fullchain_pem, hostname, more)
    try:
        yield pf
    finally:
        try:
            pf.stop()
        finally:
            pf.remove()


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    pb = start_pebble(tmp_path_factory.mktemp("pebble"))
    try:
        yield pb
    finally:
        pb.stop()
