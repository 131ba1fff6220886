"""What the ``octodns`` provider needs from octoDNS, kept apart from its read/write workflow:
loading the configured octoDNS provider class (``class: octodns_powerdns.PowerDnsProvider``)
and refusing one that cannot hold TLSA records, resolving its ``options`` (secrets through
``env/VAR`` or ``KEY_env``/``KEY_file``, never inline), converting octoDNS TLSA records to and
from :class:`~tlsarotate.change.TlsaRRset`, and turning an octoDNS or backend exception into
one line that holds no secret.

octoDNS is imported lazily (the ``[octodns]`` extra): without it, the provider class still
imports, and ``validate`` says which extra to install.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dns.name

from tlsarotate import records
from tlsarotate.change import TlsaRRset, TxtRRset
from tlsarotate.config.schema import SECRET_WORDS
from tlsarotate.errors import ConfigError, RecordError
from tlsarotate.providers.secrets import check_private_file, read_secret

INSTALL = "pip install 'tlsarotate[octodns]' plus the octodns-* package of your DNS host"


def octodns_version() -> str:
    """The installed octoDNS core version; a one-line :class:`ConfigError` without it."""
    try:
        octodns = importlib.import_module("octodns")
    except ImportError:
        raise ConfigError(
            f"the octodns package is not installed ({INSTALL})", key="class"
        ) from None
    return str(getattr(octodns, "__version__", getattr(octodns, "__VERSION__", "?")))


def load_class(path: Any) -> type:
    """The octoDNS provider class named ``package.module.Class``: it must import, be an octoDNS
    provider (populate, plan and apply) and have ``'TLSA'`` in its ``SUPPORTS``."""
    octodns_version()
    from octodns.provider.base import BaseProvider

    text = str(path)
    mod_name, _, attr = text.rpartition(".")
    if not isinstance(path, str) or not mod_name or not attr:
        raise ConfigError(
            f"{text!r} is not a class path (package.module.Class, e.g. "
            "octodns_powerdns.PowerDnsProvider)",
            key="class",
        )
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(
            f"cannot import module {mod_name!r} for octoDNS class {text} ({e}); install its "
            "package (e.g. pip install octodns-powerdns)",
            key="class",
        ) from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise ConfigError(f"module {mod_name!r} has no class {attr!r}", key="class")
    if not issubclass(cls, BaseProvider):
        raise ConfigError(
            f"{text} is not an octoDNS provider (a source only: it cannot plan and apply)",
            key="class",
        )
    supports = getattr(cls, "SUPPORTS", None)
    if not isinstance(supports, (set, frozenset, list, tuple)):
        supports = ()  # not declared on the class (a property of an instance, or none)
    if "TLSA" not in supports:
        raise ConfigError(
            f"octoDNS class {text} does not support TLSA records "
            f"(its SUPPORTS: {', '.join(sorted(map(str, supports))) or 'none'})",
            key="class",
        )
    return cls


def init_parameters(cls: type) -> set[str]:
    """Every named parameter of ``cls.__init__`` along its MRO (octoDNS providers pass the rest
    on through ``**kwargs``)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names


def _is_secret_key(key: str) -> bool:
    return any(w in key.lower() for w in SECRET_WORDS)


def _env_value(key: str, ref: str, environ: Mapping[str, str]) -> Any:
    """``env/NAME`` or ``env/NAME/DEFAULT`` as octoDNS's manager resolves it
    (:class:`octodns.secret.environ.EnvironSecrets`): the variable's value, a number when it
    reads as one."""
    name, _, default = ref[len("env/") :].partition("/")
    if name in environ:
        value: str = environ[name]
    elif "/" in ref[len("env/") :]:
        value = default
    else:
        raise ConfigError(f"environment variable {name} is not set", key=f"options.{key}")
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value


