"""Reading the config file: YAML text in, a validated :class:`~tlsarotate.config.model.Config`
out. The top level and ``state:`` are read here, ``providers:`` and ``services:`` by their
section readers; then the rules across services (unique names, owners and deployed files)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import dns.name
import yaml

from tlsarotate.config.model import Config, ProviderConfig, Service, StateBackend, Tlsrpt
from tlsarotate.config.provider_options import provider
from tlsarotate.config.schema import STATE_KEYS, TLSRPT_KEYS, TOP_KEYS
from tlsarotate.config.services import service
from tlsarotate.config.yamlnode import YamlFile, kind
from tlsarotate.errors import ConfigError
from tlsarotate.fsutil import MAX_CONFIG, read_text

DEFAULT_PATH = Path("/etc/tlsarotate/config.yaml")


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """The config at ``path``, else ``$TLSAROTATE_CONFIG``, else :data:`DEFAULT_PATH`."""
    p = _path(path)
    return parse(_read(p), p.absolute())


def _path(path: str | os.PathLike[str] | None) -> Path:
    return (
        Path(path) if path is not None else Path(os.environ.get("TLSAROTATE_CONFIG", DEFAULT_PATH))
    )


def _read(p: Path) -> str:
    return read_text(p, "config file", hint=" (use -c FILE or TLSAROTATE_CONFIG)", limit=MAX_CONFIG)


def load_providers(
    path: str | os.PathLike[str] | None = None,
) -> tuple[Path, dict[str, ProviderConfig]]:
    """Only the ``providers:`` of the config :func:`load` would read (``services:`` may be
    absent: ``import`` writes them), and the file's absolute path."""
    p = _path(path)
    doc = YamlFile(p.absolute())
    m = doc.mapping(_root(doc, _read(p)), "", {**TOP_KEYS, "services": False})
    return p.absolute(), _providers(doc, m["providers"][1])


# libyaml's composer when PyYAML has it (4x faster on a big config, the same nodes); errors
# always come from the pure-Python one, so that every message is the same on every machine
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _root(doc: YamlFile, text: str) -> yaml.Node:
    try:
        if _FAST_LOADER is not None:
            try:
                return _nonempty(doc, yaml.compose(text, Loader=_FAST_LOADER))
            except yaml.YAMLError:
                pass
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"not valid YAML: {problem}", file=doc.file, line=line) from None
    return _nonempty(doc, root)


def _nonempty(doc: YamlFile, root: yaml.Node | None) -> yaml.Node:
    if root is None:
        raise ConfigError("the config file is empty", file=doc.file)
    return root


def parse(text: str, path: Path) -> Config:
    """The config ``text`` holds; ``path`` names it in errors and anchors relative paths."""
    doc = YamlFile(path)
    m = doc.mapping(_root(doc, text), "", TOP_KEYS)
    state_dir = (
        doc.path(m["state_dir"][1], "state_dir")
        if "state_dir" in m
        else Path("/var/lib/tlsarotate")
    )
    margin = (
        doc.integer(m["safety_margin"][1], "safety_margin", 0, 86400 * 7, "safety_margin")
        if "safety_margin" in m
        else 60
    )
    lock_timeout = (
        doc.number(m["lock_timeout"][1], "lock_timeout", 0, 86400, "lock_timeout")
        if "lock_timeout" in m
        else 600.0
    )
    provs = _providers(doc, m["providers"][1])
    snode = m["services"][1]
    services = doc.sequence(snode, "services", lambda n, k: service(doc, n, k, provs))
    _across_services(doc, snode, services)
    backend = _state_backend(doc, m["state"][1]) if "state" in m else StateBackend()
    tlsrpt = _tlsrpt(doc, m["tlsrpt"][1]) if "tlsrpt" in m else None
    return Config(path, state_dir, margin, provs, services, lock_timeout, backend, tlsrpt)


