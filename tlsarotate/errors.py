"""One root error for everything the user should see as a single clear line.

Every error raised on purpose by tlsarotate derives from :class:`TlsarotateError`; the CLI
prints ``str(err)`` on one line and exits non-zero, never a traceback. Messages must name the
file, config key or DNS record involved and must never contain a secret.
"""

from __future__ import annotations


class TlsarotateError(Exception):
    """Root of all expected errors. ``str()`` is the one line shown to the user."""

    exit_code = 1


class MaterialError(TlsarotateError):
    """A certificate, key, chain or CSR could not be read or does not fit."""


class ConfigError(TlsarotateError):
    """The configuration file is invalid."""


class RecordError(TlsarotateError):
    """A TLSA record or parameter triple is invalid or cannot be built from the input."""


class ProviderError(TlsarotateError):
    """A DNS provider refused or failed a read or a write."""


class ConcurrentChangeError(ProviderError):
    """The RRset changed between our read and our write (a prerequisite failed)."""


class StateError(TlsarotateError):
    """The state file or its lock is unusable."""


class LockTimeout(StateError):
    """Another tlsarotate process holds the service's lock."""


class SwapError(TlsarotateError):
    """Installing the next certificate or reloading the service failed."""


class ObserverError(TlsarotateError):
    """The authoritative servers could not be found or queried."""


class NotImplementedYet(TlsarotateError):
    """A command whose implementation has not landed yet."""