def resolve_options(
    cls: type,
    options: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    check_files: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The keyword arguments for ``cls`` from the config's ``options`` and the secret values
    among them (to keep out of every message).

    ``KEY_env: VAR`` and ``KEY_file: PATH`` become ``KEY`` (the variable's value, the file's
    text stripped) unless ``cls`` takes ``KEY_env``/``KEY_file`` itself; a value ``env/VAR``
    (or ``env/VAR/DEFAULT``) is resolved as octoDNS's manager does. A secret-looking key
    (``api_key``, ``key_secret``, ``token``...) with an inline value is refused; a ``KEY_file``
    path must be absolute (the options mapping is passed through unresolved). With
    ``check_files`` (``validate``), a secret file others may read is refused too."""
    env = os.environ if environ is None else environ
    takes = init_parameters(cls)
    kwargs: dict[str, Any] = {}
    secrets: list[str] = []
    for key, value in options.items():
        key = str(key)
        base, _, suffix = key.rpartition("_")
        if suffix in ("env", "file") and base and key not in takes:
            if suffix == "file":
                path = Path(os.path.expanduser(str(value)))
                if not path.is_absolute():
                    raise ConfigError(
                        f"{value}: use an absolute path (or ~/...)", key=f"options.{key}"
                    )
                if check_files:
                    check_private_file(f"options.{key}", path, "write to the zone")
                secret = read_secret(
                    path, None, file_option=f"options.{key}", env_option=f"options.{key}"
                )
            else:
                secret = read_secret(
                    None,
                    str(value),
                    file_option=f"options.{key}",
                    env_option=f"options.{key}",
                    environ=env,
                )
            if base in kwargs or base in options:
                raise ConfigError(f"give {base} once (here also as {key})", key=f"options.{key}")
            kwargs[base] = secret.reveal()
            secrets.append(secret.reveal())
            continue
        if isinstance(value, str) and value.startswith("env/"):
            value = _env_value(key, value, env)
            secrets.append(str(value))
        elif _is_secret_key(key) and value is not None:
            raise ConfigError(
                f"secrets are never written inline; use env/VAR (octoDNS's way), {key}_env "
                f"(an environment variable) or {key}_file (a file holding it)",
                key=f"options.{key}",
            )
        kwargs[key] = value
    if "id" in kwargs:
        raise ConfigError("the octoDNS id is the provider's name; leave it out", key="options.id")
    return kwargs, [s for s in secrets if len(s) >= 6]


# ---- records ----------------------------------------------------------------------------


def tlsa_rrset(record: Any) -> TlsaRRset:
    """An octoDNS ``TlsaRecord`` as a TlsaRRset (records and TTL)."""
    rds = []
    for v in record.values:
        text = (
            f"{v.certificate_usage} {v.selector} {v.matching_type} {v.certificate_association_data}"
        )
        try:
            rds.append(records.from_text(text))
        except RecordError as e:
            raise ValueError(f"{record.fqdn}: {e}") from None
    return TlsaRRset.of(record.ttl, rds)


def tlsa_data(rrset: TlsaRRset) -> dict[str, Any]:
    """The octoDNS record data (``Record.new``) of a TlsaRRset."""
    return {
        "type": "TLSA",
        "ttl": rrset.ttl,
        "values": [
            {
                "certificate_usage": rd.usage,
                "selector": rd.selector,
                "matching_type": rd.mtype,
                "certificate_association_data": rd.cert.hex(),
            }
            for rd in rrset.sorted()
        ],
    }


def txt_rrset(record: Any) -> TxtRRset:
    """An octoDNS TXT record as a TxtRRset: octoDNS keeps each value as one text (its
    character-strings joined, ``;`` escaped), cut here at 255 bytes as it writes them."""
    recs = []
    for v in record.values:
        raw = str(v).replace("\\;", ";").encode()
        recs.append(tuple(raw[i : i + 255] for i in range(0, len(raw), 255)) or (b"",))
    return TxtRRset.of(int(record.ttl), recs)


def txt_data(rrset: TxtRRset) -> dict[str, Any]:
    """The octoDNS record data for a TXT RRset (each value joined, ``;`` escaped)."""
    values = [b"".join(r).decode("ascii").replace(";", "\\;") for r in rrset.sorted()]
    return {"type": "TXT", "ttl": rrset.ttl, "values": values}


def owner_of(record: Any) -> dns.name.Name:
    return dns.name.from_text(str(record.fqdn))


# ---- errors and logs --------------------------------------------------------------------


def failure(e: BaseException, secrets: Sequence[str]) -> str:
    """What went wrong in an octoDNS call, on one line, without a secret: authentication
    failures say ``authentication failed``."""
    chain: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 5:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    texts = " ".join(f"{type(x).__name__} {x}" for x in chain)
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403) or "unauthorized" in texts.lower():
        why = f"authentication failed (HTTP {status or 401}: the API key was refused)"
    elif any(w in texts for w in ("BADSIG", "BADKEY", "NOTAUTH", "PeerBad", "BadSignature")):
        why = "TSIG authentication failed (the key was refused, or the zone is not served there)"
    elif type(e).__name__ in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout"):
        why = f"no answer from the server ({type(e).__name__})"
    else:
        why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if status is not None:
            why += _api_error(e)
    why = " ".join(why.split())
    for s in secrets:
        why = why.replace(s, "<secret hidden>")
    return why


def _api_error(e: BaseException) -> str:
    try:
        text = str(e.response.json()["error"])  # type: ignore[attr-defined]
    except Exception:
        return ""
    return f" ({text})"


class QuietLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The octoDNS provider's logger, moved under ``tlsarotate.providers.octodns.NAME`` and
    demoted to DEBUG: its INFO chatter and the ERROR it logs before raising (the one-line
    :class:`~tlsarotate.errors.ProviderError` says it) show with ``-vv`` only."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("stacklevel", None)
        self.logger.log(logging.DEBUG, msg, *args, **kwargs)


def quiet_log(name: str) -> QuietLog:
    return QuietLog(logging.getLogger(f"tlsarotate.providers.octodns.{name}"), {})


__all__ = [
    "INSTALL",
    "QuietLog",
    "failure",
    "init_parameters",
    "load_class",
    "octodns_version",
    "owner_of",
    "quiet_log",
    "resolve_options",
    "tlsa_data",
    "tlsa_rrset",
]
