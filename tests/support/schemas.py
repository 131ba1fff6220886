"""Validate a JSON document the CLI printed against its checked-in schema (schemas/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from tlsarotate import __version__
from tlsarotate.jsondoc import SCHEMA_VERSIONS

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schema(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    return doc


def validate(kind: str, stdout: str) -> dict[str, Any]:
    """The document ``stdout`` holds, after checking it against ``schemas/KIND.schema.json``
    and that it starts with its schema version and the tool's version."""
    doc: dict[str, Any] = json.loads(stdout)
    s = schema(kind)
    jsonschema.Draft202012Validator.check_schema(s)
    jsonschema.validate(doc, s, cls=jsonschema.Draft202012Validator)
    assert type(doc["version"]) is int and doc["version"] == SCHEMA_VERSIONS[kind]
    assert doc["tool_version"] == __version__
    assert list(doc)[:2] == ["version", "tool_version"]
    return doc
