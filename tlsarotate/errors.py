"""One root error for everything the user should see as a single clear line.

Every error raised on purpose by tlsarotate derives from :class:`TlsarotateError`; the CLI
prints ``str(err)`` on one line and exits non-zero, never a traceback. Messages must name the
file, config key or DNS record involved and must never contain a secret.
"""

from __future__ import annotations

import os


class TlsarotateError(Exception):
    """Root of all expected errors. ``str()`` is the one line shown to the user; an error with
    fields (:class:`ConfigError`) formats that line from them."""

    exit_code = 1


class MaterialError(TlsarotateError):
    """A certificate, key, chain or CSR could not be read or does not fit."""


class ConfigError(TlsarotateError):
    """The configuration file, or a file or option it names, is invalid.

    Fields say where: ``file`` (the config file), ``line`` (its 1-based YAML line, shown only
    with ``file``), ``key`` (the key path, ``services[0].ports[1]``, or a provider's option
    name, ``path``) and ``message`` (what is wrong). ``str()`` is the one line
    ``FILE:LINE: KEY: MESSAGE``, absent parts left out; a provider raises
    ``ConfigError(msg, key="option")`` and the config loader adds the file and line."""

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = None if file is None else os.fspath(file)
        self.line = line
        self.key = key or None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.key is not None:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class RecordError(TlsarotateError):
    """A TLSA record or parameter triple is invalid or cannot be built from the input."""


class ProviderError(TlsarotateError):
    """A DNS provider refused or failed a read or a write.

    Carries its parts as fields and formats its one line from them::

        provider 'NAME' (TYPE): DETAIL[; nothing was written][ (UNIT i of n; the k before it
        were applied)]

    ``provider``/``ptype`` name the provider (no prefix when unset: an engine-level error);
    ``unwritten`` says the failed write sent nothing (``this part was not written`` once
    earlier parts were applied); ``part``/``parts``/``written`` locate a failure in a write
    split into parts (the clause appears once ``written`` > 0); ``unit`` names a part the
    backend's way (``UPDATE``, ``change batch``, ``batch``). :meth:`Provider.apply
    <tlsarotate.providers.base.Provider.apply>` fills the provider and part fields."""

    rerun = False  # end with "re-run to re-plan"

    def __init__(
        self,
        detail: str,
        *,
        provider: str | None = None,
        ptype: str | None = None,
        unwritten: bool | None = None,
        part: int | None = None,
        parts: int | None = None,
        written: int = 0,
        unit: str = "part",
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.provider = provider
        self.ptype = ptype
        self.unwritten = self.rerun if unwritten is None else unwritten
        self.part = part
        self.parts = parts
        self.written = written
        self.unit = unit

    def __str__(self) -> str:
        head = f"provider {self.provider!r} ({self.ptype}): " if self.provider is not None else ""
        text = head + self.detail
        if self.unwritten:
            text += "; this part was not written" if self.written else "; nothing was written"
        if self.rerun:
            text += "; re-run to re-plan"
        if self.written and self.part is not None:
            of = f" of {self.parts}" if self.parts is not None else ""
            text += f" ({self.unit} {self.part}{of}; the {self.written} before it were applied)"
        return text


class ConcurrentChangeError(ProviderError):
    """The RRset changed between our read and our write (a prerequisite failed). Unless
    ``unwritten=False`` is given (a write that may have landed), it says nothing was written;
    it always ends with "re-run to re-plan"."""

    rerun = True


class StateError(TlsarotateError):
    """The state file or its lock is unusable."""


class LockTimeout(StateError):
    """Another tlsarotate process holds the service's lock."""


class SwapError(TlsarotateError):
    """Installing the next certificate or reloading the service failed."""


class ObserverError(TlsarotateError):
    """The authoritative servers could not be found or queried."""


class UnsafeChangeError(TlsarotateError):
    """A planned write needs ``apply --force`` (:mod:`tlsarotate.safety`): it removes more
    records nobody accounts for than the service allows, or deletes an owner's whole RRset.
    Nothing was written for that service."""
