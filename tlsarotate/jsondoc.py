"""The head every JSON document of the command line starts with: ``"version"``, the integer
version of that document's schema (``schemas/<kind>.schema.json`` in the source), and
``"tool_version"``, the tlsarotate that wrote it. A schema's version goes up when a field is
removed or changes meaning; new fields do not change it."""

from __future__ import annotations

from tlsarotate import __version__

#: document kind -> its schema version (``apply`` prints a ``plan`` document)
SCHEMA_VERSIONS = {
    "check": 1,
    "probe": 1,
    "records": 1,
    "plan": 1,
    "status": 1,
    "validate": 1,
    "import": 1,
}


def head(kind: str) -> dict[str, object]:
    """``{"version": N, "tool_version": "x.y.z"}`` for a document of ``kind``."""
    return {"version": SCHEMA_VERSIONS[kind], "tool_version": __version__}
