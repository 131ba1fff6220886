"""The TLS handshake: connect to an endpoint (STARTTLS as needed) and take the chain it serves.

:func:`fetch_chain` speaks just enough SMTP, IMAP or POP3 to reach STARTTLS (or goes straight
to TLS for implicit-TLS ports), runs a TLS handshake with SNI and returns the FULL chain as the
server sent it, leaf first. It verifies nothing: deciding whether the chain is acceptable is
DANE's job (:mod:`tlsarotate.dane`). It never raises for network or protocol problems; they
come back as one line in :attr:`ServedChain.error`.

The plain-text part reads replies through a byte buffer, so a reply split across TCP
segments at any point (even byte by byte) is parsed correctly. The whole exchange, handshake
included, is bounded by one deadline of ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import time

from cryptography import x509

from tlsarotate import certinfo, keytypes, material
from tlsarotate.served import (
    ServedChain,
    is_ip,
    resolve_starttls,
)

MAX_LINE = 8192  # longest reply line accepted (RFC 5321 allows 512; be generous)
MAX_LINES = 200  # most lines in one multi-line reply


class _ProbeFailure(Exception):
    """Internal: one line describing why the probe stopped; ``unreachable``: the address was
    not reached or did not answer in time (:attr:`ServedChain.unreachable`)."""

    def __init__(self, message: str, unreachable: bool = False, tls: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.tls = tls  # the TLS handshake itself failed (the dialogue before it worked)


class _Conn:
    """A socket with a deadline and a line buffer for the plain-text phase."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.timeout = timeout
        self.buf = b""
        self.stage = "connecting"

    def timed_out(self) -> _ProbeFailure:
        return _ProbeFailure(f"timeout after {self.timeout:g}s ({self.stage})", True)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self.sock.settimeout(self.remaining())
            try:
                n = self.sock.send(view)
            except TimeoutError:
                raise self.timed_out() from None
            except OSError as e:
                raise _os_failure(e, f" ({self.stage})") from None
            view = view[n:]

    def readline(self) -> str:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise _ProbeFailure(f"reply line longer than {MAX_LINE} bytes ({self.stage})")
            self.sock.settimeout(self.remaining())
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise self.timed_out() from None
            except OSError as e:
                raise _os_failure(e, f" ({self.stage})") from None
            if not chunk:
                partial = f"; last data {_show(self.buf)}" if self.buf else ""
                raise _ProbeFailure(f"connection closed by the server ({self.stage}){partial}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def command(self, line: str) -> None:
        self.send(line.encode("ascii") + b"\r\n")


def _show(data: bytes | str, limit: int = 80) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip().replace("\r", "").replace("\n", " | ")
    return repr(text if len(text) <= limit else text[:limit] + "…")


# the socket errors that mean the address could not be reached (not: it answered wrongly)
_UNREACHABLE_ERRNOS = (
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.EADDRNOTAVAIL,
)


def _os_failure(e: OSError, where: str = "") -> _ProbeFailure:
    unreachable = (
        isinstance(e, (ConnectionRefusedError, ConnectionResetError))
        or e.errno in _UNREACHABLE_ERRNOS
    )
    return _ProbeFailure(_oserror(e) + where, unreachable)


def _oserror(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError) or e.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(e, ConnectionResetError) or e.errno == errno.ECONNRESET:
        return "connection reset by the server"
    if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "no route to the address"
    if e.errno == errno.EADDRNOTAVAIL:
        return "address not available on this host"
    return (e.strerror or str(e) or type(e).__name__).lower()


# ---------------------------------------------------------------------------------------------
# STARTTLS dialogues


def _smtp_reply(c: _Conn) -> tuple[int, list[str]]:
    """One (possibly multi-line) SMTP reply: code and the text of every line."""
    lines: list[str] = []
    code = None
    while True:
        line = c.readline()
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise _ProbeFailure(f"not an SMTP reply ({c.stage}): {_show(line)}")
        if code is None:
            code = int(line[:3])
        elif int(line[:3]) != code:
            raise _ProbeFailure(f"inconsistent SMTP multi-line reply ({c.stage}): {_show(line)}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return code, lines
        if len(lines) >= MAX_LINES:
            raise _ProbeFailure(f"SMTP reply with more than {MAX_LINES} lines ({c.stage})")


def _ehlo_name(sock: socket.socket) -> str:
    """An address literal for our end of the connection (RFC 5321 §4.1.3)."""
    local = sock.getsockname()[0]
    return f"[IPv6:{local}]" if ":" in local else f"[{local}]"


def _starttls_smtp(c: _Conn) -> None:
    c.stage = "waiting for the SMTP greeting"
    code, lines = _smtp_reply(c)
    if code != 220:
        raise _ProbeFailure(f"SMTP server refused the connection: {code} {_show(lines[0], 60)}")
    c.stage = "after EHLO"
    c.command(f"EHLO {_ehlo_name(c.sock)}")
    code, lines = _smtp_reply(c)
    if code != 250:
        raise _ProbeFailure(f"EHLO rejected: {code} {_show(lines[0], 60)}")
    keywords = {ln.split()[0].upper() for ln in lines[1:] if ln.split()}
    if "STARTTLS" not in keywords:
        raise _ProbeFailure("STARTTLS not offered (after EHLO)")
    c.stage = "after STARTTLS"
    c.command("STARTTLS")
    code, lines = _smtp_reply(c)
    if code != 220:
        raise _ProbeFailure(f"STARTTLS refused: {code} {_show(lines[0], 60)}")


def _starttls_imap(c: _Conn) -> None:
    c.stage = "waiting for the IMAP greeting"
    greeting = c.readline()
    if not greeting.upper().startswith("* OK"):
        raise _ProbeFailure(f"not an IMAP greeting: {_show(greeting)}")
    c.stage = "after CAPABILITY"
    c.command("a1 CAPABILITY")
    caps: set[str] = set()
    for _ in range(MAX_LINES):
        line = c.readline()
        up = line.upper()
        if up.startswith("* CAPABILITY"):
            caps.update(up.split()[2:])
        elif up.startswith("A1 "):
            if not up.startswith("A1 OK"):
                raise _ProbeFailure(f"CAPABILITY rejected: {_show(line)}")
            break
    else:
        raise _ProbeFailure(f"IMAP CAPABILITY reply with more than {MAX_LINES} lines")
    if "STARTTLS" not in caps:
        raise _ProbeFailure("STARTTLS not offered (after CAPABILITY)")
    c.stage = "after STARTTLS"
    c.command("a2 STARTTLS")
    for _ in range(MAX_LINES):
        line = c.readline()
        if line.upper().startswith("A2 "):
            if not line.upper().startswith("A2 OK"):
                raise _ProbeFailure(f"STARTTLS refused: {_show(line)}")
            return
    raise _ProbeFailure("no tagged reply to STARTTLS")


def _starttls_pop3(c: _Conn) -> None:
    c.stage = "waiting for the POP3 greeting"
    greeting = c.readline()
    if not greeting.startswith("+OK"):
        raise _ProbeFailure(f"not a POP3 greeting: {_show(greeting)}")
    c.stage = "after CAPA"
    c.command("CAPA")
    first = c.readline()
    caps: set[str] = set()
    if first.startswith("+OK"):
        for _ in range(MAX_LINES):
            line = c.readline()
            if line == ".":
                break
            if line.split():
                caps.add(line.split()[0].upper())
        else:
            raise _ProbeFailure(f"POP3 CAPA reply with more than {MAX_LINES} lines")
    if "STLS" not in caps:
        raise _ProbeFailure("STLS not offered (after CAPA)")
    c.stage = "after STLS"
    c.command("STLS")
    line = c.readline()
    if not line.startswith("+OK"):
        raise _ProbeFailure(f"STLS refused: {_show(line)}")


_DIALOGUES = {"smtp": _starttls_smtp, "imap": _starttls_imap, "pop3": _starttls_pop3}


# ---------------------------------------------------------------------------------------------
# TLS


def _restrict(ctx: object, key_type: str) -> None:
    """Offer only what a ``key_type`` certificate can serve: its TLS 1.2 cipher suites and its
    signature algorithms (TLS 1.3 picks the certificate by these alone)."""
    from cryptography.hazmat.bindings.openssl.binding import Binding
    from OpenSSL import SSL

    assert isinstance(ctx, SSL.Context)
    ctx.set_cipher_list(keytypes.CIPHERS[key_type].encode())
    lib = Binding.lib
    sigalgs = keytypes.SIGALGS[key_type].encode()
    if (
        getattr(lib, "Cryptography_HAS_SIGALGS", 0)
        and hasattr(lib, "SSL_CTX_set1_sigalgs_list")
        and lib.SSL_CTX_set1_sigalgs_list(ctx._context, sigalgs) == 1
    ):
        return
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)  # no sigalgs control: the cipher suites decide


def _handshake(
    c: _Conn, server_name: str | None, key_type: str | None = None
) -> tuple[tuple[bytes, ...], str, str | None]:
    from cryptography.hazmat.primitives.serialization import Encoding
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, None)  # no verification here: DANE decides
    if key_type is not None:
        _restrict(ctx, key_type)
    only = f" (offering only {keytypes.label(key_type)} certificates)" if key_type else ""
    conn = SSL.Connection(ctx, c.sock)
    if server_name and not is_ip(server_name):
        conn.set_tlsext_host_name(server_name.encode("idna"))
    conn.set_connect_state()
    c.sock.setblocking(False)
    c.stage = "during the TLS handshake"
    while True:
        try:
            conn.do_handshake()
            break
        except SSL.WantReadError:
            _wait(c, read=True)
        except SSL.WantWriteError:
            _wait(c, read=False)
        except SSL.SysCallError as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else -1
            if code <= 0:
                raise _ProbeFailure(
                    f"connection closed by the server during the TLS handshake{only}", tls=True
                ) from None
            os_err = OSError(code, str(e.args[1]) if len(e.args) > 1 else "")
            raise _os_failure(os_err, " during the TLS handshake") from None
        except SSL.Error as e:
            raise _ProbeFailure(f"TLS handshake failed: {_ssl_reason(e)}{only}", tls=True) from None
    chain = conn.get_peer_cert_chain(as_cryptography=True) or []
    if not chain:
        cert = conn.get_peer_certificate(as_cryptography=True)
        chain = [cert] if cert is not None else []
    der = tuple(cert.public_bytes(Encoding.DER) for cert in chain)
    version = conn.get_protocol_version_name()
    cipher = conn.get_cipher_name()
    _close_tls(conn)
    if not der:
        raise _ProbeFailure("the server sent no certificate")
    return der, version, cipher


