"""The provider interface every DNS backend implements (built-in or plugin), and the one write
workflow they share.

A provider reads the TLSA RRsets of a set of owners in one zone (:meth:`Provider.read`; which
owners hold one, where the backend can say, :meth:`Provider.list_owners`) and
writes one part of a :class:`~tlsarotate.change.ZoneChange` in one atomic backend write
(:meth:`Provider.write`). Everything around that is :meth:`Provider.apply`'s, here, once:

1. a change in which every owner stays as it is writes nothing;
2. a backend without native prerequisites (``Capabilities(prerequisites=False)``) is read
   first, and every owner's ``old`` RRset checked (:meth:`Provider.check_prerequisites`):
   a difference is a :class:`~tlsarotate.errors.ConcurrentChangeError`, nothing written; the
   owners that stay are then left out of the write;
3. the change is split into parts past the backend's limits (:meth:`Provider.parts`; default:
   one part), written in order, with :meth:`Provider.after_part` between two parts (a backend
   that must see a part served before the next one waits there);
4. writes are spaced by the backend's declared rate limit (:attr:`Provider.limits`,
   :class:`~tlsarotate.providers.limits.Limits`: ``writes_per_minute``), sleeping on the
   context's clock before a write that would come too soon after the previous one;
5. a failure in part i of n is one line naming the provider and the part, from the error's
   fields: ``provider 'NAME' (TYPE): ... (part 2 of 3; the 1 before it were applied)``.

Each write returns a small typed :class:`WriteToken` (a change id, a zone serial, what must be
served); :meth:`Provider.is_live` gets them back to say when the write is live on the
provider's own servers. Retries go through :func:`tlsarotate.retry.retrying` on the context's
clock and random source (:meth:`Provider.retrying`). Heavy dependencies (boto3, requests) are
imported lazily, so the class itself can always be imported for config validation.

A minimal provider (the README's worked example): TLSA RRsets in a JSON file, written whole::

    import json
    from tlsarotate import records
    from tlsarotate.change import TlsaRRset
    from tlsarotate.fsutil import atomic_write
    from tlsarotate.providers import Capabilities, Option, Provider, WriteToken


    class JsonProvider(Provider):
        type_name = "json"
        options = {"path": Option(str, required=True, path=True, help="the JSON file")}
        # the file cannot refuse a stale write: apply() reads and checks every owner first
        capabilities = Capabilities(prerequisites=False)

        def _load(self, zone):
            with open(self.opts["path"], encoding="utf-8") as f:
                return json.load(f).get(zone.to_text(), {})

        def read(self, zone, owners):
            z = self._load(zone)
            return {
                o: TlsaRRset.of(z[o.to_text()]["ttl"],
                                [records.from_text(t) for t in z[o.to_text()]["records"]])
                for o in owners if o.to_text() in z
            }

        def write(self, part):  # one atomic write of the owners that change
            with open(self.opts["path"], encoding="utf-8") as f:
                data = json.load(f)
            z = data.setdefault(part.zone.to_text(), {})
            for ch in part.changes:
                if ch.new is None:
                    z.pop(ch.owner.to_text(), None)
                else:
                    z[ch.owner.to_text()] = {"ttl": ch.new.ttl, "records": ch.new.texts()}
            atomic_write(self.opts["path"], json.dumps(data).encode())
            return WriteToken()  # nothing to wait for: live once written

Register it under ``[project.entry-points."tlsarotate.providers"]`` (``json =
"mypackage:JsonProvider"``) and a config uses it as ``type: json``; ``path`` arrives resolved
against the config file's directory, option defaults filled in, values checked against their
:class:`Option`. Raise :class:`~tlsarotate.errors.ProviderError` through :meth:`Provider.error`
so every message starts ``provider 'NAME' (json): ``.
"""

from __future__ import annotations

import os
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, overload

import dns.name
import dns.tsig

from tlsarotate.change import TlsaRRset, TxtRRset, ZoneChange
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers.limits import Limits
from tlsarotate.retry import retrying
from tlsarotate.runner import Runner, run_command

T = TypeVar("T")
E = TypeVar("E", bound=ProviderError)


