"""Faults injected at the provider boundary.

:class:`DnsFaultProxy` is a DNS-over-TCP proxy on 127.0.0.1 between tlsarotate's rfc2136
provider (which sends every UPDATE and QUERY over TCP) and the BIND primary. It passes
everything through, except the next ``count`` messages of the chosen opcode (UPDATE by default),
which get the armed fault:

``servfail`` / ``refused``
    answered by the proxy with that rcode, TSIG-signed with the test key like BIND's own answer;
``badsig``
    forwarded with one byte of the TSIG MAC flipped: BIND itself answers NOTAUTH/BADSIG;
``nxrrset``
    "another client" adds a foreign TLSA record at the owner just before the UPDATE is
    forwarded: BIND answers NXRRSET (the prerequisite no longer holds) -- a concurrent change;
``lost-answer``
    forwarded (BIND applies it) but the answer never reaches tlsarotate;
``timeout``
    read and never forwarded nor answered (the connection stays open);
``blackhole``
    the connection is accepted and never read nor answered.

Other faults live in the lanes' shell scripts (:mod:`tests.support.faults.harness`): a flag file
``fault-reload-fail`` / ``fault-reload-hang`` in a lane's directory makes the service's reload
fail or hang, ``fault-zreload-fail`` / ``fault-zreload-hang`` the zone reload (``rndc``).
:func:`read_only_prefix` runs a command with a directory bind-mounted read-only in a private
mount namespace (``unshare -m``): a read-only zone file even for root, where ``chmod`` would not
stop root.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.opcode
import dns.rcode
import dns.tsig

FAULTS = ("servfail", "refused", "badsig", "nxrrset", "lost-answer", "timeout", "blackhole")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket) -> bytes:
    (n,) = struct.unpack("!H", _recv_exact(sock, 2))
    return _recv_exact(sock, n)


def _send_msg(sock: socket.socket, wire: bytes) -> None:
    sock.sendall(struct.pack("!H", len(wire)) + wire)


class DnsFaultProxy:
    """A TCP DNS proxy to ``upstream`` that injects one armed fault."""

    def __init__(
        self,
        upstream: tuple[str, int],
        keyring: dict[Any, dns.tsig.Key],
        concurrent_change: Callable[[], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.keyring = keyring
        self.concurrent_change = concurrent_change
        self.fault = ""
        self.count = 0
        self.opcode: int = dns.opcode.UPDATE
        self.injected: list[str] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="dns-fault-proxy")
        self._thread.start()

    def arm(self, fault: str, count: int = 1, opcode: int = dns.opcode.UPDATE) -> None:
        assert fault in FAULTS, fault
        with self.lock:
            self.fault, self.count, self.opcode = fault, count, opcode

    def disarm(self) -> None:
        with self.lock:
            self.fault, self.count = "", 0
        for s in self._held:
            with contextlib.suppress(OSError):
                s.close()
        self._held.clear()

    def close(self) -> None:
        self._stop.set()
        self.disarm()
        with contextlib.suppress(OSError):
            self.sock.close()

    def _take(self, wire: bytes) -> str:
        op = (struct.unpack("!H", wire[2:4])[0] >> 11) & 0xF
        with self.lock:
            if self.count > 0 and op == self.opcode:
                self.count -= 1
                self.injected.append(self.fault)
                return self.fault
        return ""

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            blackhole = self.fault == "blackhole" and self.count > 0
            if blackhole:
                self.count -= 1
                self.injected.append("blackhole")
        if blackhole:
            self._held.append(conn)  # accepted, never read, never answered
            return
        try:
            while True:
                wire = _recv_msg(conn)
                fault = self._take(wire)
                if fault == "timeout":
                    self._held.append(conn)
                    return
                if fault in ("servfail", "refused"):
                    _send_msg(conn, self._answer(wire, fault))
                    continue
                if fault == "badsig":
                    wire = _flip_mac(wire)
                if fault == "nxrrset" and self.concurrent_change is not None:
                    self.concurrent_change()
                answer = self._forward(wire)
                if fault == "lost-answer":
                    self._held.append(conn)
                    return
                _send_msg(conn, answer)
        except (EOFError, OSError):
            pass
        with contextlib.suppress(OSError):
            conn.close()

    def _forward(self, wire: bytes) -> bytes:
        with socket.create_connection(self.upstream, timeout=10) as up:
            _send_msg(up, wire)
            return _recv_msg(up)

    def _answer(self, wire: bytes, fault: str) -> bytes:
        q = dns.message.from_wire(wire, keyring=self.keyring)
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.SERVFAIL if fault == "servfail" else dns.rcode.REFUSED)
        return r.to_wire()


def _flip_mac(wire: bytes) -> bytes:
    """The message with one byte of its TSIG MAC changed (the TSIG RR is the last record)."""
    m = dns.message.from_wire(wire, keyring=False)
    assert m.tsig is not None, "badsig needs a TSIG-signed message"
    mac = m.tsig[0].mac
    i = wire.rfind(mac)
    assert i > 0
    return wire[:i] + bytes([wire[i] ^ 0xFF]) + wire[i + 1 :]


def read_only_prefix(directory: Path) -> list[str]:
    """argv prefix: run the rest with ``directory`` bind-mounted read-only over itself in a
    private mount namespace (root only; the rest of the system sees it writable)."""
    d = str(directory)
    return ["unshare", "-m", "sh", "-c", f'mount --bind -o ro "{d}" "{d}" && exec "$@"', "ro"]


ROUTE53_ERRORS = {
    429: ("Throttling", "Rate exceeded"),
    500: ("InternalFailure", "internal error"),
    503: ("ServiceUnavailable", "service unavailable"),
    400: (
        "PriorRequestNotComplete",
        "The request was rejected because Route 53 was still processing a prior request.",
    ),
}


class HttpFaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (moto_server's Route 53): the next
    ``count`` requests whose method and path match answer ``status`` with Route 53's error body
    (429 Throttling, 500 InternalFailure, 503 ServiceUnavailable, 400 PriorRequestNotComplete);
    with ``commit`` the request is carried out upstream first and only its answer is replaced
    (the answer is lost)."""

    def __init__(self, upstream: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        u = urlsplit(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.status, self.count, self.commit = 0, 0, False
        self.method, self.path_part = "POST", "/rrset"
        self.injected: list[int] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._take(self.command, self.path)
                if fault and not proxy.commit:
                    return self._error(fault)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if fault:
                    return self._error(fault)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None

            def _error(self, status: int) -> None:
                code, msg = ROUTE53_ERRORS[status]
                body = (
                    '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/'
                    f'doc/2013-04-01/"><Error><Type>Sender</Type><Code>{code}</Code><Message>'
                    f"{msg}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PUT = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.lock = threading.Lock()

    def arm(self, status: int, count: int = 1, commit: bool = False) -> None:
        assert status in ROUTE53_ERRORS
        with self.lock:
            self.status, self.count, self.commit = status, count, commit

    def disarm(self) -> None:
        with self.lock:
            self.count = 0

    def _take(self, method: str, path: str) -> int:
        with self.lock:
            if self.count > 0 and method == self.method and self.path_part in path:
                self.count -= 1
                self.injected.append(self.status)
                return self.status
        return 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
