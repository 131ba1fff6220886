"""Every JSON document the command line prints carries ``version`` (its schema's, an integer)
and ``tool_version``, and validates against its schema in schemas/ -- real outputs of real runs:
the demo's zone-file setup for records/validate/plan/apply/status/check, probe against a real
STARTTLS server (check with live endpoints: tests/integration/test_check.py validates it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.helpers import run_cli
from tests.support.schemas import SCHEMAS, schema, validate
from tests.support.servers import free_port
from tests.support.tls_servers import Chain, ServerPool, chains, servers  # noqa: F401
from tlsarotate import demo
from tlsarotate.jsondoc import SCHEMA_VERSIONS


def test_there_is_a_schema_for_every_kind() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(
        f"{k}.schema.json" for k in SCHEMA_VERSIONS
    )


def test_zonefile_setup_outputs(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=3600)
    cli = ("-c", cfg)
    deployed = tmp_path / "deployed/fullchain.pem"
    rec = run_cli("records", "--output", "json", deployed, tmp_path / "deployed/privkey.pem")
    assert rec.returncode == 0, rec.stderr
    assert len(validate("records", rec.stdout)["records"]) == 3  # a key has no 3 0 1
    own = run_cli("records", "--host", "mx.example.test", "--output", "json", deployed)
    assert validate("records", own.stdout)["records"][0]["owner"] == "_25._tcp.mx.example.test."
    val = run_cli(*cli, "validate", "--output", "json")
    assert validate("validate", val.stdout)["ok"] is True
    plan = run_cli(*cli, "plan", "--output", "json")
    assert validate("plan", plan.stdout)["services"][0]["phase"] == "publish"
    check_before = run_cli(*cli, "check", "--no-live", "--output", "json")
    before = validate("check", check_before.stdout)["services"][0]["certificates"][0]
    assert before["swap_readiness"]["published"] is False
    apply = run_cli(*cli, "apply", "--output", "json")
    assert validate("plan", apply.stdout)["exit"] == 2
    waiting = run_cli(*cli, "plan", "--output", "json")
    assert validate("plan", waiting.stdout)["exit"] == 4
    status = run_cli(*cli, "status", "--output", "json")
    doc = validate("status", status.stdout)
    assert doc["services"][0]["cached"] and doc["services"][0]["ready_at"]
    check = run_cli(*cli, "check", "--no-live", "--output", "json")
    assert validate("check", check.stdout)["services"][0]["certificates"][0]["next"]
    gate = run_cli(*cli, "check", "--no-live", "--next", deployed, "--output", "json")
    assert validate("check", gate.stdout)["next_gate"]["ok"] is True
    broken = run_cli("-c", tmp_path / "missing.yaml", "check", "--output", "json")
    assert broken.returncode == 3
    assert validate("check", broken.stdout)["error"]


def test_probe(
    tmp_path: Path,
    servers: ServerPool,  # noqa: F811
    chains: Callable[..., Chain],  # noqa: F811
) -> None:
    served = chains("srv", hosts=("localhost",))
    srv = servers.smtpd(served)
    tlsa = tmp_path / "tlsa.txt"
    tlsa.write_text(run_cli("records", "--params", "3 1 1", served.fullchain).stdout)
    saved = tmp_path / "saved"
    saved.mkdir()
    probe = run_cli("probe", "localhost", "--port", str(srv.port), "--starttls", "smtp",
                    "--tlsa-from", tlsa, "--save-chain", saved, "--output", "json")  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    doc = validate("probe", probe.stdout)
    assert doc["addresses"] and all(a["chain"] and a["verdicts"] for a in doc["addresses"])
    unreachable = run_cli("probe", "localhost", "--port", str(free_port()), "--starttls", "none",
                          "--tlsa-from", tlsa, "--timeout", "2", "--output", "json")  # fmt: skip
    assert unreachable.returncode == 1
    assert validate("probe", unreachable.stdout)["addresses"][0]["error"]


@pytest.mark.parametrize("kind", sorted(SCHEMA_VERSIONS))
def test_every_schema_requires_the_versions(kind: str) -> None:
    s = schema(kind)
    assert "version" in s["required"] and "tool_version" in s["required"]
    assert s["properties"]["version"]["const"] == SCHEMA_VERSIONS[kind]