@dataclass(frozen=True)
class Option:
    """One provider option, for config validation and documentation. ``min``/``max`` bound a
    number (inclusive; ``min_open``: ``min`` itself is refused)."""

    kind: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    path: bool = False  # a file path, resolved against the config file's directory
    min: float | None = None
    max: float | None = None
    min_open: bool = False

    def problem(self, value: Any, shown: str | None = None) -> str | None:
        """What is wrong with ``value`` for this option (None: nothing). ``shown`` is how the
        message shows the value (default: its ``repr``; the config loader passes the YAML
        text)."""
        shown = repr(value) if shown is None else shown
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
        ok = ok or (float in kinds and isinstance(value, int) and not isinstance(value, bool))
        ok = ok or (self.path and isinstance(value, os.PathLike))
        if not ok:
            return f"expected {' or '.join(k.__name__ for k in kinds)}, got {shown}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        lo, hi = self.min, self.max
        low = lo is not None and (value <= lo if self.min_open else value < lo)
        if low or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                return (
                    f"expected {'more than ' if self.min_open else ''}{lo:g} to {hi:g}, got {shown}"
                )
            if lo is not None:
                return (
                    f"expected {'more than' if self.min_open else 'at least'} {lo:g}, got {shown}"
                )
            return f"expected at most {hi:g}, got {shown}"
        return None


@dataclass(frozen=True)
class Capabilities:
    """What a backend does itself; :meth:`Provider.apply` does the rest."""

    atomic: bool = True  # each part of a write is applied all-or-nothing
    # the backend refuses a write when any owner's RRset (those that stay too) is not ``old``;
    # False: apply() reads and checks first (a change landing in between goes unseen)
    prerequisites: bool = True
    max_changes_per_write: int | None = None  # None: unlimited (or split by parts())
    # the backend reads and writes TXT RRsets too (read_txt/write_txt: a service's TLSRPT
    # policy record); False: a service asking for one is refused when the config is loaded
    txt: bool = False


@dataclass
class ProviderContext:
    """What the engine hands a provider: where relative paths start, how to run commands, the
    clock retries and polls sleep on, and the random source of their jitter.

    Tests replace ``runner``, ``clock`` and ``rng`` (and wrap the provider) to intercept every
    call and to run backoffs on a fake clock.
    """

    base_dir: Path = field(default_factory=Path.cwd)
    runner: Runner = run_command
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)

    def path(self, value: str | os.PathLike[str]) -> Path:
        """``value`` as a path, a relative one taken from ``base_dir`` (as the config does)."""
        p = Path(os.path.expanduser(os.fspath(value)))
        return p if p.is_absolute() else self.base_dir / p


@dataclass(frozen=True)
class WriteToken:
    """What one part's write leaves for :meth:`Provider.is_live`; providers subclass it with
    what they must check (a change id, a serial). This base says: live once written."""


@dataclass(frozen=True)
class WriteResult:
    """What :meth:`Provider.apply` returns: one token per part written (none: nothing was)."""

    tokens: tuple[WriteToken, ...] = ()


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(str(text).split())


def rrset_summary(rr: TlsaRRset | None) -> str:
    """``2 record(s), TTL 300`` or ``no records``, for concurrent-change messages."""
    if rr is None:
        return "no records"
    return f"{len(rr.records)} record(s), TTL {rr.ttl}"


