"""The provider interface every DNS backend implements (built-in or plugin).

A provider reads the TLSA RRsets of a set of owners in one zone, applies one
:class:`~tlsarotate.change.ZoneChange` as exactly one write, and says when that write is live on
its own servers. Heavy dependencies (boto3, requests) are imported lazily inside the provider,
so the class itself can always be imported for config validation; a missing dependency is a
:class:`~tlsarotate.errors.ProviderError` naming the extra to install.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import dns.name

from tlsarotate.change import TlsaRRset, ZoneChange


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
    """What the engine hands a provider: where relative paths start and how to run commands.

    Tests replace ``runner`` (and wrap the provider) to intercept every call.
    """

    base_dir: Path = field(default_factory=Path.cwd)
    runner: Runner = run_command


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

    @abstractmethod
    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        """The current TLSA RRsets of ``owners`` (absent owners have none)."""

    @abstractmethod
    def apply(self, change: ZoneChange) -> WriteResult:
        """Apply the whole change as one write. Each owner's ``old`` is a prerequisite: if the
        RRset differs, raise :class:`~tlsarotate.errors.ConcurrentChangeError` and write
        nothing."""

    @staticmethod
    def effective(change: ZoneChange) -> ZoneChange:
        """The change without owners whose RRset stays as it is (old == new): a provider
        checks their prerequisites but writes nothing for them; no change, no write."""
        return ZoneChange(change.zone, tuple(c for c in change.changes if c.old != c.new))

    def is_live(self, zone: dns.name.Name, result: WriteResult) -> bool:
        """Is the write live on the provider's own servers (Route53 INSYNC, file reloaded)?"""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
