"""The zone-file backend: edits an RFC 1035 master file in place, the embedded default.

Only the managed TLSA RRsets change; every other line is kept byte for byte. Removed TLSA
records are cut out of the text where they stand, new ones are appended at the end with absolute
owner names (in the file's own line ending, LF or CRLF), the SOA serial is bumped where it stands.
The result is parsed again and compared with the original, RRset by RRset, before anything is
written: if anything but the intended TLSA RRsets and the serial differs, nothing is written. The
file is replaced atomically, keeping its mode, owner and group (BIND may read it as ``bind``),
then the optional ``reload`` command runs (``rndc reload example.com``; through the context's
runner, which bounds it to 300 s); if it fails, the previous file is put back and the write
reported as failed. The file must be UTF-8 (ASCII) text, a regular file of at most 256 MiB.

A ``path`` that is a symbolic link (the file BIND names lives elsewhere) is written through: the
link's final target is replaced atomically, beside itself, keeping its mode, owner and group; the
link stays a link. The lock (``.NAME.tlsarotate.lock``) and the reload journal live beside that
target, so every config naming the link or the target shares them.

**Kill recovery.** With ``reload`` set, a journal file ``.NAME.tlsarotate.reload`` is written
(and fsynced) before the file is replaced and removed once the reload succeeded (or the previous
file was put back). Every write takes the lock first, so a journal found under the lock was left
by a run that died between writing the file and reloading it: :meth:`recover` (run by the engine
before it plans, and by :meth:`apply`) runs the reload then, once, whatever the file holds now (a
hand edit since is loaded too, as ``rndc reload`` would); if that reload fails the journal stays
and every run says so, in one line, until it succeeds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from tlsarotate import records
from tlsarotate.change import TlsaRRset, ZoneChange
from tlsarotate.errors import ConfigError, ProviderError
from tlsarotate.fsutil import MAX_ZONE, atomic_write, file_kind, read_file, remove_stale_temps
from tlsarotate.providers.base import Capabilities, Option, Provider, WriteResult

MARKER = "; TLSA records below are managed by tlsarotate"
_TTL_RE = re.compile(r"^(\d+[smhdwSMHDW]?)+$")
_CLASSES = {"IN", "CH", "HS", "CS", "ANY", "NONE"}


@dataclass
class _Rec:
    """One logical record of the file: its physical lines and what it is."""

    first: int  # index of the first physical line
    last: int  # index of the last physical line (parentheses may span lines)
    owner: dns.name.Name
    owner_explicit: bool
    rdtype: str
    tokens: list[tuple[int, int, int, str]]  # (line, start, end, text) of every token


def _tokenize_line(line: str, idx: int) -> tuple[list[tuple[int, int, int, str]], int]:
    """Tokens of one physical line, and the net parenthesis depth change."""
    toks: list[tuple[int, int, int, str]] = []
    depth = 0
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == ";":
            break
        if c in " \t\r\n":
            i += 1
            continue
        if c == "(":
            depth += 1
            i += 1
            continue
        if c == ")":
            depth -= 1
            i += 1
            continue
        start = i
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
        else:
            while i < n and line[i] not in " \t\r\n;()":
                i += 2 if line[i] == "\\" else 1
        toks.append((idx, start, min(i, n), line[start:i]))
    return toks, depth


def _scan(lines: list[str], origin: dns.name.Name) -> Iterator[_Rec]:
    """Walk the file's logical records, tracking $ORIGIN and the inherited owner."""
    cur_origin = origin
    last_owner: dns.name.Name | None = None
    i = 0
    while i < len(lines):
        first = i
        toks, depth = _tokenize_line(lines[i], i)
        while depth > 0 and i + 1 < len(lines):
            i += 1
            more, d = _tokenize_line(lines[i], i)
            toks += more
            depth += d
        last = i
        i += 1
        if not toks:
            continue
        head = toks[0][3]
        if head.startswith("$"):
            if head.upper() == "$ORIGIN" and len(toks) > 1:
                cur_origin = dns.name.from_text(toks[1][3], origin=cur_origin)
            continue
        explicit = lines[first][:1] not in (" ", "\t")
        rest = toks
        if explicit:
            owner_text = head
            owner = cur_origin if owner_text == "@" else dns.name.from_text(owner_text, cur_origin)
            rest = toks[1:]
            last_owner = owner
        elif last_owner is None:
            continue
        rdtype = ""
        for t in rest:
            word = t[3].upper()
            if word in _CLASSES or _TTL_RE.match(word):
                continue
            rdtype = word
            break
        yield _Rec(first, last, last_owner, explicit, rdtype, toks)


