"""One entry of ``providers:``: a name, a ``type`` (a built-in or plugin provider class) and the
options that type declares, each read and checked against its
:class:`~tlsarotate.providers.base.Option`. Secrets are never inline."""

from __future__ import annotations

from typing import Any

import yaml

from tlsarotate.config.model import ProviderConfig
from tlsarotate.config.schema import NAME_RE, SECRET_WORDS
from tlsarotate.config.yamlnode import YamlFile, kind, line_of
from tlsarotate.errors import ConfigError


def provider(doc: YamlFile, name: str, knode: yaml.Node, node: yaml.Node) -> ProviderConfig:
    from tlsarotate import providers as registry

    kp = f"providers.{name}"
    if not NAME_RE.match(name):
        raise doc.err(knode, kp, "use letters, digits, '.', '_' and '-' only")
    if not isinstance(node, yaml.MappingNode):
        raise doc.err(node, kp, f"expected a mapping, got {kind(node)}")
    raw = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    if "type" not in raw:
        raise doc.err(node, f"{kp}.type", "required key is missing")
    ptype = doc.string(raw["type"][1], f"{kp}.type")
    try:
        cls = registry.get_class(ptype)
    except ConfigError as e:
        raise doc.err(raw["type"][1], f"{kp}.type", str(e)) from None
    allowed = {"type": True, **{k: o.required for k, o in cls.options.items()}}
    for key, (kn, _) in raw.items():
        if (
            key not in allowed
            and any(w in key.lower() for w in SECRET_WORDS)
            and not key.endswith(("_file", "_env"))
        ):
            raise doc.err(
                kn,
                f"{kp}.{key}",
                "secrets are never written inline; use "
                f"{key}_file (a file holding it) or {key}_env (an environment variable)",
            )
    m = doc.mapping(node, kp, allowed)
    opts: dict[str, Any] = {}
    for key, opt in cls.options.items():
        if key not in m:
            if opt.default is not None:
                opts[key] = opt.default
            continue
        vnode = m[key][1]
        sub = f"{kp}.{key}"
        value: Any
        if opt.kind is list or opt.kind == (list,):
            value = list(doc.sequence(vnode, sub, doc.scalar, nonempty=False))
        elif opt.kind is dict:
            if not isinstance(vnode, yaml.MappingNode):
                raise doc.err(vnode, sub, f"expected a mapping, got {kind(vnode)}")
            value = {k.value: doc.scalar(v, f"{sub}.{k.value}") for k, v in vnode.value}
        else:
            value = doc.scalar(vnode, sub)
            kinds = opt.kind if isinstance(opt.kind, tuple) else (opt.kind,)
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
        problem = opt.problem(value, shown=kind(vnode))
        if problem:
            raise doc.err(vnode, sub, problem)
        if opt.path:
            value = doc.path(vnode, sub)
        opts[key] = value
    lines = {k: line_of(vn) for k, (_, vn) in m.items()}
    return ProviderConfig(name, ptype, opts, line_of(node), lines)
