"""The configuration file: YAML in, validated frozen dataclasses out.

Every error names the file, the YAML line and the key path (``services[0].ports[1]``). Unknown
keys are errors, secrets are never inline (``*_file`` / ``*_env`` only), relative paths are
resolved against the config file's directory.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.name
import yaml

from tlsarotate import material, nextkey, records
from tlsarotate.errors import ConfigError, RecordError, TlsarotateError
from tlsarotate.fsutil import MAX_CONFIG, read_text

DEFAULT_PATH = Path("/etc/tlsarotate/config.yaml")
SECRET_WORDS = ("secret", "password", "token", "api_key", "access_key", "private_key")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# a host name label (LDH, plus "_" which some operators use); IDNs arrive here as xn--
_LABEL_RE = re.compile(rb"^(?:[A-Za-z0-9_]|[A-Za-z0-9_][A-Za-z0-9_-]*[A-Za-z0-9_])$")
T = TypeVar("T")


@dataclass(frozen=True)
class CertPaths:
    """Where a certificate lives: ``cert`` + ``key``, one ``combined`` key+chain file, or a
    certbot ``lineage`` directory (only for ``next``)."""

    cert: Path | None = None
    key: Path | None = None
    combined: Path | None = None
    lineage: Path | None = None

    def describe(self) -> str:
        if self.lineage:
            return str(self.lineage)
        if self.combined:
            return str(self.combined)
        return str(self.cert)


@dataclass(frozen=True)
class Verify:
    starttls: str = "none"
    host: str | None = None
    port: int | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class NextKey:
    """Keep-ahead: a pre-generated next private key whose records are published early."""

    path: Path
    type: str = "ecdsa-p256"


@dataclass(frozen=True)
class CertSlot:
    name: str
    deployed: CertPaths
    next: CertPaths | None
    reload: tuple[str, ...] = ()
    verify: Verify | None = None
    next_key: NextKey | None = None
    reload_timeout: float = 60.0  # seconds each run of ``reload`` may take before it is killed


@dataclass(frozen=True)
class StateBackend:
    """Where rollover state lives: ``file`` (state_dir) or ``s3`` (ephemeral CI runners)."""

    backend: str = "file"
    bucket: str | None = None
    prefix: str = "tlsarotate/"
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class Nameserver:
    address: str
    port: int = 53

    def __str__(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


@dataclass(frozen=True)
class Service:
    name: str
    zone: dns.name.Name
    provider: str
    hosts: tuple[str, ...]
    ports: tuple[int, ...]
    protocol: str
    ttl: int
    params: tuple[records.Params, ...]
    certificates: tuple[CertSlot, ...]
    allow_unsigned: bool = False
    observe: str = "dns"
    nameservers: tuple[Nameserver, ...] = ()
    # replace: ask only ``nameservers``; add: the zone's NS set and ``nameservers`` (hidden
    # primaries must serve the records too)
    nameservers_mode: str = "replace"
    # shared (default): other writers' records at the owners are kept; exclusive: this service
    # alone writes its owners, so a record it does not account for is stale and removed
    owners_mode: str = "shared"
    # seconds a next certificate must stay valid after the swap (next_min_days)
    next_min_validity: float = material.DEFAULT_MIN_VALIDITY

    @property
    def owners(self) -> list[dns.name.Name]:
        return [records.owner_name(h, p, self.protocol) for h in self.hosts for p in self.ports]


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    options: Mapping[str, Any]
    where: str = ""  # "config.yaml:LINE" of the provider's mapping
    lines: Mapping[str, int] = field(default_factory=dict)  # option key -> YAML line


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    safety_margin: int
    providers: Mapping[str, ProviderConfig]
    services: tuple[Service, ...]
    lock_timeout: float = 600.0
    state: StateBackend = field(default_factory=StateBackend)

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.services) or "none"
        raise ConfigError(f"{self.path}: no service named {name!r} (configured: {known})")

    def select(self, name: str | None) -> tuple[Service, ...]:
        return self.services if name is None else (self.service(name),)


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent

    def err(self, node: yaml.Node | None, keypath: str, msg: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        where = f"{keypath}: " if keypath else ""
        return ConfigError(f"{self.path}{line}: {where}{msg}")


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null" or (node.value == "" and not node.style):
            return "nothing (an empty value)"
        return f"{node.value!r}"
    return "something else"


def _mapping(
    ctx: _Ctx, node: yaml.Node, kp: str, allowed: Mapping[str, bool]
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """key -> (key node, value node); checks unknown, duplicate and required keys."""
    if not isinstance(node, yaml.MappingNode):
        raise ctx.err(node, kp, f"expected a mapping, got {_kind(node)}")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for knode, vnode in node.value:
        key = knode.value if isinstance(knode, yaml.ScalarNode) else None
        sub = f"{kp}.{key}" if kp else str(key)
        if not isinstance(key, str):
            raise ctx.err(knode, kp, "keys must be strings")
        if key in out:
            raise ctx.err(knode, sub, "duplicate key")
        if key not in allowed:
            close = [k for k in allowed if k.replace("_", "") == key.replace("_", "").lower()]
            close = close or difflib.get_close_matches(key.lower(), list(allowed), 1, 0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.err(knode, sub, f"unknown key{hint}; allowed: {', '.join(allowed)}")
        out[key] = (knode, vnode)
    for key, required in allowed.items():
        if required and key not in out:
            raise ctx.err(node, f"{kp}.{key}" if kp else key, "required key is missing")
    return out


def _scalar(ctx: _Ctx, node: yaml.Node, kp: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.err(node, kp, f"expected a single value, got {_kind(node)}")
    try:
        return _construct(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        raise ctx.err(node, kp, f"cannot read the value (YAML tag {node.tag})") from None


def _construct(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _str(ctx: _Ctx, node: yaml.Node, kp: str) -> str:
    v = _scalar(ctx, node, kp)
    if not isinstance(v, str) or not v.strip():
        raise ctx.err(node, kp, f"expected a non-empty string, got {_kind(node)}")
    return v


def _int(ctx: _Ctx, node: yaml.Node, kp: str, lo: int, hi: int, what: str = "value") -> int:
    v = _scalar(ctx, node, kp)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ctx.err(node, kp, f"expected a whole number, got {_kind(node)}")
    if not lo <= v <= hi:
        raise ctx.err(node, kp, f"{what} {v} out of range {lo}-{hi}")
    return v


def _number(
    ctx: _Ctx, node: yaml.Node, kp: str, lo: float, hi: float, what: str, unit: str = "seconds"
) -> float:
    v = _scalar(ctx, node, kp)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ctx.err(node, kp, f"expected a number of {unit}, got {_kind(node)}")
    if not lo <= v <= hi:
        raise ctx.err(node, kp, f"{what} {v} out of range {lo:g}-{hi:g}")
    return float(v)


def _bool(ctx: _Ctx, node: yaml.Node, kp: str) -> bool:
    v = _scalar(ctx, node, kp)
    if not isinstance(v, bool):
        raise ctx.err(node, kp, f"expected true or false, got {_kind(node)}")
    return v


def _list(
    ctx: _Ctx, node: yaml.Node, kp: str, item: Callable[[yaml.Node, str], T], nonempty: bool = True
) -> tuple[T, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise ctx.err(node, kp, f"expected a list, got {_kind(node)}")
    if nonempty and not node.value:
        raise ctx.err(node, kp, "must not be empty")
    return tuple(item(n, f"{kp}[{i}]") for i, n in enumerate(node.value))


def _path(ctx: _Ctx, node: yaml.Node, kp: str) -> Path:
    p = Path(os.path.expanduser(_str(ctx, node, kp)))
    return p if p.is_absolute() else ctx.base / p


def _fqdn(ctx: _Ctx, node: yaml.Node, kp: str) -> dns.name.Name:
    text = _str(ctx, node, kp)
    try:
        name = dns.name.from_text(text.rstrip(".") + ".")
    except Exception as e:  # dnspython raises several types
        raise ctx.err(node, kp, f"invalid DNS name {text!r}: {e}") from None
    if len(name.labels) < 2:
        raise ctx.err(node, kp, f"invalid DNS name {text!r}")
    for label in name.labels[:-1]:
        if not _LABEL_RE.match(label) or len(label) > 63:
            raise ctx.err(
                node,
                kp,
                f"invalid DNS name {text!r}: label {label.decode('ascii', 'replace')!r} "
                "(use letters, digits, '-' and '_'; no '-' at either end)",
            )
    return name


CERT_PATH_KEYS = {"cert": False, "key": False, "combined": False, "lineage": False}


def _cert_paths(ctx: _Ctx, node: yaml.Node, kp: str, lineage_ok: bool) -> CertPaths:
    m = _mapping(ctx, node, kp, CERT_PATH_KEYS)
    if "lineage" in m and not lineage_ok:
        raise ctx.err(
            m["lineage"][0],
            f"{kp}.lineage",
            "a certbot lineage is only allowed for next (certbot renews it in place); "
            "give the deployed certificate as cert + key or combined",
        )
    got = {k: _path(ctx, v, f"{kp}.{k}") for k, (_, v) in m.items()}
    forms = [bool(got.get("cert") or got.get("key")), "combined" in got, "lineage" in got]
    if sum(forms) != 1:
        options = "cert + key, combined" + (" or lineage" if lineage_ok else "")
        raise ctx.err(node, kp, f"give exactly one of: {options}")
    if forms[0] and not ("cert" in got and "key" in got):
        missing = "key" if "cert" in got else "cert"
        raise ctx.err(
            node, f"{kp}.{missing}", "required with " + ("cert" if missing == "key" else "key")
        )
    return CertPaths(**got)


STARTTLS = ("smtp", "imap", "pop3", "none", "auto")


VERIFY_KEYS = {"starttls": False, "host": False, "port": False, "timeout": False}
SLOT_KEYS = {
    "name": False,
    "deployed": True,
    "next": False,
    "reload": False,
    "verify": False,
    "next_key": False,
    "reload_timeout": False,
}
NEXT_KEY_KEYS = {"path": True, "type": False}


def _verify(ctx: _Ctx, node: yaml.Node, kp: str) -> Verify:
    m = _mapping(ctx, node, kp, VERIFY_KEYS)
    v: dict[str, Any] = {}
    if "starttls" in m:
        s = _str(ctx, m["starttls"][1], f"{kp}.starttls")
        if s not in STARTTLS:
            raise ctx.err(
                m["starttls"][1], f"{kp}.starttls", f"must be one of {', '.join(STARTTLS)}"
            )
        v["starttls"] = s
    if "host" in m:
        v["host"] = _str(ctx, m["host"][1], f"{kp}.host")
    if "port" in m:
        v["port"] = _int(ctx, m["port"][1], f"{kp}.port", 1, 65535, "port")
    if "timeout" in m:
        v["timeout"] = _number(ctx, m["timeout"][1], f"{kp}.timeout", 0.1, 600, "timeout")
    return Verify(**v)


def _slot(ctx: _Ctx, node: yaml.Node, kp: str, default_name: str) -> CertSlot:
    m = _mapping(ctx, node, kp, SLOT_KEYS)
    name = _str(ctx, m["name"][1], f"{kp}.name") if "name" in m else default_name
    deployed = _cert_paths(ctx, m["deployed"][1], f"{kp}.deployed", lineage_ok=False)
    nxt = _cert_paths(ctx, m["next"][1], f"{kp}.next", lineage_ok=True) if "next" in m else None
    reload: tuple[str, ...] = ()
    if "reload" in m:
        reload = _list(ctx, m["reload"][1], f"{kp}.reload", lambda n, k: _str(ctx, n, k))
    verify = _verify(ctx, m["verify"][1], f"{kp}.verify") if "verify" in m else None
    reload_timeout = 60.0
    if "reload_timeout" in m:
        reload_timeout = _number(
            ctx, m["reload_timeout"][1], f"{kp}.reload_timeout", 1, 3600, "timeout"
        )
    next_key = None
    if "next_key" in m:
        nk = _mapping(ctx, m["next_key"][1], f"{kp}.next_key", NEXT_KEY_KEYS)
        ktype = "ecdsa-p256"
        if "type" in nk:
            from tlsarotate.pki import KEY_TYPES

            ktype = _str(ctx, nk["type"][1], f"{kp}.next_key.type")
            if ktype not in KEY_TYPES:
                raise ctx.err(
                    nk["type"][1], f"{kp}.next_key.type", f"must be one of {', '.join(KEY_TYPES)}"
                )
        next_key = NextKey(_path(ctx, nk["path"][1], f"{kp}.next_key.path"), ktype)
        if nxt is not None and nxt.key is not None and nxt.key == next_key.path:
            nnode = m["next"][1]
            at = next((v for k, v in nnode.value if k.value == "key"), nnode)
            raise ctx.err(
                at,
                f"{kp}.next.key",
                "must be a copy of the next key taken when the CSR was made, not next_key.path "
                "itself (that file is replaced by a fresh key after the swap)",
            )
    return CertSlot(name, deployed, nxt, reload, verify, next_key, reload_timeout)


def parse_nameserver(text: str) -> Nameserver:
    """``192.0.2.1``, ``192.0.2.1:5353``, ``2001:db8::1``, ``[2001:db8::1]:5353``; raises
    ValueError with the reason in words."""
    t = text.strip()
    addr, port = t, 53
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", t) or re.fullmatch(
        r"([0-9.]+)(?::(\d+))?", t
    )
    if m:
        addr, port = m.group(1), int(m.group(2) or 53)
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address (forms: 192.0.2.1, "
            "192.0.2.1:5353, 2001:db8::1, [2001:db8::1]:5353)"
        ) from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1-65535")
    return Nameserver(addr, port)


def _nameserver(ctx: _Ctx, node: yaml.Node, kp: str) -> Nameserver:
    try:
        return parse_nameserver(str(_scalar(ctx, node, kp)))
    except ValueError as e:
        raise ctx.err(node, kp, str(e)) from None


SERVICE_KEYS = {
    "name": True,
    "zone": True,
    "provider": True,
    "hosts": True,
    "ports": False,
    "protocol": False,
    "ttl": False,
    "records": False,
    "certificate": False,
    "certificates": False,
    "allow_unsigned": False,
    "observe": False,
    "nameservers": False,
    "nameservers_mode": False,
    "owners": False,
    "next_min_days": False,
}


def _service(
    ctx: _Ctx, node: yaml.Node, kp: str, providers: Mapping[str, ProviderConfig]
) -> Service:
    m = _mapping(ctx, node, kp, SERVICE_KEYS)
    name = _str(ctx, m["name"][1], f"{kp}.name")
    if not _NAME_RE.match(name):
        raise ctx.err(m["name"][1], f"{kp}.name", "use letters, digits, '.', '_' and '-' only")
    zone = _fqdn(ctx, m["zone"][1], f"{kp}.zone")
    prov = _str(ctx, m["provider"][1], f"{kp}.provider")
    if prov not in providers:
        known = ", ".join(providers) or "none defined"
        raise ctx.err(
            m["provider"][1], f"{kp}.provider", f"unknown provider {prov!r} (providers: {known})"
        )

    def host(n: yaml.Node, k: str) -> str:
        h = _fqdn(ctx, n, k)
        if not h.is_subdomain(zone):
            raise ctx.err(n, k, f"host {h.to_text()} is not inside zone {zone.to_text()}")
        return h.to_text()

    hosts = _list(ctx, m["hosts"][1], f"{kp}.hosts", host)
    ports: tuple[int, ...] = (25,)
    if "ports" in m:
        ports = _list(
            ctx, m["ports"][1], f"{kp}.ports", lambda n, k: _int(ctx, n, k, 1, 65535, "port")
        )
    proto = "tcp"
    if "protocol" in m:
        proto = _str(ctx, m["protocol"][1], f"{kp}.protocol")
        if proto not in ("tcp", "udp", "sctp"):
            raise ctx.err(m["protocol"][1], f"{kp}.protocol", "must be tcp, udp or sctp")
    ttl = _int(ctx, m["ttl"][1], f"{kp}.ttl", 1, 2147483647, "ttl") if "ttl" in m else 3600

    def param(n: yaml.Node, k: str) -> records.Params:
        try:
            return records.parse_params(str(_scalar(ctx, n, k)))
        except RecordError as e:
            raise ctx.err(n, k, str(e)) from None

    params = tuple(records.parse_params(p) for p in records.DEFAULT_PARAMS)
    if "records" in m:
        params = _list(ctx, m["records"][1], f"{kp}.records", param)
        seen: set[records.Params] = set()
        for i, p in enumerate(params):
            if p in seen:
                raise ctx.err(m["records"][1].value[i], f"{kp}.records[{i}]", f"duplicate {p}")
            seen.add(p)
    if ("certificate" in m) == ("certificates" in m):
        raise ctx.err(node, kp, "give exactly one of certificate (one) or certificates (a list)")
    if "certificate" in m:
        slots: tuple[CertSlot, ...] = (
            _slot(ctx, m["certificate"][1], f"{kp}.certificate", "default"),
        )
    else:
        slots = _list(
            ctx,
            m["certificates"][1],
            f"{kp}.certificates",
            lambda n, k: _slot(ctx, n, k, k.rsplit("[", 1)[1].rstrip("]")),
        )
        names = [s.name for s in slots]
        if len(set(names)) != len(names):
            raise ctx.err(
                m["certificates"][1], f"{kp}.certificates", "certificate names must be unique"
            )
    allow_unsigned = (
        _bool(ctx, m["allow_unsigned"][1], f"{kp}.allow_unsigned")
        if "allow_unsigned" in m
        else False
    )
    observe = "dns"
    if "observe" in m:
        observe = _str(ctx, m["observe"][1], f"{kp}.observe")
        if observe not in ("dns", "provider"):
            raise ctx.err(m["observe"][1], f"{kp}.observe", "must be dns or provider")
    ns: tuple[Nameserver, ...] = ()
    if "nameservers" in m:
        ns = _list(
            ctx, m["nameservers"][1], f"{kp}.nameservers", lambda n, k: _nameserver(ctx, n, k)
        )
    ns_mode = "replace"
    if "nameservers_mode" in m:
        ns_mode = _str(ctx, m["nameservers_mode"][1], f"{kp}.nameservers_mode")
        if ns_mode not in ("replace", "add"):
            raise ctx.err(
                m["nameservers_mode"][1], f"{kp}.nameservers_mode", "must be replace or add"
            )
        if not ns:
            raise ctx.err(
                m["nameservers_mode"][1],
                f"{kp}.nameservers_mode",
                "only meaningful together with nameservers",
            )
    owners_mode = "shared"
    if "owners" in m:
        owners_mode = _str(ctx, m["owners"][1], f"{kp}.owners")
        if owners_mode not in ("shared", "exclusive"):
            raise ctx.err(
                m["owners"][1],
                f"{kp}.owners",
                "must be shared (keep other writers' records) or exclusive (remove every "
                "record this service does not account for)",
            )
    min_validity = float(material.DEFAULT_MIN_VALIDITY)
    if "next_min_days" in m:
        days = _number(
            ctx, m["next_min_days"][1], f"{kp}.next_min_days", 0, 365, "next_min_days", "days"
        )
        min_validity = days * 86400
    return Service(
        name,
        zone,
        prov,
        hosts,
        ports,
        proto,
        ttl,
        params,
        slots,
        allow_unsigned,
        observe,
        ns,
        ns_mode,
        owners_mode,
        min_validity,
    )


def _provider(ctx: _Ctx, name: str, knode: yaml.Node, node: yaml.Node) -> ProviderConfig:
    from tlsarotate import providers as registry

    kp = f"providers.{name}"
    if not _NAME_RE.match(name):
        raise ctx.err(knode, kp, "use letters, digits, '.', '_' and '-' only")
    if not isinstance(node, yaml.MappingNode):
        raise ctx.err(node, kp, f"expected a mapping, got {_kind(node)}")
    raw = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    if "type" not in raw:
        raise ctx.err(node, f"{kp}.type", "required key is missing")
    ptype = _str(ctx, raw["type"][1], f"{kp}.type")
    try:
        cls = registry.get_class(ptype)
    except ConfigError as e:
        raise ctx.err(raw["type"][1], f"{kp}.type", str(e)) from None
    allowed = {"type": True, **{k: o.required for k, o in cls.options.items()}}
    for key, (kn, _) in raw.items():
        if (
            key not in allowed
            and any(w in key.lower() for w in SECRET_WORDS)
            and not key.endswith(("_file", "_env"))
        ):
            raise ctx.err(
                kn,
                f"{kp}.{key}",
                "secrets are never written inline; use "
                f"{key}_file (a file holding it) or {key}_env (an environment variable)",
            )
    m = _mapping(ctx, node, kp, allowed)
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
            value = list(_list(ctx, vnode, sub, lambda n, k: _scalar(ctx, n, k), nonempty=False))
        elif opt.kind is dict:
            if not isinstance(vnode, yaml.MappingNode):
                raise ctx.err(vnode, sub, f"expected a mapping, got {_kind(vnode)}")
            value = {k.value: _scalar(ctx, v, f"{sub}.{k.value}") for k, v in vnode.value}
        else:
            value = _scalar(ctx, vnode, sub)
            kinds = opt.kind if isinstance(opt.kind, tuple) else (opt.kind,)
            if float in kinds and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
        problem = opt.problem(value, shown=_kind(vnode))
        if problem:
            raise ctx.err(vnode, sub, problem)
        if opt.path:
            value = _path(ctx, vnode, sub)
        opts[key] = value
    where = f"{ctx.path}:{node.start_mark.line + 1}"
    lines = {k: vn.start_mark.line + 1 for k, (_, vn) in m.items()}
    return ProviderConfig(name, ptype, opts, where, lines)


TOP_KEYS = {
    "state_dir": False,
    "state": False,
    "safety_margin": False,
    "lock_timeout": False,
    "providers": True,
    "services": True,
}


STATE_KEYS = {
    "backend": True,
    "bucket": False,
    "prefix": False,
    "region": False,
    "endpoint_url": False,
    "profile": False,
}


def _state_backend(ctx: _Ctx, node: yaml.Node) -> StateBackend:
    m = _mapping(ctx, node, "state", STATE_KEYS)
    vals = {k: _str(ctx, v, f"state.{k}") for k, (_, v) in m.items()}
    if vals["backend"] not in ("file", "s3"):
        raise ctx.err(m["backend"][1], "state.backend", "must be file or s3")
    if vals["backend"] == "s3" and "bucket" not in vals:
        raise ctx.err(node, "state.bucket", "required when backend is s3")
    if vals["backend"] == "file" and len(vals) > 1:
        extra = sorted(set(vals) - {"backend"})[0]
        raise ctx.err(m[extra][0], f"state.{extra}", "only used with backend: s3")
    return StateBackend(**vals)


def parse(text: str, path: Path) -> Config:
    ctx = _Ctx(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    if root is None:
        raise ConfigError(f"{path}: the config file is empty")
    m = _mapping(ctx, root, "", TOP_KEYS)
    state_dir = (
        _path(ctx, m["state_dir"][1], "state_dir")
        if "state_dir" in m
        else Path("/var/lib/tlsarotate")
    )
    margin = (
        _int(ctx, m["safety_margin"][1], "safety_margin", 0, 86400 * 7, "safety_margin")
        if "safety_margin" in m
        else 60
    )
    lock_timeout = (
        _number(ctx, m["lock_timeout"][1], "lock_timeout", 0, 86400, "lock_timeout")
        if "lock_timeout" in m
        else 600.0
    )
    pnode = m["providers"][1]
    if not isinstance(pnode, yaml.MappingNode):
        raise ctx.err(
            pnode, "providers", f"expected a mapping of provider names, got {_kind(pnode)}"
        )
    provs: dict[str, ProviderConfig] = {}
    for kn, vn in pnode.value:
        name = str(kn.value)
        if name in provs:
            raise ctx.err(kn, f"providers.{name}", "duplicate provider name")
        provs[name] = _provider(ctx, name, kn, vn)
    services = _list(ctx, m["services"][1], "services", lambda n, k: _service(ctx, n, k, provs))
    seen_names: dict[str, int] = {}
    owners: dict[dns.name.Name, str] = {}
    deployed_files: dict[Path, str] = {}
    for i, s in enumerate(services):
        snode = m["services"][1].value[i]
        if s.name in seen_names:
            raise ctx.err(
                snode,
                f"services[{i}].name",
                f"service name {s.name!r} is already used by services[{seen_names[s.name]}]",
            )
        seen_names[s.name] = i
        for o in s.owners:
            if o in owners and owners[o] != s.name:
                raise ctx.err(
                    snode,
                    f"services[{i}]",
                    f"owner {o.to_text()} is already managed by service {owners[o]!r}",
                )
            if o in owners:
                raise ctx.err(snode, f"services[{i}]", f"owner {o.to_text()} is listed twice")
            owners[o] = s.name
        for slot in s.certificates:
            for key in ("cert", "key", "combined"):
                f: Path | None = getattr(slot.deployed, key)
                if f is None:
                    continue
                real = Path(os.path.abspath(f))
                if real in deployed_files:
                    raise ctx.err(
                        snode,
                        f"services[{i}].deployed.{key}",
                        f"certificate {slot.name!r}: {f} is already deployed by "
                        f"{deployed_files[real]}: each certificate "
                        "slot needs files of its own (a swap of one would replace the other's)",
                    )
                deployed_files[real] = f"service {s.name!r} certificate {slot.name!r}"
    backend = _state_backend(ctx, m["state"][1]) if "state" in m else StateBackend()
    return Config(path, state_dir, margin, provs, services, lock_timeout, backend)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    p = Path(path) if path is not None else Path(os.environ.get("TLSAROTATE_CONFIG", DEFAULT_PATH))
    text = read_text(p, "config file", hint=" (use -c FILE or TLSAROTATE_CONFIG)", limit=MAX_CONFIG)
    return parse(text, p.absolute())


def check_files(cfg: Config, now: float | None = None) -> list[str]:
    """Load every certificate and key the config names and every provider file; return one
    line per service slot describing what was found (and a note where a next certificate has
    names DANE-EE clients ignore). Raises on the first problem, including a next certificate
    the planner would refuse to swap in at ``now`` (expired, not valid yet, wrong names, not
    signed by the CA its 2 x x records pin)."""
    from tlsarotate import providers as registry

    when = time.time() if now is None else now
    lines: list[str] = []
    _check_state_dir(cfg)  # a directory that exists or can be created
    if cfg.state.backend == "file":
        from tlsarotate.state import dir_problem

        problem = dir_problem(cfg.state_dir)  # a link, not ours, writable by others
        if problem:
            raise ConfigError(f"{cfg.path}: {problem}")
    for pc in cfg.providers.values():
        try:
            registry.get_class(pc.type).check_files(pc.name, pc.options)
        except TlsarotateError as e:
            raise _option_error(cfg, pc, str(e)) from None
    for s in cfg.services:
        pc = cfg.providers[s.provider]
        try:
            registry.get_class(pc.type).check_service(pc.options, s.zone, s.ttl)
        except TlsarotateError as e:
            key = str(e).partition(": ")[0]
            if key in pc.lines:  # about the provider's option (the zone file it names)
                raise _option_error(cfg, pc, f"{e} (service {s.name!r})") from None
            raise ConfigError(
                f"{cfg.path}: service {s.name!r} (provider {pc.name}, {pc.type}): {e}"
            ) from None
        for slot in s.certificates:
            where = f"service {s.name!r} certificate {slot.name!r}"
            try:
                deployed_link_check(slot.deployed)
                dep = load_cert(slot.deployed)
                nxt = load_cert(slot.next) if slot.next else None
                for p in s.params:
                    records.build(dep, p)
                    if nxt is not None:
                        records.build(nxt, p)
                if slot.next_key is not None and (
                    slot.next_key.path.exists() or slot.next_key.path.is_symlink()
                ):
                    nextkey.load(slot.next_key.path)  # the loader apply uses, same checks
            except TlsarotateError as e:
                raise ConfigError(f"{cfg.path}: {where}: {e}") from None
            notes: list[str] = []
            if nxt is not None and not nxt.same_as(dep):
                usages = {p.usage for p in s.params}
                for u in material.unfit(nxt, when, s.hosts, usages, s.next_min_validity):
                    if u.blocking:
                        raise ConfigError(
                            f"{cfg.path}: {where}: next certificate "
                            f"{slot.next.describe() if slot.next else ''} {u.reason}"
                        )
                    notes.append(f"note: next certificate {u.reason}")
            lines.append(
                f"{s.name}/{slot.name}: deployed {dep.spki_sha256[:16]}… "
                + (f"next {nxt.spki_sha256[:16]}…" if nxt else "no next certificate")
                + "".join(f"; {n}" for n in notes)
            )
    return lines


def _option_error(cfg: Config, pc: ProviderConfig, msg: str) -> ConfigError:
    """Convention: a provider names the option first ("path: ... not found"); the message then
    gets that option's key path and line."""
    key, sep, rest = msg.partition(": ")
    if sep and key in pc.lines:
        return ConfigError(f"{cfg.path}:{pc.lines[key]}: providers.{pc.name}.{key}: {rest}")
    return ConfigError(f"{pc.where or cfg.path}: providers.{pc.name}: {msg}")


