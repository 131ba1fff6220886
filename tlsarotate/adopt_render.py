"""``tlsarotate import``'s output: an :class:`~tlsarotate.adopt.Adoption` as the ``services:``
YAML a config file takes (what was confirmed, what the plan would change and every record no
service adopts as comments), or as JSON. Pure: text out, no I/O.

JSON schema (``import --output json``)::

    {"version": 1, "zone": "example.com.", "provider": "bind",
     "services": [{...one services: entry, exactly as in the YAML...}],
     "adopted": [{"service": "mx.example.com", "confirmed_by": ["--deployed ..."],
                  "notes": ["..."]}],
     "unaccounted": [{"owner": "_25._tcp.mx.example.com.", "ttl": 3600,
                      "record": "3 1 1 <hex>", "reason": "...", "service": "..."|null}],
     "warnings": ["..."]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tlsarotate import records
from tlsarotate.adopt import Adoption, Draft, Unaccounted, service_config
from tlsarotate.jsondoc import head


def _scalar(v: Any) -> str:
    """A JSON scalar or flow list: valid YAML, quoted where YAML would guess a type."""
    return json.dumps(v)


def _block(m: Mapping[str, Any], indent: int, first: str = "") -> list[str]:
    """``m`` as a YAML block mapping; ``first`` prefixes its first line (``- ``)."""
    out = []
    pad = " " * indent
    for i, (k, v) in enumerate(m.items()):
        lead = (pad[: -len(first)] + first) if (i == 0 and first) else pad
        if isinstance(v, Mapping) and v:
            out.append(f"{lead}{k}:")
            out += _block(v, indent + 2)
        else:
            out.append(f"{lead}{k}: {_scalar(v)}")
    return out


def _line(u: Unaccounted) -> str:
    return f"{u.owner} {u.ttl} IN TLSA {records.to_text(u.record)} ({u.reason})"


def _comments(d: Draft) -> list[str]:
    out = []
    if d.confirmed_by:
        out.append(f"  # records confirmed by the certificate {', '.join(d.confirmed_by)}")
    else:
        out.append("  # records NOT confirmed: no certificate was given for these hosts")
    if d.deployed is None:
        out.append("  # certificate.deployed: FILL IN the files these hosts serve")
    out += [f"  # plan: {n}" for n in d.notes]
    out += [f"  # unaccounted: {_line(u)}" for u in d.unaccounted]
    return out


def render_yaml(a: Adoption) -> str:
    """The ``services:`` section, with comments; loads as YAML, and validates once merged
    beside the config's ``providers:`` (with every deployed path given)."""
    out = [
        f"# tlsarotate import: zone {a.zone} through provider {a.provider!r}: "
        f"{len(a.services)} service(s)",
        "# add these services to the config beside its providers: section",
    ]
    if not a.services:
        out.append("services: []")
    else:
        out.append("services:")
    for d in a.services:
        out += _comments(d)
        out += _block(service_config(d, a), 4, "- ")
    if a.unaccounted:
        out.append("# unaccounted, at owners no service above manages:")
        out += [f"#   {_line(u)}" for u in a.unaccounted]
    return "\n".join(out) + "\n"


def _unaccounted(u: Unaccounted, service: str | None) -> dict[str, Any]:
    return {
        "owner": u.owner.to_text(),
        "ttl": u.ttl,
        "record": records.to_text(u.record),
        "reason": u.reason,
        "service": service,
    }


def render_json(a: Adoption) -> dict[str, Any]:
    """The JSON document (see the module docstring)."""
    return {
        **head("import"),
        "zone": a.zone.to_text(),
        "provider": a.provider,
        "services": [service_config(d, a) for d in a.services],
        "adopted": [
            {"service": d.name, "confirmed_by": list(d.confirmed_by), "notes": list(d.notes)}
            for d in a.services
        ],
        "unaccounted": [_unaccounted(u, d.name) for d in a.services for u in d.unaccounted]
        + [_unaccounted(u, None) for u in a.unaccounted],
        "warnings": list(a.warnings),
    }