def _wait(c: _Conn, read: bool) -> None:
    left = c.remaining()
    r, w, _ = select.select([c.sock] if read else [], [] if read else [c.sock], [], left)
    if not r and not w:
        raise c.timed_out()


def _close_tls(conn: object) -> None:
    from OpenSSL import SSL

    assert isinstance(conn, SSL.Connection)
    with contextlib.suppress(SSL.Error, OSError):
        conn.shutdown()


def _ssl_reason(e: Exception) -> str:
    """The most useful part of an OpenSSL error stack, on one line."""
    parts = []
    for item in e.args[0] if e.args and isinstance(e.args[0], list) else []:
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    text = "; ".join(p for p in parts if p) or str(e) or type(e).__name__
    return text.replace("\n", " ")


def fetch_chain(
    address: str,
    port: int,
    starttls: str,
    timeout: float,
    server_name: str | None = None,
    key_type: str | None = None,
) -> ServedChain:
    """Connect to ``address``:``port``, do STARTTLS if asked (``auto`` picks by port), run a
    TLS handshake sending ``server_name`` as SNI, and return the chain the server sent.
    ``key_type`` (``rsa``, ``ecdsa``: :mod:`tlsarotate.keytypes`) offers only what a
    certificate of that type can serve, so a server with several must present that one.

    Never raises for network or protocol problems; see :attr:`ServedChain.error`.
    """
    mode = resolve_starttls(starttls, port)
    sni = server_name.rstrip(".") if server_name else None
    start = time.monotonic()
    deadline = start + timeout
    sock: socket.socket | None = None
    try:
        try:
            sock = socket.create_connection((address, port), timeout=max(timeout, 0.001))
        except TimeoutError:
            raise _ProbeFailure(f"timeout after {timeout:g}s (connecting)", True) from None
        except OSError as e:
            raise _os_failure(e) from None
        c = _Conn(sock, deadline, timeout)
        if mode in _DIALOGUES:
            _DIALOGUES[mode](c)
            if c.buf:
                raise _ProbeFailure(
                    f"the server sent data after its STARTTLS reply: {_show(c.buf)} "
                    "(command injection or a broken server)"
                )
        der, version, cipher = _handshake(c, sni, key_type)
        for depth, cert in enumerate(der):
            try:
                parsed = x509.load_der_x509_certificate(cert)
            except ValueError as e:
                raise _ProbeFailure(
                    f"the server sent a certificate at depth {depth} that cannot be parsed: {e}"
                ) from None
            if depth == 0 and key_type is not None:
                got = keytypes.of_spki(material.spki_of_cert(parsed))
                if got != key_type:
                    raise _ProbeFailure(
                        f"asked for an {keytypes.label(key_type)} certificate, the server sent "
                        f"one with key {certinfo.key_type(parsed)}",
                        tls=True,
                    )
        return ServedChain(address, port, mode, sni, der, version, cipher, key_type=key_type)
    except _ProbeFailure as e:
        return ServedChain(
            address,
            port,
            mode,
            sni,
            error=str(e),
            unreachable=e.unreachable,
            key_type=key_type,
            tls_refused=e.tls,
        )
    except Exception as e:  # never raise for a remote problem; keep it one line
        msg = str(e).replace("\n", " ") or type(e).__name__
        return ServedChain(
            address, port, mode, sni, error=f"probe failed: {msg}", key_type=key_type
        )
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
