"""``tlsarotate import``: bootstrap a config from what a zone publishes.

Gathers (the I/O): the config's providers (``services:`` may be absent), the zone's TLSA owners
(``--owner``, else the provider's :meth:`~tlsarotate.providers.base.Provider.list_owners`),
their RRsets through the provider's ``read``, the certificates named per host
(``--deployed HOST=CERT,KEY`` or ``HOST=COMBINED``: the files a service will manage;
``--cert HOST=FILE``: a certificate only to confirm which records are the host's). Then
:func:`tlsarotate.adopt.adopt` shapes the services and :mod:`tlsarotate.adopt_render` prints
them; every warning is one line on stderr. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.name

from tlsarotate import adopt, adopt_render, certfiles, config, fqdn
from tlsarotate import providers as registry
from tlsarotate.change import TlsaRRset
from tlsarotate.errors import ConfigError
from tlsarotate.providers.base import Provider, ProviderContext

log = logging.getLogger("tlsarotate.import")


def _name(text: str, what: str, zone: dns.name.Name | None = None) -> dns.name.Name:
    """``text`` as an absolute name (a final dot optional), inside ``zone`` when given."""
    try:
        name = fqdn.parse(text)
    except ValueError as e:
        raise ConfigError(f"{what}: {e}") from None
    if zone is not None and not name.is_subdomain(zone):
        raise ConfigError(f"{what}: {name} is not inside zone {zone}")
    return name


def _provider(args: argparse.Namespace) -> Provider:
    path, provs = config.load_providers(args.config)
    name = args.provider
    if name is None:
        if len(provs) != 1:
            known = ", ".join(provs) or "none"
            raise ConfigError(f"name the provider to read with --provider (configured: {known})")
        name = next(iter(provs))
    if name not in provs:
        known = ", ".join(provs) or "none"
        raise ConfigError(f"--provider: no provider named {name!r} (configured: {known})")
    pc = provs[name]
    return registry.get_class(pc.type)(name, pc.options, ProviderContext(base_dir=path.parent))


def _host_arg(opt: str, text: str, zone: dns.name.Name) -> tuple[str, list[str]]:
    """``HOST=A[,B]`` -> (absolute host, [A, B])."""
    host, sep, files = text.partition("=")
    if not sep or not host or not files:
        raise ConfigError(f"{opt} {text!r}: expected HOST=FILE[,KEY]")
    return _name(host, f"{opt} {text}", zone).to_text(), files.split(",")


def _certificates(args: argparse.Namespace, zone: dns.name.Name) -> dict[str, adopt.HostCert]:
    out: dict[str, adopt.HostCert] = {}

    def given(host: str, opt: str) -> None:
        if host in out:
            raise ConfigError(f"{opt}: {host} has a certificate already (one per host)")

    for text in args.deployed or ():
        host, files = _host_arg("--deployed", text, zone)
        given(host, "--deployed")
        paths = [str(Path(f).absolute()) for f in files]
        source = f"--deployed {host.rstrip('.')}={','.join(files)}"
        if len(paths) == 2:
            m = certfiles.load_pair(paths[0], paths[1])
            out[host] = adopt.HostCert(m, {"cert": paths[0], "key": paths[1]}, source)
        elif len(paths) == 1:
            out[host] = adopt.HostCert(
                certfiles.load_combined(paths[0]), {"combined": paths[0]}, source
            )
        else:
            raise ConfigError(f"--deployed {text!r}: expected HOST=CERT,KEY or HOST=COMBINED")
    for text in args.cert or ():
        host, files = _host_arg("--cert", text, zone)
        given(host, "--cert")
        if len(files) != 1:
            raise ConfigError(f"--cert {text!r}: expected HOST=FILE (one certificate file)")
        out[host] = adopt.HostCert(certfiles.load(files[0]), None, f"--cert {text}")
    return out


def _common(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys every service gets, from the options."""
    common: dict[str, Any] = {}
    if args.nameserver:
        for ns in args.nameserver:
            try:
                config.parse_nameserver(ns)
            except ValueError as e:
                raise ConfigError(f"--nameserver {ns!r}: {e}") from None
        common["nameservers"] = list(args.nameserver)
    if args.observe:
        common["observe"] = args.observe
    return common


def gather(
    args: argparse.Namespace,
) -> tuple[dns.name.Name, str, dict[dns.name.Name, TlsaRRset], dict[str, adopt.HostCert]]:
    """The zone, the provider's name, what it publishes there and the certificates given."""
    zone = _name(args.zone, "--zone")
    certs = _certificates(args, zone)
    prov = _provider(args)
    try:
        owners: Sequence[dns.name.Name]
        if args.owner:
            owners = [_name(o, f"--owner {o}", zone) for o in args.owner]
        else:
            owners = prov.list_owners(zone)
        published = prov.read(zone, owners) if owners else {}
    finally:
        prov.close()
    return zone, prov.name, dict(published), certs


def cmd_import(args: argparse.Namespace) -> int:
    common = _common(args)
    zone, provider, published, certs = gather(args)
    adoption = adopt.adopt(zone, provider, published, certs, common)
    if args.output == "json":
        sys.stdout.write(json.dumps(adopt_render.render_json(adoption), indent=2) + "\n")
    else:
        sys.stdout.write(adopt_render.render_yaml(adoption))
    sys.stdout.flush()
    for w in adoption.warnings:
        log.warning("warning: %s", w)
    return 0
