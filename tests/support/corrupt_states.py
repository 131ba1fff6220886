"""Stored state documents a state store must refuse (and rebuild from), one reason each: the
same table for every store (file, S3)."""

from __future__ import annotations

import json

GOOD = {"version": 1, "service": "mx"}


CORRUPT: list[tuple[str, bytes]] = [
    ("not utf-8", b'{"version": 1, "service": "mx\xff\xfe"}'),
    ("a list", b"[]"),
    ("null", b"null"),
    ("a string", b'"mx"'),
    ("not json", b"{not json"),
    ("visible_since text", json.dumps({**GOOD, "visible_since": "abc"}).encode()),
    ("visible_since NaN", b'{"version": 1, "service": "mx", "visible_since": NaN}'),
    ("updated text", json.dumps({**GOOD, "updated": "yesterday"}).encode()),
    ("digest number", json.dumps({**GOOD, "digest": 5}).encode()),
    ("hold_ttl bool", json.dumps({**GOOD, "hold_ttl": True}).encode()),
    ("hold_ttl float", json.dumps({**GOOD, "hold_ttl": 1.5}).encode()),
    ("ttl_seen negative", json.dumps({**GOOD, "ttl_seen": -1}).encode()),
    ("deployed values", json.dumps({**GOOD, "deployed": {"a": 1}}).encode()),
    ("previous list", json.dumps({**GOOD, "previous": ["a"]}).encode()),
    ("retiring string", json.dumps({**GOOD, "retiring": "3 1 1 ab"}).encode()),
    ("retiring numbers", json.dumps({**GOOD, "retiring": [1, 2]}).encode()),
    ("swap list", json.dumps({**GOOD, "swap": []}).encode()),
    ("swap fields", json.dumps({**GOOD, "swap": {"slot": "a"}}).encode()),
    (
        "swap started",
        json.dumps({**GOOD, "swap": {"slot": "a", "fingerprint": "f", "started": "x"}}).encode(),
    ),
    ("service number", json.dumps({"version": 1, "service": 7}).encode()),
    ("no service", json.dumps({"version": 1}).encode()),
    ("unknown field", json.dumps({**GOOD, "surprise": 1}).encode()),
    ("records list", json.dumps({**GOOD, "records": ["3 1 1 ab"]}).encode()),
    ("records bad text", json.dumps({**GOOD, "records": {"_25._tcp.mx.": ["3 1 1 zz"]}}).encode()),
    ("records short digest", json.dumps({**GOOD, "records": {"o.": ["3 1 1 abcd"]}}).encode()),
    ("cached object", json.dumps({**GOOD, "cached": {"records": None}}).encode()),
    ("cached fields", json.dumps({**GOOD, "cached": [{"records": None, "ttl": 5}]}).encode()),
    (
        "cached ttl",
        json.dumps({**GOOD, "cached": [{"records": None, "ttl": "5", "until": None}]}).encode(),
    ),
    (
        "cached until",
        json.dumps({**GOOD, "cached": [{"records": None, "ttl": 5, "until": "x"}]}).encode(),
    ),
    (
        "cached records",
        json.dumps({**GOOD, "cached": [{"records": {"o.": [1]}, "ttl": 5, "until": 1}]}).encode(),
    ),
    ("deep", b"[" * 100_000 + b"]" * 100_000),
]
