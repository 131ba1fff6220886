"""Config files for the provider-option tests: a config whose only problem can be its provider
block, ``validate``'s one-line error for it, and the line a key is on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line
from tlsarotate.errors import ConfigError


def write_config(tmp_path: Path, provider_yaml: str) -> Path:
    """A config whose only problem can be the provider block (validated before certificates)."""
    cfg = tmp_path / "tlsarotate.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "providers:\n"
        "  p:\n"
        f"{provider_yaml}"
        "services:\n"
        "  - name: mx\n"
        "    zone: example.test\n"
        "    provider: p\n"
        "    hosts: [mx.example.test]\n"
        '    records: ["3 1 1"]\n'
        "    certificate: {deployed: {cert: /nonexistent.crt, key: /nonexistent.key}}\n"
    )
    return cfg


def validate_error(cfg_path: Path) -> str:
    from tlsarotate import config

    with pytest.raises(ConfigError) as ei:  # option ranges are checked at load already
        config.check_files(config.load(cfg_path))
    return assert_one_line(ei.value)


def line_of(cfg_path: Path, key: str) -> int:
    lines = cfg_path.read_text().splitlines()
    return next(i + 1 for i, ln in enumerate(lines) if ln.strip().startswith(f"{key}:"))
