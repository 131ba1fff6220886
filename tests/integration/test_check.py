"""check (and probe through DNS) against real BIND (primary 127.0.0.1 + secondary ::1, DNSSEC
inline signing), a validating unbound, and aiosmtpd STARTTLS on 127.0.0.1 and ::1."""

# ruff: noqa: F811
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from tests.support.checkworld import (  # noqa: F401
    CHECK_ZONES,
    HOST,
    CheckWorld,
    rec,
    serve,
    spki,
    world,
)
from tests.support.helpers import run_cli
from tests.support.schemas import validate
from tests.support.servers import (  # noqa: F401
    BindServers,
    BindZone,
    Unbound,
    bind,
    bind_servers,
    unbound,
)
from tests.support.tls_servers import (  # noqa: F401
    Chain,
    ServerPool,
    chains,
    make_chain,
    openssl_dane,
    publish,
    servers,
)
from tlsarotate import config, pki
from tlsarotate.check import judge, run_check
from tlsarotate.clock import FakeClock

BIND_ZONES = CHECK_ZONES


def nagios_line(out: str) -> tuple[str, str, dict[str, str]]:
    lines = out.splitlines()
    assert len(lines) == 1, out
    m = re.fullmatch(r"TLSAROTATE (OK|WARNING|CRITICAL|UNKNOWN) - (.+) \| (.+)", lines[0])
    assert m, lines[0]
    perf = dict(item.split("=", 1) for item in m.group(3).split())
    return m.group(1), m.group(2), perf


# ---------------------------------------------------------------------------------------------


