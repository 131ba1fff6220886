"""The zone-file backend: edits an RFC 1035 master file in place, the embedded default.

Only the managed TLSA RRsets change; every other line is kept byte for byte
(:mod:`tlsarotate.providers.zonetext` makes and verifies the edit: if anything but the intended
TLSA RRsets and the SOA serial would differ, nothing is written). Every owner's ``old`` is
checked against the file under its lock (native prerequisites). The file is replaced
atomically, keeping its mode, owner and group (BIND may read it as ``bind``), then the optional
``reload`` command runs (``rndc reload example.com``; through the context's runner, which bounds
it to 300 s); if it fails, the previous file is put back and the write reported as failed. The
file must be UTF-8 (ASCII) text, a regular file of at most 256 MiB. The new serial comes from
the context's clock (date-based serials stay date-based); the write's token is that serial.

A ``path`` that is a symbolic link (the file BIND names lives elsewhere) is written through: the
link's final target is replaced atomically, beside itself, keeping its mode, owner and group; the
link stays a link. The lock (``.NAME.tlsarotate.lock``) and the reload journal live beside that
target, so every config naming the link or the target shares them.

**A signed zone served from another file** (NSD serves what ``dnssec-signzone`` wrote; it does
not sign): ``sign`` is a command run after the file is written and before ``reload``, e.g.
``[dnssec-signzone, -K, KEYDIR, -d, KEYDIR, -S, -N, keep, -o, ZONE, -f, FILE.signed, FILE]``
(``-N keep``: the serial this provider wrote) and ``reload: [nsd-control, -c, CONF, reload,
ZONE]``. If ``sign`` fails, the previous file is put back (the signed file is the one it
left); if ``reload`` fails after it, the previous file is put back and signed again, so the
signed file matches what the server loaded last. Knot signs itself: ``reload: [knotc,
zone-reload, ZONE]`` and no ``sign``.

**Kill recovery.** With ``reload`` or ``sign`` set, a journal file ``.NAME.tlsarotate.reload``
is written (and fsynced) before the file is replaced and removed once the reload succeeded (or
the previous file was put back). Every write takes the lock first, so a journal found under the
lock was left by a run that died between writing the file and reloading it: :meth:`recover`
(run by the engine before it plans, and by every write) runs ``sign`` (when set) and the reload
then, once, whatever the file holds now (a hand edit since is loaded too, as ``rndc reload``
would); if that fails the journal stays and every run says so, in one line, until it succeeds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.fsutil import MAX_ZONE, atomic_write, file_kind, read_file, remove_stale_temps
from tlsarotate.providers import zonetext
from tlsarotate.providers.base import Capabilities, Option, Provider, WriteToken


@dataclass(frozen=True)
class ZoneSerial(WriteToken):
    """The SOA serial of the zone file as written (reloaded, when ``reload`` is set)."""

    serial: int


class ZoneFileProvider(Provider):
    type_name = "zonefile"
    options: ClassVar[Mapping[str, Option]] = {
        "path": Option(str, required=True, path=True, help="the zone's master file"),
        "reload": Option(list, help="command run after each write, e.g. [rndc, reload, ZONE]"),
        "sign": Option(
            list, help="command run after each write, before reload, e.g. [dnssec-signzone, ...]"
        ),
    }
    capabilities = Capabilities(atomic=True, prerequisites=True, txt=True)

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
            zonetext.parse(text, zone, f"zone file {p}", str(p))  # services sharing it: once
        except (OSError, UnicodeDecodeError):
            return  # check_files said so already
        except ProviderError as e:
            raise ConfigError(e.detail, key="path") from None

    @property
    def target(self) -> Path:
        """The file itself: ``path`` with every symbolic link resolved (written through)."""
        return Path(os.path.realpath(self.path))

    def _read_text(self) -> str:
        try:
            data = read_file(self.path, "zone file", error=ProviderError, limit=MAX_ZONE)
        except ProviderError as e:
            raise self.error(e.detail) from None
        try:
            # bytes.decode: the text exactly as stored (CRLF stays CRLF; read_text would not)
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"{self._where} is not UTF-8 text ({_why(e)})") from None

    @property
    def _where(self) -> str:
        return f"zone file {self.path}"

    def _parse(self, text: str, zone: dns.name.Name) -> dns.zone.Zone:
        try:
            return zonetext.parse(text, zone, self._where, str(self.path))
        except ProviderError as e:
            raise self.error(e.detail) from None

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        z = self._parse(self._read_text(), zone)
        out = {}
        for o in owners:
            rr = zonetext.tlsa(z, o)
            if rr is not None:
                out[o] = rr
        return out

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        z = self._parse(self._read_text(), zone)
        return sorted(n for n in z.nodes if zonetext.tlsa(z, n) is not None)

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
            raise self.error(f"{self._where}: cannot open its lock {lock}: {why}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise self.error(
                    f"{self._where}: its lock {lock} is {file_kind(mode)}, expected a regular file"
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
            raise self.error(f"{self._where}: journal {journal}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise self.error(
                f"{self._where}: journal {journal} is {file_kind(st.st_mode)}, "
                "expected a regular file; remove it"
            )
        steps = self._steps()
        if not steps:
            return None  # left for a config that reloads this file (it has nothing to run)
        for what, argv in steps:
            ok, detail = self._run(argv)
            if not ok:
                raise self.error(
                    f"{self._where}: a run that was interrupted wrote it but never reloaded "
                    f"it, and the {what} command {' '.join(argv)!r} fails ({detail}); the file "
                    f"stays as written (journal {journal}); fix it and re-run"
                )
        self._clear_journal()
        ran = " and ".join(repr(" ".join(argv)) for _, argv in steps)
        return f"{self._where}: ran {ran}, which a run interrupted after writing the file never ran"

    def _steps(self) -> list[tuple[str, list[str]]]:
        """The commands run after each write, in order: ``sign`` then ``reload`` (those set)."""
        return [
            (what, list(map(str, self.opts[what])))
            for what in ("sign", "reload")
            if self.opts.get(what)
        ]

    def _write_journal(self) -> None:
        text = (
            f"written by pid {os.getpid()} at {self.context.clock.now():.0f}; reload not done yet\n"
        )
        try:
            atomic_write(self._beside("reload"), text.encode(), mode=0o600)
        except OSError as e:
            raise self.error(
                f"{self._where}: cannot write its reload journal: {e.strerror}; nothing was written"
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
            raise self.error(
                f"{self._where}: cannot remove its reload journal {journal}: {e.strerror}"
            ) from None

    def render(self, text: str, change: ZoneChange, now: float) -> tuple[str, int]:
        """The new file text for ``change`` and its SOA serial (no I/O; raises if a
        prerequisite fails or the edit cannot be made safely)."""
        before = self._parse(text, change.zone)
        current = {}
        for ch in change.changes:
            rr = zonetext.tlsa(before, ch.owner)
            if rr is not None:
                current[ch.owner] = rr
        self.check_prerequisites(
            change,
            current,
            where=f"{self._where}: ",
            hint=" (edited by hand or by another process?)",
        )
        return zonetext.edit(text, before, self.effective(change), now, self._where, str(self.path))

    def write(self, part: ZoneChange) -> ZoneSerial:
        # render checks every prerequisite
        return self._rewrite(lambda text: self.render(text, part, self.context.clock.now()))

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        return zonetext.txt(self._parse(self._read_text(), zone), name)

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> ZoneSerial:
        """The TXT RRset at ``name`` replaced in the file, ``old`` checked under its lock."""

        def render(text: str) -> tuple[str, int]:
            before = self._parse(text, zone)
            if zonetext.txt(before, name) != old:
                raise self.error(
                    f"{self._where}: the TXT RRset at {name} changed since it was read "
                    "(edited by hand or by another process?)",
                    ConcurrentChangeError,
                )
            now = self.context.clock.now()
            return zonetext.edit_txt(
                text, before, zone, name, new, now, self._where, str(self.path)
            )

        return self._rewrite(render)

    def _rewrite(self, render: Callable[[str], tuple[str, int]]) -> ZoneSerial:
        """Under the lock: the file's text through ``render`` (new text and serial), written
        atomically, then ``sign`` and ``reload`` (the previous file put back if one fails)."""
        with self._locked():
            self._recover_locked()
            text = self._read_text()
            new_text, serial = render(text)
            target = self.target  # a link is written through: its target is replaced
            try:
                st = target.stat()
            except OSError as e:
                raise self.error(f"{self._where}: {e.strerror}") from None
            mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
            remove_stale_temps(target, older_than=0)  # under the lock: a killed run's leftovers
            steps = self._steps()
            if steps:
                self._write_journal()
            try:
                atomic_write(target, new_text.encode("utf-8"), mode=mode, owner=owner)
            except PermissionError as e:
                self._clear_journal()
                raise self.error(
                    f"{self._where}: cannot write it keeping its owner "
                    f"{owner[0]}:{owner[1]} and mode {mode:o}: {e.strerror}; nothing was written"
                ) from None
            except OSError as e:
                self._clear_journal()
                raise self.error(
                    f"{self._where}: cannot write: {e.strerror}; nothing was written"
                ) from None
            if steps:
                self._after_write(steps, text, mode, owner)
                self._clear_journal()
        return ZoneSerial(serial)

    def _run(self, argv: list[str]) -> tuple[bool, str]:
        """Run a reload command: (succeeded, the first line it printed or why it did not run)."""
        try:
            proc = self.context.runner(argv)
            ok, detail = proc.returncode == 0, (proc.stderr or proc.stdout or "").strip()
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            ok, detail = False, str(e)
        return ok, (detail.splitlines()[0] if detail else "no output")

    def _after_write(
        self,
        steps: list[tuple[str, list[str]]],
        previous_text: str,
        mode: int,
        owner: tuple[int, int],
    ) -> None:
        """Run ``sign`` and ``reload``; when one fails, put the previous file back (and sign it
        again when the signing had run) and raise."""
        for k, (step, argv) in enumerate(steps):
            ok, first = self._run(argv)
            if ok:
                continue
            what = f"{self._where}: {step} command {' '.join(argv)!r} failed ({first})"
            try:
                atomic_write(self.target, previous_text.encode("utf-8"), mode=mode, owner=owner)
            except OSError as e:
                raise self.error(
                    f"{what}; putting the previous zone file back failed too ({e.strerror}): "
                    "the NEW file stays in place, not reloaded"
                ) from None
            restored = "the previous zone file was restored"
            for _, again in steps[:k]:  # the signed file was made from the new text: redo it
                ok, why = self._run(again)
                if not ok:
                    raise self.error(
                        f"{what}; {restored}, but signing it again failed ({why}): the signed "
                        "file holds the NEW records, not loaded; fix it and re-run"
                    )
                restored += " and signed again"
            self._clear_journal()  # the files are what the servers loaded last
            raise self.error(f"{what}; {restored}")


def _why(e: UnicodeDecodeError) -> str:
    return f"byte 0x{e.object[e.start]:02x} at offset {e.start}"
