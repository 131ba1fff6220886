# ruff: noqa: F811
"""check's edge cases: one clear line each, an unreadable next certificate does not hide the rest,
and each port is probed with the right protocol."""

# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles, config, demo, pki, records
from tlsarotate.check import run_check
from tlsarotate.served import ServedChain


def test_check_prometheus_into_a_directory_is_one_line(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=60)
    proc = run_cli("-c", cfg, "check", "--no-live", "--prometheus", tmp_path)
    assert proc.returncode == 3
    assert_one_line_error(proc, "--prometheus", "cannot write")


def test_check_one_unreadable_next_does_not_hide_the_rest(tmp_path: Path) -> None:
    cfg = demo.setup(tmp_path, ttl=60)
    text = cfg.read_text()
    cfg.write_text(
        text.replace("next: {lineage: live/mx.example.test}", "next: {lineage: live/gone}")
    )
    proc = run_cli("-c", cfg, "check", "--no-live", "--output", "json")
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "WARNING", doc["summary"]
    assert any("live/gone" in f["message"] for f in doc["findings"])
    assert doc["services"][0]["owners"], "the DNS part was still checked"


BIND_CFG = """
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {port}
    tsig_key_file: {key}
services:
  - name: mail
    zone: example.test.
    provider: bind
    hosts: [mx.example.test]
    ports: [25, 465]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    certificate:
      deployed: {{cert: c.pem, key: k.pem}}
      verify: {{starttls: smtp, port: 25}}
"""


def test_check_uses_verify_starttls_only_on_its_port(tmp_path: Path, bind: BindServers) -> None:
    leaf = pki.make_leaf(pki.make_ca(), ["mx.example.test"])
    (tmp_path / "c.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    (tmp_path / "config.yaml").write_text(BIND_CFG.format(port=bind.port, key=bind.key_file))
    cfg = config.load(tmp_path / "config.yaml")
    asked: list[tuple[int, str]] = []

    def fake_fetch(
        address: str, port: int, starttls: str, timeout: float, server_name: str | None = None
    ) -> ServedChain:
        asked.append((port, starttls))
        return ServedChain(address, port, starttls, server_name, error="not listening")

    run_check(cfg, timeout=2, fetch=fake_fetch)
    assert sorted(set(asked)) == [(25, "smtp"), (465, "auto")]


LAB_CFG = """
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {port}
    tsig_key_file: {key}
services:
  - name: mail
    zone: example.test.
    provider: bind
    hosts: [mx.example.test]
    ports: [2525]
    nameservers: ["127.0.0.1:{port}", "[::1]:{port}"]
    certificate:
      deployed: {{cert: c.pem, key: k.pem}}
      verify: {{starttls: smtp, port: 2525}}
"""


def test_check_applies_smtp_rules_by_protocol_not_port(tmp_path: Path, bind: BindServers) -> None:
    """SMTP on a lab port (verify.starttls smtp on 2525) is SMTP: a lone 1 1 1 is unusable
    (RFC 7672 §3.1.3) and the endpoint is not protected; the old rule, by port number
    (25/465/587 only), took the 1 1 1 as a match."""
    from tests.support.tls_servers import publish

    ca = pki.make_ca()
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    (tmp_path / "c.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    (tmp_path / "config.yaml").write_text(LAB_CFG.format(port=bind.port, key=bind.key_file))
    m = certfiles.load(tmp_path / "c.pem")
    one = records.to_text(records.build(m, records.parse_params("1 1 1")))
    publish(bind, "example.test.", "_2525._tcp.mx.example.test.", [one])
    cfg = config.load(tmp_path / "config.yaml")
    asked: list[str] = []

    def fetch(
        address: str, port: int, starttls: str, timeout: float, server_name: str | None = None
    ) -> ServedChain:
        asked.append(starttls)
        return ServedChain(address, port, "smtp", server_name, der=m.chain_der)

    rep = run_check(cfg, timeout=2, fetch=fetch)
    assert asked and set(asked) == {"smtp"}
    eps = [ep for s in rep.services for ep in s.endpoints]
    assert eps and all(ep.ok is False for ep in eps), [ep.summary for ep in eps]
    assert all("not used for SMTP" in (ep.summary or "") for ep in eps)
