"""Secrets of provider options (API tokens, TSIG secrets): :class:`Secret`, which never shows
its value, :func:`read_secret`, which reads one from a file or an environment variable, and
:func:`check_private_file`, which refuses a secret file others may read (``validate``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Generic, TypeVar

from tlsarotate.errors import ConfigError
from tlsarotate.fsutil import read_text

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
