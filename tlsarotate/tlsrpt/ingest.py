"""Reading TLSRPT reports (I/O): ``.json`` and ``.json.gz`` files in a directory, the report
attachments (``application/tlsrpt+gzip``, ``application/tlsrpt+json``) of the messages in a
Maildir or an mbox, or one report, gzip file or message on stdin.

Every input is bounded (:class:`Limits`): the bytes of a file, message or attachment as
stored, the bytes after gunzip (streamed, so a zip bomb stops at the limit, never in memory),
the number of reports, the nesting of the JSON. Each unusable input is one line in
:attr:`Ingested.problems` ("SOURCE: what is wrong") and the rest are still read; nothing here
raises for a bad input. The JSON documents are not checked here (:mod:`.validate` does that).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO

from tlsarotate.errors import TlsarotateError
from tlsarotate.fsutil import open_regular, read_fd, read_file

MiB = 1 << 20
MAX_MEMBERS = 4096  # gzip members in one file (each is copied: more would be quadratic)


@dataclass(frozen=True)
class Limits:
    stored: int = 10 * MiB  # one file, attachment or stdin as stored (compressed)
    decompressed: int = 20 * MiB  # one report after gunzip
    message: int = 25 * MiB  # one mail message (base64 makes attachments a third larger)
    reports: int = 10_000  # reports read in one run; the rest are skipped (one line)
    depth: int = 32  # JSON nesting (a report needs 5)


@dataclass
class Ingested:
    documents: list[tuple[str, Any]] = field(default_factory=list)  # (source, decoded JSON)
    problems: list[str] = field(default_factory=list)  # one line each


class _Unusable(Exception):
    """One input cannot be read; the message says why (one line)."""


REPORT_TYPES = ("application/tlsrpt+gzip", "application/tlsrpt+json")
# some senders label the attachment generically; its name then says what it is
GENERIC_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/json",
    "application/octet-stream",
)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def gunzip(raw: bytes, limit: int) -> bytes:
    """The gzip data ``raw`` decompressed (concatenated members too), never more than
    ``limit`` bytes held: beyond that it is refused."""
    out: list[bytes] = []
    total = 0
    data = raw
    for _member in range(MAX_MEMBERS + 1):
        if not data:
            break
        if _member == MAX_MEMBERS:
            raise _Unusable(f"more than {MAX_MEMBERS} gzip members")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while data:
                chunk = d.decompress(data, limit + 1 - total)
                total += len(chunk)
                if total > limit:
                    raise _Unusable(f"larger than {limit} bytes when decompressed")
                out.append(chunk)
                data = d.unconsumed_tail
            rest = d.flush(limit + 1 - total)
        except zlib.error as e:
            raise _Unusable(f"not valid gzip data ({e})") from None
        total += len(rest)
        if total > limit:
            raise _Unusable(f"larger than {limit} bytes when decompressed")
        out.append(rest)
        if not d.eof:
            raise _Unusable("truncated gzip data")
        data = d.unused_data.lstrip(b"\0")  # another member, or trailing padding
    return b"".join(out)


def depth(raw: bytes) -> int:
    """How deeply the JSON text ``raw`` nests (brackets inside strings do not count)."""
    level = top = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        level += 1 if m.group() in (b"[", b"{") else -1
        top = max(top, level)
    return top


def decode(raw: bytes, limits: Limits, gz: bool | None = None) -> Any:
    """The JSON document in ``raw`` (gzip when ``gz``, or when None and it starts like gzip)."""
    if len(raw) > limits.stored:
        raise _Unusable(f"larger than {limits.stored} bytes")
    if gz or (gz is None and raw[:2] == b"\x1f\x8b"):
        raw = gunzip(raw, limits.decompressed)
    if len(raw) > limits.decompressed:
        raise _Unusable(f"larger than {limits.decompressed} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Unusable(f"not UTF-8 text (byte {e.start})") from None
    if depth(raw) > limits.depth:
        raise _Unusable(f"JSON nested more than {limits.depth} levels deep")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise _Unusable(f"not JSON: {' '.join(str(e).split())}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Reader:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.out = Ingested()
        self.skipped = 0

    def add(self, source: str, raw: bytes, gz: bool | None = None) -> None:
        if len(self.out.documents) >= self.limits.reports:
            self.skipped += 1
            return
        try:
            self.out.documents.append((source, decode(raw, self.limits, gz)))
        except _Unusable as e:
            self.problem(source, str(e))

    def problem(self, source: str, what: str) -> None:
        self.out.problems.append(f"{source}: {' '.join(what.split())}")

    def message(self, source: str, raw: bytes) -> None:
        """The report attachments of one mail message."""
        if len(raw) > self.limits.message:
            self.problem(source, f"message larger than {self.limits.message} bytes")
            return
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            parts = list(_report_parts(msg))
        except Exception as e:  # the email package on hostile input: one line, never a crash
            self.problem(source, f"not a readable mail message ({type(e).__name__})")
            return
        if not parts:
            self.problem(source, "no TLSRPT report attached (application/tlsrpt+gzip or +json)")
        for name, ctype, part in parts:
            where = f"{source} (attachment {name})" if name else source
            try:
                payload = part.get_payload(decode=True)
            except Exception as e:
                self.problem(where, f"cannot decode the attachment ({type(e).__name__})")
                continue
            if not isinstance(payload, bytes):
                self.problem(where, "the attachment is empty")
                continue
            gz = ctype.endswith("gzip") or name.lower().endswith(".gz") or None
            self.add(where, payload, gz)

    def finish(self) -> Ingested:
        if self.skipped:
            self.out.problems.append(
                f"more than {self.limits.reports} reports: {self.skipped} skipped"
            )
        return self.out


def _report_parts(msg: Message) -> Iterator[tuple[str, str, Message]]:
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type().lower()
        name = str(part.get_filename() or "")
        generic = ctype in GENERIC_TYPES and re.search(r"\.json(\.gz)?$", name.lower())
        if ctype in REPORT_TYPES or generic:
            yield name, ctype, part


def _read(path: Path, limit: int) -> bytes:
    try:
        return read_file(path, "report file", error=TlsarotateError, limit=limit)
    except TlsarotateError as e:
        raise _Unusable(str(e).removeprefix(f"{path}: ")) from None


def read_dir(path: Path, limits: Limits = Limits(), newer_than: float | None = None) -> Ingested:
    """Every ``*.json`` and ``*.json.gz`` file in ``path`` (not below it), by name; with
    ``newer_than``, only files modified since then (a report is written after it ends)."""
    r = _Reader(limits)
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        r.problem(str(path), f"cannot list the reports directory: {e.strerror}")
        return r.finish()
    for name in names:
        low = name.lower()
        if not (low.endswith(".json") or low.endswith(".json.gz")) or name.startswith("."):
            continue
        p = path / name
        try:
            if newer_than is not None and p.stat().st_mtime < newer_than:
                continue
            raw = _read(p, limits.stored)
        except OSError as e:
            r.problem(str(p), f"cannot read: {e.strerror}")
            continue
        except _Unusable as e:
            r.problem(str(p), str(e))
            continue
        r.add(str(p), raw, low.endswith(".gz"))
    return r.finish()


def read_maildir(path: Path, limits: Limits = Limits()) -> Ingested:
    """The report attachments of every message in the Maildir ``path`` (``new/`` and ``cur/``)."""
    r = _Reader(limits)
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        r.problem(str(path), "not a Maildir (no cur/ or new/)")
        return r.finish()
    for sub in ("new", "cur"):
        d = path / sub
        try:
            names = sorted(n for n in os.listdir(d) if not n.startswith("."))
        except FileNotFoundError:
            continue
        except OSError as e:
            r.problem(str(d), f"cannot list: {e.strerror}")
            continue
        for name in names:
            p = d / name
            try:
                raw = _read(p, limits.message)
            except _Unusable as e:
                r.problem(str(p), str(e))
                continue
            r.message(str(p), raw)
    return r.finish()


def read_mbox(path: Path, limits: Limits = Limits()) -> Ingested:
    """The report attachments of every message in the mbox file ``path``, read a line at a
    time: a message larger than ``limits.message`` is skipped, never held whole."""
    r = _Reader(limits)
    try:
        # a FIFO or a device (/dev/zero) would be read without end: refused, one line
        fd, _ = open_regular(path, "mailbox (mbox) file", error=TlsarotateError)
    except TlsarotateError as e:
        r.problem(str(path), str(e).removeprefix(f"{path}: "))
        return r.finish()
    f = os.fdopen(fd, "rb")
    with f:
        n = 0
        lines: list[bytes] | None = None
        size = 0

        def flush() -> None:
            if lines is not None:
                r.message(f"{path} message {n}", b"".join(lines))
            elif n:
                r.problem(f"{path} message {n}", f"message larger than {limits.message} bytes")

        while True:
            line = f.readline(64 * 1024)
            if not line or line.startswith(b"From "):
                if n:
                    flush()
                if not line:
                    break
                n, lines, size = n + 1, [], 0
                continue
            if n == 0:
                continue  # before the first "From " line: not a message
            size += len(line)
            if lines is not None and size > limits.message:
                lines = None  # too large: skip to the next message
            if lines is not None:
                lines.append(line[1:] if line.startswith(b">From ") else line)
        if n == 0:
            r.problem(str(path), "no messages (not an mbox file?)")
    return r.finish()


def read_stream(stream: BinaryIO, source: str = "stdin", limits: Limits = Limits()) -> Ingested:
    """One report on ``stream``: JSON, gzip JSON, or a mail message carrying one."""
    r = _Reader(limits)
    try:
        raw = read_fd(stream.fileno(), limits.message)
    except (OSError, ValueError):
        raw = stream.read(limits.message + 1)
        raw = raw if len(raw) <= limits.message else None
    if raw is None:
        r.problem(source, f"larger than {limits.message} bytes")
    elif raw[:2] == b"\x1f\x8b" or raw.lstrip()[:1] in (b"{", b"["):
        r.add(source, raw)
    else:
        r.message(source, raw)
    return r.finish()