def _providers(doc: YamlFile, node: yaml.Node) -> dict[str, ProviderConfig]:
    if not isinstance(node, yaml.MappingNode):
        raise doc.err(node, "providers", f"expected a mapping of provider names, got {kind(node)}")
    provs: dict[str, ProviderConfig] = {}
    for kn, vn in node.value:
        name = str(kn.value)
        if name in provs:
            raise doc.err(kn, f"providers.{name}", "duplicate provider name")
        provs[name] = provider(doc, name, kn, vn)
    return provs


def _across_services(doc: YamlFile, node: yaml.Node, services: tuple[Service, ...]) -> None:
    """Service names are unique, each owner has one service, each deployed file one slot."""
    seen_names: dict[str, int] = {}
    owners: dict[dns.name.Name, str] = {}
    deployed_files: dict[Path, str] = {}
    for i, s in enumerate(services):
        snode = node.value[i]
        if s.name in seen_names:
            raise doc.err(
                snode,
                f"services[{i}].name",
                f"service name {s.name!r} is already used by services[{seen_names[s.name]}]",
            )
        seen_names[s.name] = i
        for o in (*s.owners, *s.aliases):
            if o in owners and owners[o] != s.name:
                raise doc.err(
                    snode,
                    f"services[{i}]",
                    f"owner {o.to_text()} is already managed by service {owners[o]!r}",
                )
            if o in owners:
                raise doc.err(snode, f"services[{i}]", f"owner {o.to_text()} is listed twice")
            owners[o] = s.name
        for slot in s.certificates:
            for key in ("cert", "key", "combined"):
                f: Path | None = getattr(slot.deployed, key)
                if f is None:
                    continue
                real = Path(os.path.abspath(f))
                if real in deployed_files:
                    raise doc.err(
                        snode,
                        f"services[{i}].deployed.{key}",
                        f"certificate {slot.name!r}: {f} is already deployed by "
                        f"{deployed_files[real]}: each certificate "
                        "slot needs files of its own (a swap of one would replace the other's)",
                    )
                deployed_files[real] = f"service {s.name!r} certificate {slot.name!r}"


def _state_backend(doc: YamlFile, node: yaml.Node) -> StateBackend:
    m = doc.mapping(node, "state", STATE_KEYS)
    vals = {k: doc.string(v, f"state.{k}") for k, (_, v) in m.items()}
    if vals["backend"] not in ("file", "s3"):
        raise doc.err(m["backend"][1], "state.backend", "must be file or s3")
    if vals["backend"] == "s3" and "bucket" not in vals:
        raise doc.err(node, "state.bucket", "required when backend is s3")
    if vals["backend"] == "file" and len(vals) > 1:
        extra = sorted(set(vals) - {"backend"})[0]
        raise doc.err(m[extra][0], f"state.{extra}", "only used with backend: s3")
    return StateBackend(**vals)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _tlsrpt(doc: YamlFile, node: yaml.Node) -> Tlsrpt:
    m = doc.mapping(node, "tlsrpt", TLSRPT_KEYS)
    d = doc.path(m["dir"][1], "tlsrpt.dir")
    limit = 10**9
    warn = doc.integer(m["warn"][1], "tlsrpt.warn", 1, limit, "warn") if "warn" in m else 1
    crit = (
        doc.integer(m["crit"][1], "tlsrpt.crit", 1, limit, "crit")
        if "crit" in m
        else max(100, warn)
    )
    if crit < warn:
        raise doc.err(m["crit"][1], "tlsrpt.crit", f"crit {crit} is below warn {warn}")
    window = 7 * 86400.0
    if "window" in m:
        wnode = m["window"][1]
        v = doc.scalar(wnode, "tlsrpt.window")
        match = re.fullmatch(r"(\d+)([smhdw])", v.strip()) if isinstance(v, str) else None
        if match:
            window = float(int(match.group(1)) * _UNITS[match.group(2)])
        elif isinstance(v, int) and not isinstance(v, bool):
            window = float(v)
        else:
            raise doc.err(
                wnode, "tlsrpt.window", "expected seconds or a duration like 7d, 36h, 90m"
            )
        if not 60 <= window <= 366 * 86400:
            raise doc.err(wnode, "tlsrpt.window", "window out of range 1m-366d")
    return Tlsrpt(d, warn, crit, window)
