"""The certificate slots of a service (``certificate:`` or ``certificates:``): where the
deployed and the next certificate live, how to reload and verify, the keep-ahead next key."""

from __future__ import annotations

from typing import Any

import yaml

from tlsarotate.config.model import CertPaths, CertSlot, NextKey, Verify
from tlsarotate.config.schema import (
    CERT_PATH_KEYS,
    NEXT_KEY_KEYS,
    SLOT_KEYS,
    STARTTLS,
    VERIFY_KEYS,
)
from tlsarotate.config.yamlnode import YamlFile


def cert_paths(doc: YamlFile, node: yaml.Node, kp: str, lineage_ok: bool) -> CertPaths:
    """Exactly one form: ``cert`` + ``key``, ``combined``, or (``lineage_ok``) ``lineage``."""
    m = doc.mapping(node, kp, CERT_PATH_KEYS)
    if "lineage" in m and not lineage_ok:
        raise doc.err(
            m["lineage"][0],
            f"{kp}.lineage",
            "a certbot lineage is only allowed for next (certbot renews it in place); "
            "give the deployed certificate as cert + key or combined",
        )
    got = {k: doc.path(v, f"{kp}.{k}") for k, (_, v) in m.items()}
    forms = [bool(got.get("cert") or got.get("key")), "combined" in got, "lineage" in got]
    if sum(forms) != 1:
        options = "cert + key, combined" + (" or lineage" if lineage_ok else "")
        raise doc.err(node, kp, f"give exactly one of: {options}")
    if forms[0] and not ("cert" in got and "key" in got):
        missing = "key" if "cert" in got else "cert"
        raise doc.err(
            node, f"{kp}.{missing}", "required with " + ("cert" if missing == "key" else "key")
        )
    return CertPaths(**got)


def verify(doc: YamlFile, node: yaml.Node, kp: str) -> Verify:
    m = doc.mapping(node, kp, VERIFY_KEYS)
    v: dict[str, Any] = {}
    if "starttls" in m:
        s = doc.string(m["starttls"][1], f"{kp}.starttls")
        if s not in STARTTLS:
            raise doc.err(
                m["starttls"][1], f"{kp}.starttls", f"must be one of {', '.join(STARTTLS)}"
            )
        v["starttls"] = s
    if "host" in m:
        v["host"] = doc.string(m["host"][1], f"{kp}.host")
    if "port" in m:
        v["port"] = doc.integer(m["port"][1], f"{kp}.port", 1, 65535, "port")
    if "timeout" in m:
        v["timeout"] = doc.number(m["timeout"][1], f"{kp}.timeout", 0.1, 600, "timeout")
    return Verify(**v)


def slot(doc: YamlFile, node: yaml.Node, kp: str, default_name: str) -> CertSlot:
    m = doc.mapping(node, kp, SLOT_KEYS)
    name = doc.string(m["name"][1], f"{kp}.name") if "name" in m else default_name
    deployed = cert_paths(doc, m["deployed"][1], f"{kp}.deployed", lineage_ok=False)
    nxt = cert_paths(doc, m["next"][1], f"{kp}.next", lineage_ok=True) if "next" in m else None
    reload: tuple[str, ...] = ()
    if "reload" in m:
        reload = doc.sequence(m["reload"][1], f"{kp}.reload", doc.string)
    check = verify(doc, m["verify"][1], f"{kp}.verify") if "verify" in m else None
    reload_timeout = 60.0
    if "reload_timeout" in m:
        reload_timeout = doc.number(
            m["reload_timeout"][1], f"{kp}.reload_timeout", 1, 3600, "timeout"
        )
    next_key = None
    if "next_key" in m:
        next_key = _next_key(doc, m["next_key"][1], f"{kp}.next_key")
        if nxt is not None and nxt.key is not None and nxt.key == next_key.path:
            nnode = m["next"][1]
            at = next((v for k, v in nnode.value if k.value == "key"), nnode)
            raise doc.err(
                at,
                f"{kp}.next.key",
                "must be a copy of the next key taken when the CSR was made, not next_key.path "
                "itself (that file is replaced by a fresh key after the swap)",
            )
    return CertSlot(name, deployed, nxt, reload, check, next_key, reload_timeout)


def _next_key(doc: YamlFile, node: yaml.Node, kp: str) -> NextKey:
    nk = doc.mapping(node, kp, NEXT_KEY_KEYS)
    ktype = "ecdsa-p256"
    if "type" in nk:
        from tlsarotate.pki import KEY_TYPES

        ktype = doc.string(nk["type"][1], f"{kp}.type")
        if ktype not in KEY_TYPES:
            raise doc.err(nk["type"][1], f"{kp}.type", f"must be one of {', '.join(KEY_TYPES)}")
    return NextKey(doc.path(nk["path"][1], f"{kp}.path"), ktype)