def _check_state_dir(cfg: Config) -> None:
    """``state_dir`` must be a directory tlsarotate can write (or create), not a file."""
    if cfg.state.backend != "file":
        return
    d = cfg.state_dir
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the nearest existing ancestor: mkdir -p starts there
    if not probe.is_dir():
        what = "is not a directory" if probe == d else f"cannot be created: {probe} is a file"
        raise ConfigError(f"{cfg.path}: state_dir: {d} {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = d if probe == d else f"{probe} (to create {d})"
        raise ConfigError(f"{cfg.path}: state_dir: {where} is not writable")


def deployed_link_check(paths: CertPaths) -> None:
    """A deployed file may be a symbolic link only to a file in its own directory (a versioned
    ``mx.pem -> mx-2026.pem``): a swap replaces what the config names, and a link into another
    place (certbot's ``live/``, another service's files) would be followed there by every read
    and would make the server follow the ACME client. :class:`ConfigError` in one line."""
    from tlsarotate.swap import STORE

    # a cert + key pair is switched through tlsarotate's versioned store beside the key
    # (swap.py): links into it are the layout tlsarotate itself makes
    store = (
        Path(os.path.realpath(paths.key.parent / STORE / paths.key.name))
        if paths.cert is not None and paths.key is not None
        else None
    )
    for key in ("cert", "key", "combined"):
        p: Path | None = getattr(paths, key)
        if p is None or not p.is_symlink():
            continue
        target = Path(os.path.realpath(p))
        if store is not None and key != "combined" and target.is_relative_to(store):
            continue
        if target.parent != Path(os.path.realpath(p.parent)):
            raise ConfigError(
                f"deployed.{key}: {p} is a symbolic link to {target}, outside its directory; "
                "a deployed path must name tlsarotate's own copy (a link only to a file beside it)"
            )


def load_cert(paths: CertPaths) -> material.Material:
    """Load the Material behind CertPaths, checking that key and certificate belong together."""
    if paths.lineage:
        return material.load_lineage(paths.lineage)
    if paths.combined:
        return material.load_combined(paths.combined)
    assert paths.cert is not None and paths.key is not None
    return material.load_pair(paths.cert, paths.key)
