"""tlsarotate.errors: each error formats its one line from its fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsarotate.errors import ConfigError, TlsarotateError


def test_root_error_is_its_message() -> None:
    e = TlsarotateError("something is wrong")
    assert str(e) == "something is wrong"
    assert e.exit_code == 1


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({}, "bad value"),
        ({"key": "path"}, "path: bad value"),
        ({"file": "/etc/c.yaml"}, "/etc/c.yaml: bad value"),
        ({"file": Path("/etc/c.yaml"), "line": 7}, "/etc/c.yaml:7: bad value"),
        (
            {"file": "/etc/c.yaml", "line": 7, "key": "services[0].ports[1]"},
            "/etc/c.yaml:7: services[0].ports[1]: bad value",
        ),
        ({"file": "/etc/c.yaml", "key": "state_dir"}, "/etc/c.yaml: state_dir: bad value"),
        ({"line": 7, "key": "ttl"}, "ttl: bad value"),  # a line means nothing without its file
        ({"file": "/etc/c.yaml", "key": ""}, "/etc/c.yaml: bad value"),  # "" is no key
    ],
)
def test_config_error_formats_its_fields(fields: dict[str, object], line: str) -> None:
    e = ConfigError("bad value", **fields)  # type: ignore[arg-type]
    assert str(e) == line
    assert isinstance(e, TlsarotateError) and e.exit_code == 1


def test_config_error_keeps_its_fields() -> None:
    e = ConfigError("zone file z not found", file=Path("/etc/c.yaml"), line=4, key="path")
    assert (e.message, e.file, e.line, e.key) == ("zone file z not found", "/etc/c.yaml", 4, "path")
    bare = ConfigError("no service named 'x'")
    assert (bare.file, bare.line, bare.key) == (None, None, None)


def test_a_relocated_error_keeps_the_message() -> None:
    """What validate does with a provider's error: the same message, now at a file and line."""
    raised = ConfigError("zone file z not found", key="path")
    moved = ConfigError(raised.message, file="/c.yaml", line=9, key=f"providers.p.{raised.key}")
    assert str(raised) == "path: zone file z not found"
    assert str(moved) == "/c.yaml:9: providers.p.path: zone file z not found"
