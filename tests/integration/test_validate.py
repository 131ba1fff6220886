"""validate catches what apply would fail on later: a state_dir that is a file, a zone file
that does not parse, a TSIG key file others may read. One line naming the file, exit 1."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tlsarotate import demo


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return demo.setup(tmp_path, ttl=60)


def test_demo_config_validates(cfg: Path) -> None:
    proc = run_cli("-c", cfg, "validate")
    assert proc.returncode == 0, proc.stderr


def test_state_dir_that_is_a_file(cfg: Path) -> None:
    (cfg.parent / "state").write_text("not a directory\n")
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, "state_dir", str(cfg.parent / "state"), "is not a directory")
    # what apply would have said
    assert run_cli("-c", cfg, "apply").returncode == 1


def test_state_dir_below_a_file(cfg: Path) -> None:
    (cfg.parent / "var").write_text("")
    cfg.write_text(cfg.read_text().replace("state_dir: state", "state_dir: var/state"))
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, "state_dir", "cannot be created", "var is a file")


def test_state_dir_not_created_yet_is_fine(cfg: Path) -> None:
    cfg.write_text(cfg.read_text().replace("state_dir: state", "state_dir: a/b/state"))
    assert run_cli("-c", cfg, "validate").returncode == 0
    assert not (cfg.parent / "a").exists()  # validate writes nothing


def test_zone_file_that_does_not_parse(cfg: Path) -> None:
    zone = cfg.parent / "example.test.zone"
    zone.write_text(zone.read_text() + "mx2 IN A 999.1.2.3\n")
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, "providers.local.path", "example.test.zone", "cannot parse")
    assert re.search(r"example\.test\.zone:\d+: ", proc.stderr)  # where in the zone file


def test_zone_file_for_another_origin(cfg: Path) -> None:
    zone = cfg.parent / "example.test.zone"
    zone.write_text(zone.read_text().replace("$ORIGIN example.test.", "$ORIGIN other.test."))
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, "example.test.zone", "cannot parse as zone example.test.")


def test_crlf_zone_file_validates(cfg: Path) -> None:
    zone = cfg.parent / "example.test.zone"
    zone.write_bytes(zone.read_bytes().replace(b"\n", b"\r\n"))
    proc = run_cli("-c", cfg, "validate")
    assert proc.returncode == 0, proc.stderr


RFC2136 = """\
state_dir: state
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    tsig_key_file: tsig.key
services:
  - name: mail
    zone: example.test.
    provider: bind
    hosts: [mx.example.test]
    certificate:
      deployed: {cert: deployed/fullchain.pem, key: deployed/privkey.pem}
      next: {lineage: live/mx.example.test}
"""


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_tsig_key_file_others_may_read_is_refused(cfg: Path, mode: int) -> None:
    key = cfg.parent / "tsig.key"
    secret = base64.b64encode(b"k" * 32).decode()
    key.write_text(f'key "tlsarotate" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n')
    cfg.write_text(RFC2136)
    key.chmod(0o600)
    ok = run_cli("-c", cfg, "validate")
    assert ok.returncode == 0, ok.stderr
    key.chmod(mode)
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(
        proc, "providers.bind.tsig_key_file", str(key), f"mode {mode:03o}", "chmod 600"
    )
    assert secret not in proc.stderr + proc.stdout
