"""DNS providers. Built-ins are registered by type name; third parties add theirs through the
``tlsarotate.providers`` entry-point group, in their ``pyproject.toml``::

    [project.entry-points."tlsarotate.providers"]
    mydns = "mypackage.provider:MyDNSProvider"   # a tlsarotate.providers.Provider subclass

and a config then uses it as ``type: mydns``."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from tlsarotate.errors import ConfigError
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    WriteResult,
    WriteToken,
)
from tlsarotate.providers.limits import Limits

__all__ = [
    "BUILTIN",
    "Capabilities",
    "Limits",
    "Option",
    "Provider",
    "ProviderContext",
    "WriteResult",
    "WriteToken",
    "available",
    "get_class",
]

BUILTIN: dict[str, str] = {
    "zonefile": "tlsarotate.providers.zonefile:ZoneFileProvider",
    "rfc2136": "tlsarotate.providers.rfc2136:RFC2136Provider",
    "route53": "tlsarotate.providers.route53:Route53Provider",
    "cloudflare": "tlsarotate.providers.cloudflare:CloudflareProvider",
    "memory": "tlsarotate.providers.memory:MemoryProvider",
    "octodns": "tlsarotate.providers.octodns:OctoDnsProvider",
}


def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="tlsarotate.providers")}


def available() -> list[str]:
    return sorted(set(BUILTIN) | set(_plugins()))


def get_class(type_name: str) -> type[Provider]:
    """The provider class for a config ``type:``; unknown types list the available ones."""
    target: object
    if type_name in BUILTIN:
        mod_name, _, attr = BUILTIN[type_name].partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), attr)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("tlsarotate"):
                raise ConfigError(
                    f"provider type {type_name!r} is not available in this build"
                ) from None
            raise
    else:
        plugins = _plugins()
        if type_name not in plugins:
            raise ConfigError(
                f"unknown provider type {type_name!r}; available: {', '.join(available())}"
            )
        target = plugins[type_name]
        try:
            cls = target.load()  # type: ignore[attr-defined]
        except Exception as e:  # a broken plugin must not crash with a traceback
            raise ConfigError(f"provider plugin {type_name!r} failed to load: {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigError(f"provider type {type_name!r} is not a tlsarotate Provider subclass")
    return cls
