"""Where the command line's log lines go: stderr (the default), the local syslog socket, or
journald's native socket -- standard library only, for timer and cron runs.

- ``stderr``: ``tlsarotate: MESSAGE`` lines, as always.
- ``syslog``: one datagram per line to ``/dev/log``, as glibc's ``syslog(3)`` writes it (RFC 3164
  without the host name, which the local daemon adds): ``<PRI>Mmm dd hh:mm:ss
  tlsarotate[PID]: MESSAGE``, facility ``daemon``, the priority from the level.
- ``journald``: one datagram per line to ``/run/systemd/journal/socket`` in journald's native
  protocol (``MESSAGE=``, ``PRIORITY=``, ``SYSLOG_FACILITY=``, ``SYSLOG_IDENTIFIER=``,
  ``SYSLOG_PID=``), no systemd Python module needed.

Chosen by ``--log-to`` or else ``$TLSAROTATE_LOG``; ``$TLSAROTATE_LOG_SOCKET`` names another
socket (a test binds one in a temporary directory).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import struct
import sys
from collections.abc import Mapping

from tlsarotate.errors import TlsarotateError

DESTINATIONS = ("stderr", "syslog", "journald")
SOCKETS = {"syslog": "/dev/log", "journald": "/run/systemd/journal/socket"}
IDENT = "tlsarotate"
FACILITY = logging.handlers.SysLogHandler.LOG_DAEMON

#: logging level -> syslog priority (RFC 5424 severity)
PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def priority(levelno: int) -> int:
    """The syslog severity of a logging level (between two levels: the less severe one)."""
    return next((p for lv, p in sorted(PRIORITY.items(), reverse=True) if levelno >= lv), 7)


def destination(option: str | None, environ: Mapping[str, str]) -> str:
    """``--log-to``, else ``$TLSAROTATE_LOG``, else ``stderr``; an unknown name is an error."""
    dest = option or environ.get("TLSAROTATE_LOG") or "stderr"
    if dest not in DESTINATIONS:
        raise TlsarotateError(
            f"TLSAROTATE_LOG={dest!r}: not a log destination (one of {', '.join(DESTINATIONS)})"
        )
    return dest


class _Syslog(logging.handlers.SysLogHandler):
    """RFC 3164 lines as glibc's syslog(3) sends them to the local socket (no NUL byte)."""

    append_nul = False


class JournalHandler(logging.Handler):
    """journald's native protocol over a Unix datagram socket (one entry per record)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.connect(path)

    @staticmethod
    def entry(fields: Mapping[str, str]) -> bytes:
        """The datagram: ``KEY=value`` lines; a value with a newline as ``KEY``, a newline,
        its length (64-bit little-endian) and the bytes."""
        out = bytearray()
        for key, value in fields.items():
            data = value.encode()
            if b"\n" in data:
                out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
            else:
                out += key.encode() + b"=" + data + b"\n"
        return bytes(out)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sock.send(
                self.entry(
                    {
                        "MESSAGE": self.format(record),
                        "PRIORITY": str(priority(record.levelno)),
                        "SYSLOG_FACILITY": str(FACILITY),
                        "SYSLOG_IDENTIFIER": IDENT,
                        "SYSLOG_PID": str(os.getpid()),
                        "TLSAROTATE_LOGGER": record.name,
                    }
                )
            )
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def handler(dest: str, environ: Mapping[str, str]) -> logging.Handler:
    """The handler for ``dest`` (see the module docstring); a socket that cannot be reached
    is one line of error."""
    if dest == "stderr":
        h: logging.Handler = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("tlsarotate: %(message)s"))
        return h
    path = environ.get("TLSAROTATE_LOG_SOCKET") or SOCKETS[dest]
    try:
        if dest == "journald":
            h = JournalHandler(path)
            h.setFormatter(logging.Formatter("%(message)s"))
        else:
            # (SysLogHandler, like openlog(3), ignores a socket nobody listens on: ask first)
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
                probe.connect(path)
            h = _Syslog(address=path, facility=FACILITY, socktype=socket.SOCK_DGRAM)
            tag = f"{IDENT}[{os.getpid()}]"
            h.setFormatter(
                logging.Formatter(f"%(asctime)s {tag}: %(message)s", datefmt="%b %e %H:%M:%S")
            )
    except OSError as e:
        raise TlsarotateError(f"cannot log to {dest} at {path}: {e.strerror or e}") from None
    return h


def setup(verbose: int, quiet: bool, dest: str, environ: Mapping[str, str]) -> None:
    """Send the ``tlsarotate`` logger's lines to ``dest``: warnings and errors by default,
    ``-v`` info, ``-vv`` debug, ``-q`` errors only."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    if verbose == 0 and not quiet:
        level = logging.WARNING
    root = logging.getLogger("tlsarotate")
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler(dest, environ)]
    root.setLevel(level)
    root.propagate = True  # (no root handlers in the CLI; pytest's caplog listens there)