def test_all_good_ok_and_nagios_one_line(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    cur = chains("cur")
    w = serve(world, servers, cur)
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    cfg = w.config(cur)
    proc = run_cli("-c", cfg, "check", "--output", "nagios", "--timeout", "5")
    status, text, perf = nagios_line(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert status == "OK" and "2 endpoints pass DANE" in text
    assert perf["endpoints"] == "2" and perf["failing"].split(";")[0] == "0"
    assert perf["unpublished"].split(";")[0] == "0"
    # plugin range syntax: warn BELOW 3 days ("N:"), critical below 0
    # (tests/integration/test_check_outputs.py)
    assert perf["rrsig_expiry"].endswith(f";{judge.RRSIG_WARN_SECONDS}:;0:")

    proc = run_cli("-c", cfg, "check", "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    js = validate("check", proc.stdout)  # live endpoints: against schemas/check.schema.json
    assert js["status"] == "OK" and js["findings"] == []
    (svc,) = js["services"]
    eps = {e["address"]: e for e in svc["endpoints"]}
    assert set(eps) == {"127.0.0.1", "::1"}  # IPv6 loopback probed
    assert all(e["ok"] is True and e["spki_sha256"] == spki(cur) for e in eps.values())
    (own,) = svc["owners"]
    assert own["records"] == [rec(cur)] and own["signed"] is True and own["consistent"]
    assert [s["signed"] for s in own["servers"]] == [True, True]


def test_incident_check_and_probe_exit_2(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain], unbound: Unbound
) -> None:
    """Renewed (valid) certificate deployed and served; DNS still holds only the OLD 3 1 1."""
    old, new = chains("old"), chains("renewed")
    w = serve(world, servers, new)
    publish(w.bind, "example.test.", w.owner, [rec(old)])
    cfg = w.config(new)

    proc = run_cli("-c", cfg, "check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    want = (
        f"no record matches: the leaf's SPKI sha256 is {spki(new)[:12]}…; the published "
        f"3 1 1 {spki(old)[:12]}… belongs to another public key"
    )
    assert want in proc.stdout
    assert f"CRITICAL {w.owner} at [::1]:{w.port}: {want}" in proc.stdout
    assert "TLSAROTATE CRITICAL - 2 of 2 endpoints fail DANE" in proc.stdout

    proc = run_cli("-c", cfg, "check", "--output", "nagios")
    status, text, perf = nagios_line(proc.stdout)
    assert proc.returncode == 2 and status == "CRITICAL"
    assert text.startswith("2 of 2 endpoints fail DANE")
    assert perf["endpoints"] == "2" and perf["failing"].startswith("2")

    # probe, through DNS: authoritative servers, plus the validating resolver's AD bit
    ns = [a for n in w.bind.nameservers for a in ("--nameserver", str(n))]
    proc = run_cli(
        "probe",
        HOST,
        "--port",
        w.port,
        "--starttls",
        "smtp",
        *ns,
        "--resolver",
        f"{unbound.address}:{unbound.port}",
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"FAIL: {want}" in proc.stdout
    assert "2 server(s) answered, servers agree, DNSSEC signed" in proc.stdout
    assert "NOERROR, AD set (validated)" in proc.stdout
    assert "result: 2 of 2 address(es) fail DANE" in proc.stdout
    assert not openssl_dane("::1", w.port, HOST, [rec(old)]).ok  # the oracle agrees

    # the fix: publish the new record; both commands pass
    publish(w.bind, "example.test.", w.owner, [rec(old), rec(new)])
    assert run_cli("-c", cfg, "check").returncode == 0
    proc = run_cli("probe", HOST, "--port", w.port, "--starttls", "smtp", *ns, "--output", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    js = validate("probe", proc.stdout)  # DNS from BIND: against schemas/probe.schema.json
    assert js["tlsa"]["dnssec"] == "signed"
    assert sorted(js["tlsa"]["records"]) == sorted([rec(old), rec(new)])
    assert {a["address"] for a in js["addresses"]} == {"127.0.0.1", "::1"}
    assert all(a["ok"] for a in js["addresses"])


def test_next_gate_no_live(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    cur, nxt = chains("cur"), chains("next")
    w = world
    w.port = 2525  # never connected: --no-live
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    cfg = w.config(cur)
    proc = run_cli("-c", cfg, "check", "--next", nxt.fullchain, "--no-live")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (
        f"deploying {nxt.fullchain} now would break DANE: {w.owner} 3 1 1 {spki(nxt)[:12]}… "
        "is not published on any server"
    ) in proc.stdout
    proc = run_cli("-c", cfg, "check", "--next", nxt.fullchain, "--no-live", "--output", "nagios")
    status, text, _ = nagios_line(proc.stdout)
    assert status == "CRITICAL" and "would break DANE" in text

    # published beside the current record on both servers: the gate passes
    publish(w.bind, "example.test.", w.owner, [rec(cur), rec(nxt)])
    proc = run_cli("-c", cfg, "check", "--next", nxt.fullchain, "--no-live")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all its records are published on every server" in proc.stdout


def test_swap_readiness_and_prometheus(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain], tmp_path: Path
) -> None:
    cur, nxt = chains("cur"), chains("next")
    w = serve(world, servers, cur)
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    cfg = w.config(cur, nxt)
    prom = tmp_path / "tlsarotate.prom"
    proc = run_cli("-c", cfg, "check", "--prometheus", prom)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "safe to swap now: no" in proc.stdout
    assert f"missing: {w.owner} 3 1 1 {spki(nxt)[:12]}… is not published on any server" in (
        proc.stdout
    )
    text = prom.read_text()
    assert "tlsarotate_check_status 0" in text
    assert f'tlsarotate_tlsa_published{{service="mail",owner="{w.owner}"}} 1' in text
    assert f'tlsarotate_tlsa_signed{{service="mail",owner="{w.owner}"}} 1' in text
    for addr in ("127.0.0.1", "::1"):
        assert (
            f'tlsarotate_endpoint_dane_ok{{service="mail",owner="{w.owner}",address="{addr}"}} 1'
        ) in text
    assert 'tlsarotate_next_records_published{service="mail",slot="default"} 0' in text
    exp = int(x509.load_pem_x509_certificate(cur.leaf_pem).not_valid_after_utc.timestamp())
    labels = '{service="mail",slot="default",which="deployed"}'
    assert f"tlsarotate_cert_expiry_timestamp_seconds{labels} {exp}" in text
    assert not list(tmp_path.glob(".tlsarotate.prom.*"))  # atomic: no temp file left

    publish(w.bind, "example.test.", w.owner, [rec(cur), rec(nxt)])
    proc = run_cli("-c", cfg, "check", "--output", "json", "--prometheus", prom)
    js = json.loads(proc.stdout)
    sr = js["services"][0]["certificates"][0]["swap_readiness"]
    # published everywhere, but no rollover state says for how long: not "yes" (safety first)
    assert sr["published"] is True and sr["ready"] is False and sr["missing"] == []
    assert "not known" in sr["detail"]
    assert 'tlsarotate_next_records_published{service="mail",slot="default"} 1' in (
        prom.read_text()
    )


def test_unsigned_zone_is_critical(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    cur = chains("u", hosts=("mx.unsigned.test",))
    w = serve(world, servers, cur)
    owner = f"_{w.port}._tcp.mx.unsigned.test."
    publish(w.bind, "unsigned.test.", owner, [rec(cur)])
    proc = run_cli("-c", w.config(cur, zone="unsigned.test", host="mx.unsigned.test"), "check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "zone unsigned.test. is not DNSSEC-signed: DANE clients ignore its TLSA records" in (
        proc.stdout
    )


def test_expiry_warning_and_unreachable_unknown(
    world: CheckWorld, servers: ServerPool, ca: pki.Issued, tmp_path: Path
) -> None:
    soon = pki.make_leaf(ca, [HOST], days=5)
    (tmp_path / "soon.crt").write_bytes(pki.fullchain_pem(soon, ca))
    (tmp_path / "soon.key").write_bytes(soon.key_pem)
    ch = Chain(soon, (ca,), tmp_path / "soon.crt", tmp_path / "soon.key")
    w = serve(world, servers, ch)
    publish(w.bind, "example.test.", w.owner, [rec(ch)])
    cfg = w.config(ch)
    proc = run_cli("-c", cfg, "check", "--output", "nagios")
    status, text, perf = nagios_line(proc.stdout)
    assert proc.returncode == 1 and status == "WARNING", proc.stdout
    assert "expires in 4d23h and no next certificate is configured" in text
    assert int(perf["cert_expiry"].split("s;")[0]) < 5 * 86400

    for s in list(servers.started):  # the mail server goes away
        servers.stop(s)
    proc = run_cli("-c", cfg, "check", "--output", "nagios", "--timeout", "2")
    status, text, perf = nagios_line(proc.stdout)
    assert proc.returncode == 3 and status == "UNKNOWN", proc.stdout
    assert "connection refused" in text and perf["unknown"] == "2"


def test_rrsig_near_expiry_with_a_controlled_clock(
    world: CheckWorld, chains: Callable[..., Chain]
) -> None:
    cur = chains("cur")
    w = world
    w.port = 2525
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    cfg = config.load(w.config(cur))
    rep = run_check(cfg, live=False, timeout=3)
    assert rep.exit_code == 0, [f.message for f in rep.findings]
    expiry = rep.perf.rrsig_expiry_min_seconds
    assert expiry is not None and expiry > judge.RRSIG_WARN_SECONDS
    late = FakeClock(time.time() + expiry - 2 * 86400)  # ~2 days before the first RRSIG expires
    rep = run_check(cfg, live=False, timeout=3, clock=late)
    assert rep.exit_code == 1
    assert any(re.search(r"an RRSIG expires in (1d23h|2d0h)", f.message) for f in rep.findings), (
        rep.findings
    )
    too_late = FakeClock(time.time() + expiry + 3600)
    rep = run_check(cfg, live=False, timeout=3, clock=too_late)
    assert rep.exit_code == 2
    assert any(re.search(r"an RRSIG expired (59m|1h00m) ago", f.message) for f in rep.findings)


def test_config_error_nagios_unknown(tmp_path: Path) -> None:
    proc = run_cli("-c", tmp_path / "nope.yaml", "check", "--output", "nagios")
    assert proc.returncode == 3
    assert proc.stdout.startswith("TLSAROTATE UNKNOWN - ") and proc.stdout.count("\n") == 1
    assert "nope.yaml" in proc.stdout
    proc = run_cli("-c", tmp_path / "nope.yaml", "check")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
