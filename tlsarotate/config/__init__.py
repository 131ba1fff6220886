"""The configuration file: YAML in, validated frozen dataclasses out.

Every error names the file, the YAML line and the key path (``services[0].ports[1]``). Unknown
keys are errors, secrets are never inline (``*_file`` / ``*_env`` only), relative paths are
resolved against the config file's directory.

The package's modules, one concept each: :mod:`~tlsarotate.config.model` (the dataclasses),
:mod:`~tlsarotate.config.yamlnode` (typed getters over YAML nodes),
:mod:`~tlsarotate.config.schema` (the keys of each section), the section readers
:mod:`~tlsarotate.config.provider_options`, :mod:`~tlsarotate.config.services` and
:mod:`~tlsarotate.config.slots`, :mod:`~tlsarotate.config.nameservers`,
:mod:`~tlsarotate.config.loader` (the file as a whole), :mod:`~tlsarotate.config.checks`
(``validate``'s file checks) and :mod:`~tlsarotate.config.certpaths` (loading the certificates
a slot names). This module is the API the rest of tlsarotate uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlsarotate.config.model import (
    CertPaths,
    CertSlot,
    Config,
    NextKey,
    ProviderConfig,
    Service,
    StateBackend,
    Tlsrpt,
    Verify,
)
from tlsarotate.config.nameservers import Nameserver, parse_nameserver

if TYPE_CHECKING:
    from tlsarotate.config.certpaths import deployed_link_check, load_cert
    from tlsarotate.config.checks import check_files
    from tlsarotate.config.loader import DEFAULT_PATH, load, load_providers, parse

# The loader and the checks read files: they are imported when first used, so the model (the
# dataclasses a pure judge takes) comes without them.
_LAZY = {
    "deployed_link_check": "tlsarotate.config.certpaths",
    "load_cert": "tlsarotate.config.certpaths",
    "check_files": "tlsarotate.config.checks",
    "DEFAULT_PATH": "tlsarotate.config.loader",
    "load": "tlsarotate.config.loader",
    "load_providers": "tlsarotate.config.loader",
    "parse": "tlsarotate.config.loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tlsarotate.config' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_PATH",
    "CertPaths",
    "CertSlot",
    "Config",
    "Nameserver",
    "NextKey",
    "ProviderConfig",
    "Service",
    "StateBackend",
    "Tlsrpt",
    "Verify",
    "check_files",
    "deployed_link_check",
    "load",
    "load_cert",
    "load_providers",
    "parse",
    "parse_nameserver",
]