def _lf(text: str) -> str:
    """The text as dnspython reads it: before 2.9.1 (the last for Python 3.10 is 2.8) its
    tokenizer fails on CRLF line ends ("unknown unit ''"). Line numbers stay the same."""
    return text.replace("\r\n", "\n")


def _next_serial(old: int, now: float) -> int:
    today = int(dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y%m%d")) * 100
    if 1990010100 <= old <= 2999123199 and today > old:
        return today  # date-based serials stay date-based
    return (old + 1) % 2**32 or 1


class ZoneFileProvider(Provider):
    type_name = "zonefile"
    options: ClassVar[Mapping[str, Option]] = {
        "path": Option(str, required=True, path=True, help="the zone's master file"),
        "reload": Option(list, help="command run after each write, e.g. [rndc, reload, ZONE]"),
    }
    capabilities = Capabilities(atomic=True, prerequisites=True)

    @property
    def path(self) -> Path:
        return Path(self.opts["path"])

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        p = Path(options["path"])
        if not p.exists():
            raise ConfigError(f"zone file {p} not found", key="path")
        if not p.is_file():
            raise ConfigError(f"{p} is not a regular file", key="path")
        try:
            p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"zone file {p} is not UTF-8 text ({_why(e)})", key="path") from None
        except OSError as e:
            raise ConfigError(f"zone file {p}: cannot read: {e.strerror}", key="path") from None
        if not os.access(p.parent, os.W_OK):
            raise ConfigError(f"directory {p.parent} is not writable", key="path")

    @classmethod
    def check_service(cls, options: Mapping[str, Any], zone: dns.name.Name, ttl: int) -> None:
        """The file must parse as the service's zone (``apply`` would fail on it later)."""
        p = Path(options["path"])
        try:
            with open(p, encoding="utf-8", newline="") as f:
                text = f.read()
            dns.zone.from_text(
                _lf(text), origin=zone, relativize=False, check_origin=True, filename=str(p)
            )
        except (OSError, UnicodeDecodeError):
            return  # check_files said so already
        except dns.exception.DNSException as e:
            raise ConfigError(
                f"zone file {p}: cannot parse as zone {zone}: {e}", key="path"
            ) from None

    @property
    def target(self) -> Path:
        """The file itself: ``path`` with every symbolic link resolved (written through)."""
        return Path(os.path.realpath(self.path))

    def _read_text(self) -> str:
        data = read_file(self.path, "zone file", error=ProviderError, limit=MAX_ZONE)
        try:
            # bytes.decode: the text exactly as stored (CRLF stays CRLF; read_text would not)
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProviderError(f"zone file {self.path} is not UTF-8 text ({_why(e)})") from None

    def _parse(self, text: str, zone: dns.name.Name) -> dns.zone.Zone:
        try:
            return dns.zone.from_text(
                _lf(text),
                origin=zone,
                relativize=False,
                check_origin=True,
                filename=str(self.path),
            )
        except dns.exception.DNSException as e:
            raise ProviderError(
                f"zone file {self.path}: cannot parse as zone {zone}: {e}"
            ) from None

    @staticmethod
    def _tlsa(z: dns.zone.Zone, owner: dns.name.Name) -> TlsaRRset | None:
        node = z.get_node(owner)
        if node is None:
            return None
        rds = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA)
        if rds is None or len(rds) == 0:
            return None
        return TlsaRRset.from_rdataset(rds)

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        z = self._parse(self._read_text(), zone)
        out = {}
        for o in owners:
            rr = self._tlsa(z, o)
            if rr is not None:
                out[o] = rr
        return out

    def _beside(self, suffix: str) -> Path:
        t = self.target
        return t.parent / f".{t.name}.tlsarotate.{suffix}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self._beside("lock")
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(lock, flags, 0o600)
        except OSError as e:
            why = "is a symbolic link (not followed)" if e.errno == errno.ELOOP else e.strerror
            raise ProviderError(
                f"zone file {self.path}: cannot open its lock {lock}: {why}"
            ) from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise ProviderError(
                    f"zone file {self.path}: its lock {lock} is {file_kind(mode)}, "
                    "expected a regular file"
                )
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def recover(self, zone: dns.name.Name) -> str | None:
        """Finish a write a killed run left unreloaded (see the module docstring)."""
        if not os.path.lexists(self._beside("reload")):
            return None  # the common case: no lock taken, nothing touched
        with self._locked():  # a live writer's journal is gone once we hold the lock
            return self._recover_locked()

    def _recover_locked(self) -> str | None:
        journal = self._beside("reload")
        try:
            st = os.lstat(journal)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ProviderError(f"zone file {self.path}: journal {journal}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ProviderError(
                f"zone file {self.path}: journal {journal} is {file_kind(st.st_mode)}, "
                "expected a regular file; remove it"
            )
        reload = self.opts.get("reload")
        if not reload:
            return None  # left for a config that reloads this file (it has nothing to run)
        argv = list(map(str, reload))
        ok, detail = self._run(argv)
        if not ok:
            raise ProviderError(
                f"zone file {self.path}: a run that was interrupted wrote it but never reloaded "
                f"it, and the reload command {' '.join(argv)!r} fails ({detail}); the file stays "
                f"as written (journal {journal}); fix it and re-run"
            )
        self._clear_journal()
        return (
            f"zone file {self.path}: ran {' '.join(argv)!r}, which a run interrupted after "
            "writing the file never ran"
        )

    def _write_journal(self) -> None:
        text = f"written by pid {os.getpid()} at {time.time():.0f}; reload not done yet\n"
        try:
            atomic_write(self._beside("reload"), text.encode(), mode=0o600)
        except OSError as e:
            raise ProviderError(
                f"zone file {self.path}: cannot write its reload journal: {e.strerror}; "
                "nothing was written"
            ) from None

    def _clear_journal(self) -> None:
        journal = self._beside("reload")
        try:
            os.unlink(journal)
            fd = os.open(journal.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ProviderError(
                f"zone file {self.path}: cannot remove its reload journal {journal}: {e.strerror}"
            ) from None

    def render(self, text: str, change: ZoneChange, now: float) -> str:
        """The new file text for ``change`` (pure; raises if the edit cannot be made safely)."""
        zone = change.zone
        before = self._parse(text, zone)
        current = {}
        for ch in change.changes:
            rr = self._tlsa(before, ch.owner)
            if rr is not None:
                current[ch.owner] = rr
        self.check_prerequisites(
            change,
            current,
            prefix=f"zone file {self.path}",
            hint=" (edited by hand or by another process?)",
        )
        change = self.effective(change)
        touched = {ch.owner for ch in change.changes}
        lines = text.splitlines(keepends=True)
        eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
        drop: set[int] = set()
        give_owner: dict[int, dns.name.Name] = {}
        soa: _Rec | None = None
        recs = list(_scan(lines, zone))
        for k, rec in enumerate(recs):
            if rec.rdtype == "SOA" and soa is None:
                soa = rec
            if rec.rdtype == "TLSA" and rec.owner in touched:
                drop.update(range(rec.first, rec.last + 1))
                if rec.owner_explicit:
                    # the next record may inherit this owner: give it the owner explicitly
                    for nxt in recs[k + 1 :]:
                        if nxt.owner_explicit:
                            break
                        if nxt.rdtype == "TLSA" and nxt.owner in touched:
                            continue
                        give_owner[nxt.first] = rec.owner
                        break
        if soa is None:
            raise ProviderError(f"zone file {self.path}: no SOA record found")
        serial_tok = self._serial_token(soa)
        old_serial = int(serial_tok[3])
        new_serial = _next_serial(old_serial, now)
        out: list[str] = []
        for i, line in enumerate(lines):
            if i in drop:
                continue
            if i == serial_tok[0]:
                line = line[: serial_tok[1]] + str(new_serial) + line[serial_tok[2] :]
            if i in give_owner:
                line = give_owner[i].to_text() + line
            out.append(line)
        new_text = "".join(out)
        if new_text and not new_text.endswith("\n"):
            new_text += eol
        added = []
        for ch in change.changes:
            if ch.new is not None:
                added += [
                    records.zone_line(ch.owner, ch.new.ttl, rd) + eol for rd in ch.new.sorted()
                ]
        if added and MARKER not in new_text:
            new_text += MARKER + eol
        new_text += "".join(added)
        self._verify(before, self._parse(new_text, zone), change, new_serial)
        return new_text

    def _serial_token(self, soa: _Rec) -> tuple[int, int, int, str]:
        toks = soa.tokens if not soa.owner_explicit else soa.tokens[1:]
        k = 0
        while k < len(toks) and toks[k][3].upper() != "SOA":
            k += 1
        rdata = toks[k + 1 :]
        if len(rdata) < 3 or not rdata[2][3].isdigit():
            raise ProviderError(f"zone file {self.path}: cannot find the SOA serial")
        return rdata[2]

    def _verify(
        self, before: dns.zone.Zone, after: dns.zone.Zone, change: ZoneChange, serial: int
    ) -> None:
        touched = {ch.owner: ch.new for ch in change.changes}

        def rdatasets(z: dns.zone.Zone) -> dict[tuple[dns.name.Name, int, int], Any]:
            # keyed by covered type too: the RRSIGs over A and over NS are different sets
            out = {}
            for name, node in z.nodes.items():
                for rds in node.rdatasets:
                    if rds.rdtype == dns.rdatatype.SOA:
                        continue
                    if rds.rdtype == dns.rdatatype.TLSA and name in touched:
                        continue
                    out[(name, rds.rdtype, rds.covers)] = (rds.ttl, set(rds))
            return out

        if rdatasets(before) != rdatasets(after):
            raise ProviderError(
                f"zone file {self.path}: editing the TLSA records would change other records; "
                "nothing was written (please report this file layout)"
            )
        for owner, want in touched.items():
            if self._tlsa(after, owner) != want:
                raise ProviderError(
                    f"zone file {self.path}: the edited file does not hold the intended TLSA "
                    f"RRset at {owner}; nothing was written"
                )
        assert after.origin is not None
        soa = after.get_rdataset(after.origin, dns.rdatatype.SOA)
        if soa is None or soa[0].serial != serial:  # type: ignore[attr-defined]
            raise ProviderError(f"zone file {self.path}: SOA serial bump failed; nothing written")

    def apply(self, change: ZoneChange) -> WriteResult:
        with self._locked():
            self._recover_locked()
            text = self._read_text()
            new_text = self.render(text, change, time.time())  # checks every prerequisite
            if not self.effective(change):
                return WriteResult(token=None)
            target = self.target  # a link is written through: its target is replaced
            try:
                st = target.stat()
            except OSError as e:
                raise ProviderError(f"zone file {self.path}: {e.strerror}") from None
            mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
            remove_stale_temps(target, older_than=0)  # under the lock: a killed run's leftovers
            reload = self.opts.get("reload")
            if reload:
                self._write_journal()
            try:
                atomic_write(target, new_text.encode("utf-8"), mode=mode, owner=owner)
            except PermissionError as e:
                self._clear_journal()
                raise ProviderError(
                    f"zone file {self.path}: cannot write it keeping its owner "
                    f"{owner[0]}:{owner[1]} and mode {mode:o}: {e.strerror}; nothing was written"
                ) from None
            except OSError as e:
                self._clear_journal()
                raise ProviderError(
                    f"zone file {self.path}: cannot write: {e.strerror}; nothing was written"
                ) from None
            if reload:
                self._reload(list(map(str, reload)), text, mode, owner)
                self._clear_journal()
        return WriteResult(token=None)

    def _run(self, argv: list[str]) -> tuple[bool, str]:
        """Run a reload command: (succeeded, the first line it printed or why it did not run)."""
        try:
            proc = self.context.runner(argv)
            ok, detail = proc.returncode == 0, (proc.stderr or proc.stdout or "").strip()
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            ok, detail = False, str(e)
        return ok, (detail.splitlines()[0] if detail else "no output")

    def _reload(
        self, argv: list[str], previous_text: str, mode: int, owner: tuple[int, int]
    ) -> None:
        ok, first = self._run(argv)
        if ok:
            return
        what = f"zone file {self.path}: reload command {' '.join(argv)!r} failed ({first})"
        try:
            atomic_write(self.target, previous_text.encode("utf-8"), mode=mode, owner=owner)
        except OSError as e:
            raise ProviderError(
                f"{what}; putting the previous zone file back failed too ({e.strerror}): "
                "the NEW file stays in place, not reloaded"
            ) from None
        self._clear_journal()  # the file is what the servers loaded last
        raise ProviderError(f"{what}; the previous zone file was restored")


def _why(e: UnicodeDecodeError) -> str:
    return f"byte 0x{e.object[e.start]:02x} at offset {e.start}"
