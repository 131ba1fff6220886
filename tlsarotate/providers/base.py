"""The provider interface every DNS backend implements (built-in or plugin).

A provider reads the TLSA RRsets of a set of owners in one zone, applies one
:class:`~tlsarotate.change.ZoneChange` as one write (unless it must be split past the backend's
limits; each part is atomic), and says when that write is live on its own servers. Heavy
dependencies (boto3, requests) are imported lazily inside the provider, so the class itself can
always be imported for config validation; a missing dependency is a
:class:`~tlsarotate.errors.ProviderError` naming the extra to install.

Shared by the built-in providers: :func:`backoff_delay` (jittered retries on the context's
clock), :class:`Secret` and :func:`read_secret` (tokens and keys that never show themselves),
:meth:`Provider.check_prerequisites`, and the message helpers :func:`one_line`/:func:`describe`.
"""

from __future__ import annotations

import os
import random
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import dns.name

from tlsarotate.change import TlsaRRset, ZoneChange
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.errors import ConcurrentChangeError, ConfigError
from tlsarotate.fsutil import read_text


@dataclass(frozen=True)
class Option:
    """One provider option, for config validation and documentation."""

    kind: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    path: bool = False  # a file path, resolved against the config file's directory


@dataclass(frozen=True)
class Capabilities:
    atomic: bool = True  # a ZoneChange is applied all-or-nothing
    prerequisites: bool = True  # a concurrent change makes the write fail
    max_changes_per_write: int | None = None  # None: unlimited


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=300)


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


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """The jittered, capped exponential backoff before retry number ``attempt`` + 1 (0: the
    first retry): a delay between ``d/2`` and ``d``, where ``d = min(cap, base * 2**attempt)``."""
    d = min(cap, base * 2 ** max(0, attempt))
    return float(d / 2 + rng.uniform(0, d / 2))


T = TypeVar("T", str, bytes)


class Secret(Generic[T]):
    """A secret value (an API token, a TSIG secret) that never shows itself in ``repr``/``str``;
    :meth:`reveal` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value: T = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "<secret hidden>"

    __str__ = __repr__


def read_secret(
    file: str | os.PathLike[str] | None,
    env: str | None,
    *,
    file_option: str,
    env_option: str,
    what: str = "secret",
    environ: Mapping[str, str] | None = None,
    check: Callable[[str], str | None] | None = None,
) -> Secret[str]:
    """The secret text (surrounding whitespace stripped) from the file ``file`` or else the
    environment variable ``env``; the caller makes sure exactly one is set.

    Errors are :class:`~tlsarotate.errors.ConfigError` whose ``key`` is the option
    (``api_token_file: PATH: is empty``), so the config loader can point at its line; ``check``
    returns what is wrong with a value (or None). No message ever holds the value."""
    if file is not None:
        p = Path(file)
        key, where = file_option, str(p)
        try:
            text = read_text(p, "file")
        except ConfigError as e:
            raise ConfigError(e.message, key=key) from None
        value = text.strip()
        if not value:
            raise ConfigError(f"{where}: is empty", key=key)
    else:
        key, where = env_option, f"environment variable {env}"
        value = (os.environ if environ is None else environ).get(str(env), "").strip()
        if not value:
            raise ConfigError(
                f"no {what} in environment variable {env} ({env} is not set or empty)", key=key
            )
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(f"{where}: {problem}", key=key)
    return Secret(value)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(str(text).split())


def describe(rr: TlsaRRset | None) -> str:
    """``2 record(s), TTL 300`` or ``no records``, for concurrent-change messages."""
    if rr is None:
        return "no records"
    return f"{len(rr.records)} record(s), TTL {rr.ttl}"


@dataclass(frozen=True)
class WriteResult:
    """What :meth:`Provider.apply` returns: an opaque token for :meth:`Provider.is_live`."""

    token: Any = None


class Provider(ABC):
    type_name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        self.name = name
        # option defaults apply however the provider is made (config file, tests, plugins)
        defaults = {k: o.default for k, o in self.options.items() if o.default is not None}
        self.opts = {**defaults, **options}
        self.context = context

    @classmethod  # noqa: B027
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        """Validate the files the options name (``validate``); never touches DNS. Raise
        :class:`~tlsarotate.errors.ConfigError` with the provider name and key."""

    @classmethod  # noqa: B027 - optional hook
    def check_service(cls, options: Mapping[str, Any], zone: dns.name.Name, ttl: int) -> None:
        """Validate what a service asks of this backend (``validate``): its zone and TTL. Raise
        :class:`~tlsarotate.errors.ConfigError` saying why; never touches DNS."""

    def served_ttl(self, ttl: int) -> int:
        """The TTL servers hand out for records stored with ``ttl`` as :meth:`read` returns it
        (Cloudflare stores 1 for "automatic" and serves 300)."""
        return ttl

    @abstractmethod
    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        """The current TLSA RRsets of ``owners`` (absent owners have none)."""

    @abstractmethod
    def apply(self, change: ZoneChange) -> WriteResult:
        """Apply the whole change as one write, unless it must be split past the backend's
        limits (each part atomic). Each owner's ``old`` is a prerequisite: if the RRset
        differs, raise :class:`~tlsarotate.errors.ConcurrentChangeError` and write nothing."""

    def check_prerequisites(
        self,
        change: ZoneChange,
        current: Mapping[dns.name.Name, TlsaRRset],
        *,
        prefix: str | None = None,
        hint: str = "",
    ) -> None:
        """Raise :class:`~tlsarotate.errors.ConcurrentChangeError` unless every owner of
        ``change`` (those that stay as they are too) holds its ``old`` RRset (records and TTL)
        in ``current``, a fresh read. ``prefix`` starts the message (default: the provider's
        name and type); ``hint`` follows the "changed since it was read"."""
        for ch in change.changes:
            now = current.get(ch.owner)
            if now != ch.old:
                who = prefix or f"provider {self.name!r} ({self.type_name})"
                raise ConcurrentChangeError(
                    f"{who}: the TLSA RRset at {ch.owner} changed since it was read{hint} "
                    f"(expected {describe(ch.old)}, found {describe(now)}); nothing was "
                    "written; re-run to re-plan"
                )

    @staticmethod
    def effective(change: ZoneChange) -> ZoneChange:
        """The change without owners whose RRset stays as it is (old == new): a provider
        checks their prerequisites but writes nothing for them; no change, no write."""
        return ZoneChange(change.zone, tuple(c for c in change.changes if c.old != c.new))

    def recover(self, zone: dns.name.Name) -> str | None:
        """Finish a write to ``zone`` that a killed run left half done (the zone file written,
        its reload never run); ``apply`` calls this before it plans. Returns what was done, in
        words, or None when there was nothing to finish."""
        return None

    def is_live(self, zone: dns.name.Name, result: WriteResult) -> bool:
        """Is the write live on the provider's own servers (Route53 INSYNC, file reloaded)?"""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def check_private_file(option: str, path: Path, power: str) -> None:
    """Refuse a secret file (TSIG key or secret, API token) that group or others may read
    (``validate``; as ssh refuses such a private key): whoever reads it can ``power``."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}", key=option) from None
    if mode & 0o077:
        raise ConfigError(
            f"{path} is not private: group or others have access (mode {mode:03o}); "
            f"chmod 600 {path} (the secret in it lets anyone reading it {power})",
            key=option,
        )
