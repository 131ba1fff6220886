"""One TCP connection to one DNS server, reused for message after message (RFC 7766 §6.2.1):
:class:`TcpChannel`.

A read of N owners by query costs one TCP connection instead of N (each with its handshake,
its server-side accept and close). The exchanges are sequential: one message, its answer, the
next. Any failure closes the connection (its stream state is unknown; a late answer must never
be taken for the next one's); the next exchange opens a new one. A connection that had already
served an exchange and is found closed by the server (idle timeout: EOF, reset) is opened
again once, and the message sent there: only idempotent messages (queries) belong here.
"""

from __future__ import annotations

import socket

import dns.message
import dns.query

_CLOSED = (EOFError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class TcpChannel:
    """Sequential DNS exchanges with ``address``:``port`` over one reused TCP connection."""

    def __init__(self, address: str, port: int, timeout: float) -> None:
        self.address = address
        self.port = port
        self.timeout = timeout
        self.connections = 0  # opened so far (a test counts them)
        self._sock: socket.socket | None = None

    def exchange(self, message: dns.message.Message) -> dns.message.Message:
        """Send ``message`` and return its answer (dnspython's checks: the answer's id and
        question, its TSIG)."""
        reused = self._sock is not None
        try:
            return self._once(message)
        except _CLOSED:
            self.close()
            if not reused:
                raise
        except BaseException:
            self.close()
            raise
        try:  # the server had closed the idle connection: once more on a new one
            return self._once(message)
        except BaseException:
            self.close()
            raise

    def _once(self, message: dns.message.Message) -> dns.message.Message:
        if self._sock is None:
            sock = socket.create_connection((self.address, self.port), timeout=self.timeout)
            sock.setblocking(False)  # dnspython waits for it with its own deadline
            self._sock = sock
            self.connections += 1
        return dns.query.tcp(message, self.address, timeout=self.timeout, sock=self._sock)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["TcpChannel"]