class Provider(ABC):
    """A DNS backend. Subclasses write :meth:`read` and :meth:`write`, and where needed
    :meth:`parts`, :meth:`after_part`, :meth:`is_live`; :meth:`apply` is the shared workflow
    (see the module docstring). Every provider is made as ``cls(name, options, context)``:
    option defaults are filled in, values checked against :attr:`options` (a
    :class:`~tlsarotate.errors.ConfigError` naming the option), ``path`` options resolved
    against ``context.base_dir`` when relative."""

    type_name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()
    limits: ClassVar[Limits] = Limits()  # accepted TTLs, writes per minute
    label: ClassVar[str] = ""  # how messages name the backend ("Cloudflare"; default type_name)
    part_unit: ClassVar[str] = "part"  # what a part is called in messages ("UPDATE", "batch")

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        self.name = name
        self.context = context
        opts = {k: o.default for k, o in self.options.items() if o.default is not None}
        opts.update(options)
        for key, opt in self.options.items():
            if opts.get(key) is None:
                continue
            problem = opt.problem(opts[key])
            if problem:
                raise ConfigError(f"provider {name}: {key}: {problem}")
            if opt.path:
                opts[key] = context.path(opts[key])
        self.opts: dict[str, Any] = opts
        self._last_write: float | None = None  # when this provider last wrote (rate limit)

    # -- validation (classmethods: no instance, no DNS) -------------------------------------

    @classmethod  # noqa: B027
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        """Validate the files the options name (``validate``); never touches DNS. Raise
        :class:`~tlsarotate.errors.ConfigError` starting with the option's name."""

    @classmethod
    def check_limits(cls, ttl: int) -> None:
        """Refuse (``validate``) a service TTL the backend's :attr:`limits` do not accept:
        :class:`~tlsarotate.errors.ConfigError` ``ttl 300: deSEC accepts at least 3600
        seconds``."""
        problem = cls.limits.ttl_problem(ttl)
        if problem:
            raise ConfigError(f"ttl {ttl}: {cls.label or cls.type_name} {problem}")

    @classmethod  # noqa: B027 - optional hook
    def check_service(cls, options: Mapping[str, Any], zone: dns.name.Name, ttl: int) -> None:
        """Validate what a service asks of this backend (``validate``): its zone and TTL. Raise
        :class:`~tlsarotate.errors.ConfigError` saying why; never touches DNS."""

    @classmethod
    def txt_problem(cls, options: Mapping[str, Any]) -> str | None:
        """Why this backend cannot keep a TXT RRset (a service's ``tlsrpt_record``) with these
        options, in words (None: it can); asked when the config is loaded."""
        return None if cls.capabilities.txt else "cannot write TXT records"

    # -- what a backend writes ---------------------------------------------------------------

    @abstractmethod
    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        """The current TLSA RRsets of ``owners`` (absent owners have none)."""

    @abstractmethod
    def write(self, part: ZoneChange) -> WriteToken:
        """Write ``part`` in one atomic backend write. With native prerequisites, every owner's
        ``old`` (those that stay too) must hold or nothing is written
        (:class:`~tlsarotate.errors.ConcurrentChangeError`); without, ``part`` holds only the
        owners that change, already checked."""

    # -- TXT RRsets (``capabilities.txt``: a service's TLSRPT policy record) -------------------

    def read_txt(self, zone: dns.name.Name, name: dns.name.Name) -> TxtRRset | None:
        """The TXT RRset at ``name`` in ``zone``, every record of it (None: there is none)."""
        raise self.error("cannot read TXT records")

    def write_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> WriteToken:
        """Make the TXT RRset at ``name`` ``new`` (None: none) in one atomic write. With
        native prerequisites the backend refuses it unless the RRset is still ``old``
        (:class:`~tlsarotate.errors.ConcurrentChangeError`); without, :meth:`apply_txt`
        has read and checked first."""
        raise self.error("cannot write TXT records")

    def apply_txt(
        self,
        zone: dns.name.Name,
        name: dns.name.Name,
        old: TxtRRset | None,
        new: TxtRRset | None,
    ) -> WriteResult:
        """:meth:`write_txt` in the shared workflow: nothing when ``old == new``, the read and
        check first without native prerequisites, the rate limit, errors naming the
        provider."""
        if old == new:
            return WriteResult()
        try:
            if not self.capabilities.prerequisites:
                now = self.read_txt(zone, name)
                if now != old:
                    raise self.error(
                        f"the TXT RRset at {name} changed since it was read "
                        f"(expected {len(old.records) if old else 0} record(s), found "
                        f"{len(now.records) if now else 0})",
                        ConcurrentChangeError,
                    )
            self._pace()
            return WriteResult((self.write_txt(zone, name, old, new),))
        except ProviderError as e:
            self._locate(e)
            raise

    def list_owners(self, zone: dns.name.Name) -> list[dns.name.Name]:
        """Every owner in ``zone`` that holds a TLSA RRset, sorted (``import`` without
        ``--owner``). Optional: a backend that cannot enumerate a zone keeps this default, a
        one-line error."""
        raise self.error("cannot list a zone; name the owners with --owner")

    def parts(self, change: ZoneChange) -> list[ZoneChange]:
        """``change`` split past the backend's limits, owners in order, each part one write;
        by default groups of ``capabilities.max_changes_per_write`` owners (None: one part)."""
        k = self.capabilities.max_changes_per_write
        if not k or len(change.changes) <= k:
            return [change]
        chs = change.changes
        return [ZoneChange(change.zone, chs[i : i + k]) for i in range(0, len(chs), k)]

    def after_part(self, part: ZoneChange, token: WriteToken) -> None:  # noqa: B027
        """Called between two parts of a split write, after ``part`` was written."""

    def is_live(self, zone: dns.name.Name, tokens: Sequence[WriteToken]) -> bool:
        """Is the write that left ``tokens`` live on the provider's own servers (Route 53
        INSYNC, the primary serving it)?"""
        return True

    def served_ttl(self, ttl: int) -> int:
        """The TTL servers hand out for records stored with ``ttl`` as :meth:`read` returns it
        (Cloudflare stores 1 for "automatic" and serves 300)."""
        return ttl

    def transfer_key(self) -> dns.tsig.Key | None:
        """The TSIG key zone transfers from the zone's servers are signed with
        (``observe_read: axfr``); None: unsigned."""
        return None

    def recover(self, zone: dns.name.Name) -> str | None:
        """Finish a write to ``zone`` that a killed run left half done (the zone file written,
        its reload never run); the engine calls this before it plans. Returns what was done, in
        words, or None when there was nothing to finish."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once the provider is done with."""

    # -- the shared workflow -----------------------------------------------------------------

    def apply(self, change: ZoneChange) -> WriteResult:
        """Apply ``change``: one write, or one per part in order, each atomic (see the module
        docstring). Raises :class:`~tlsarotate.errors.ConcurrentChangeError` when an owner's
        RRset is not its ``old`` any more."""
        if not self.effective(change):
            return WriteResult()
        try:
            if not self.capabilities.prerequisites:
                owners = [c.owner for c in change.changes]
                self.check_prerequisites(change, self.read(change.zone, owners))
                change = self.effective(change)
            parts = self.parts(change)
        except ProviderError as e:
            self._locate(e)
            raise
        tokens: list[WriteToken] = []
        for i, part in enumerate(parts):
            try:
                self._pace()
                tokens.append(self.write(part))
                if i < len(parts) - 1:
                    self.after_part(part, tokens[-1])
            except ProviderError as e:
                self._locate(e)
                if len(tokens) == i and i:  # the write of part i + 1 failed, i were applied
                    e.part, e.parts, e.written, e.unit = i + 1, len(parts), i, self.part_unit
                raise
        return WriteResult(tuple(tokens))

    def poll(self, done: Callable[[], bool], limit: float, step: float = 0.1) -> bool:
        """Call ``done`` every ``step`` seconds (the context's clock) until it is true (True)
        or ``limit`` seconds passed (False)."""
        waited = 0.0
        while not done():
            if waited >= limit:
                return False
            self.context.clock.sleep(step)
            waited += step
        return True

    def _pace(self) -> None:
        """Sleep (on the context's clock) until a write respects ``limits.writes_per_minute``."""
        gap = self.limits.write_interval
        if not gap:
            return
        clock = self.context.clock
        if self._last_write is not None:
            wait = self._last_write + gap - clock.now()
            if wait > 0:
                clock.sleep(wait)
        self._last_write = clock.now()

    def check_prerequisites(
        self,
        change: ZoneChange,
        current: Mapping[dns.name.Name, TlsaRRset],
        *,
        where: str = "",
        hint: str = "",
    ) -> None:
        """Raise :class:`~tlsarotate.errors.ConcurrentChangeError` unless every owner of
        ``change`` (those that stay as they are too) holds its ``old`` RRset (records and TTL)
        in ``current``, a fresh read. ``where`` starts the detail (``zone file PATH: ``);
        ``hint`` follows the "changed since it was read"."""
        for ch in change.changes:
            now = current.get(ch.owner)
            if now != ch.old:
                raise self.error(
                    f"{where}the TLSA RRset at {ch.owner} changed since it was read{hint} "
                    f"(expected {rrset_summary(ch.old)}, found {rrset_summary(now)})",
                    ConcurrentChangeError,
                )

    @staticmethod
    def effective(change: ZoneChange) -> ZoneChange:
        """The change without owners whose RRset stays as it is (old == new): no change, no
        write."""
        return ZoneChange(change.zone, tuple(c for c in change.changes if c.old != c.new))

    @overload
    def error(self, detail: str, **fields: Any) -> ProviderError: ...

    @overload
    def error(self, detail: str, cls: type[E], **fields: Any) -> E: ...

    def error(self, detail: str, cls: type[ProviderError] = ProviderError, **fields: Any) -> Any:
        """An error of type ``cls`` naming this provider: ``provider 'NAME' (TYPE): detail``."""
        return cls(detail, provider=self.name, ptype=self.type_name, **fields)

    def _locate(self, e: ProviderError) -> None:
        if e.provider is None:
            e.provider, e.ptype = self.name, self.type_name

    def retrying(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        attempts: int,
        retry_on: tuple[type[BaseException], ...],
        base: float,
        cap: float,
        delay: Callable[[BaseException], float | None] | None = None,
    ) -> T:
        """:func:`tlsarotate.retry.retrying` on this provider's clock and random source."""
        return retrying(
            what,
            fn,
            attempts=attempts,
            retry_on=retry_on,
            clock=self.context.clock,
            rng=self.context.rng,
            base=base,
            cap=cap,
            delay=delay,
        )
