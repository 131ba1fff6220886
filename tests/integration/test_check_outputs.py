"""check's monitoring outputs against independent readers and real servers.

- Nagios perfdata: every threshold check emits is evaluated with ``nagiosplugin`` (a well-kept
  implementation of the plugin range syntax) below, at and above its boundary, and must alert
  exactly when check's own status logic does -- driven through real BIND with a controlled
  clock at the boundaries, and through the CLI.
- Unknown is not a number: with a real unreachable nameserver (a closed port on 127.0.0.1)
  nothing says "published" (Prometheus, Nagios, JSON), and an endpoint is not "DANE ok".
- Every output format (text, json, nagios, the --prometheus file) reports UNKNOWN, exit 3, when
  the check cannot run (a broken config through the real CLI; a bug).
"""

# ruff: noqa: F811
from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import nagiosplugin
import pytest
from cryptography import x509

from tests.support.checkworld import CHECK_ZONES, HOST, CheckWorld, rec, serve
from tests.support.helpers import run_cli
from tests.support.schemas import validate
from tests.support.servers import BindServers, bind, bind_servers, free_port  # noqa: F401
from tests.support.tls_servers import (  # noqa: F401
    Chain,
    ServerPool,
    chains,
    publish,
    servers,
)
from tlsarotate import __version__, check, config, material, pki
from tlsarotate.check import judge, render_nagios, render_prometheus
from tlsarotate.check.report import CheckReport
from tlsarotate.clock import FakeClock
from tlsarotate.config import Nameserver
from tlsarotate.dnslookup import nameserver_observer
from tlsarotate.observation import Observer
from tlsarotate.providers.base import Provider

CERT = judge.CERT_WARN_SECONDS
RRSIG = judge.RRSIG_WARN_SECONDS
NAGIOS = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

BIND_ZONES = CHECK_ZONES


# --- an independent reader of Nagios perfdata ------------------------------------------------


def parse_nagios(out: str) -> tuple[int, dict[str, tuple[float, str, str, str]]]:
    """(status code, {label: (value, uom, warn, crit)}) of a one-line plugin output."""
    lines = out.splitlines()
    assert len(lines) == 1, out
    m = re.fullmatch(r"TLSAROTATE (OK|WARNING|CRITICAL|UNKNOWN) - (.+?)(?: \| (.*))?", lines[0])
    assert m, lines[0]
    perf: dict[str, tuple[float, str, str, str]] = {}
    for item in (m.group(3) or "").split():
        label, _, rest = item.partition("=")
        fields = [*rest.split(";"), "", "", "", ""][:5]
        vm = re.fullmatch(r"(-?[0-9.]+)([a-zA-Z%]*)", fields[0])
        assert vm, item
        perf[label] = (float(vm.group(1)), vm.group(2), fields[1], fields[2])
    return NAGIOS[m.group(1)], perf


def oracle(value: float, warn: str, crit: str) -> int:
    """The state nagiosplugin gives ``value`` under these thresholds (an empty threshold: none,
    as the guidelines say; nagiosplugin would read "" as "0:")."""
    ctx = nagiosplugin.ScalarContext(
        "x", nagiosplugin.Range(warn or "~:"), nagiosplugin.Range(crit or "~:")
    )
    state: int = ctx.evaluate(nagiosplugin.Metric("x", value), None).state.code
    return state


def perf_state(perf: dict[str, tuple[float, str, str, str]]) -> int:
    """The worst state the perfdata alone implies (what a threshold-reading tool would show)."""
    return max((oracle(v, w, c) for v, _, w, c in perf.values()), default=0)


# check's own status rules (tlsarotate/check/judge.py: _dns_findings, judge, _deployed_findings,
# _judge_endpoint): the value each perfdata label carries -> the status check gives it
RULES: dict[str, Callable[[int], int]] = {
    "failing": lambda n: 2 if n >= 1 else 0,  # each failing endpoint is a CRITICAL finding
    "unpublished": lambda n: 2 if n >= 1 else 0,  # each such owner is a CRITICAL finding
    "warnings": lambda n: 1 if n >= 1 else 0,
    "criticals": lambda n: 2 if n >= 1 else 0,
    "broken_aliases": lambda n: 2 if n >= 1 else 0,  # each is a CRITICAL finding (judge_alias)
    "cert_expiry": lambda s: 1 if s < CERT else 0,  # even expired: WARNING (no next one)
    "rrsig_expiry": lambda s: 2 if s < 0 else (1 if s < RRSIG else 0),
    # each configured key type an endpoint refuses is a CRITICAL finding
    "key_types_missing": lambda n: 2 if n >= 1 else 0,
}
BOUNDARIES = {
    "failing": [1],
    "unpublished": [1],
    "warnings": [1],
    "criticals": [1],
    "broken_aliases": [1],
    "cert_expiry": [CERT, 0],
    "rrsig_expiry": [RRSIG, 0],
    "key_types_missing": [1],
}


def test_every_threshold_alerts_exactly_where_check_does() -> None:
    """Each (warn, crit) in PERF_THRESHOLDS, read by nagiosplugin, below/at/above every
    boundary of check's rule. The old ``cert_expiry;1209600`` warned at 15 days, the old
    ``rrsig_expiry;259200;0`` was CRITICAL at any positive value, ``failing;;1`` was OK at 1."""
    assert set(render_nagios.PERF_THRESHOLDS) == set(RULES)
    for label, (warn, crit) in render_nagios.PERF_THRESHOLDS.items():
        counts = label not in ("cert_expiry", "rrsig_expiry")
        for b in BOUNDARIES[label]:
            for v in (b - 1, b, b + 1):
                if counts and v < 0:
                    continue
                assert oracle(v, warn, crit) == RULES[label](v), (label, warn, crit, v)


# --- thresholds against check's status, through real BIND ------------------------------------


@pytest.fixture
def world(bind: BindServers, servers: ServerPool, tmp_path: Path) -> Iterator[CheckWorld]:
    yield CheckWorld(bind, 2525, tmp_path)  # --no-live unless a test serves


def assert_perf_agrees(rep: CheckReport, label: str, value: int) -> None:
    status, perf = parse_nagios(render_nagios.render(rep))
    assert status == rep.exit_code < 3, [f.message for f in rep.findings]
    v, uom, warn, crit = perf[label]
    assert (v, uom) == (value, "s"), perf[label]
    assert oracle(v, warn, crit) == rep.exit_code, (label, v, warn, crit, rep.findings)
    assert perf_state(perf) == rep.exit_code, perf


def test_rrsig_expiry_perfdata_at_its_boundaries(
    world: CheckWorld, chains: Callable[..., Chain]
) -> None:
    cur = chains("cur")  # valid 30 days: longer than the zone's RRSIGs
    publish(world.bind, "example.test.", world.owner, [rec(cur)])
    cfg = config.load(world.config(cur))
    rep = check.run_check(cfg, live=False, timeout=3)
    assert rep.exit_code == 0, [f.message for f in rep.findings]
    obs = rep.services[0].observation
    assert obs is not None
    expiry = min(s.min_rrsig_expiry for s in obs.servers if s.min_rrsig_expiry is not None)
    seen = set()
    for left in (RRSIG + 1, RRSIG, RRSIG - 1, 1, 0, -1):
        rep = check.run_check(cfg, live=False, timeout=3, clock=FakeClock(expiry - left))
        assert_perf_agrees(rep, "rrsig_expiry", left)
        assert rep.perf.rrsig_expiry_min_seconds == left
        seen.add(rep.exit_code)
    assert seen == {0, 1, 2}
    # half a second after expiry is expired (CRITICAL), and the perfdata must say so too
    rep = check.run_check(cfg, live=False, timeout=3, clock=FakeClock(expiry + 0.5))
    assert rep.exit_code == 2
    assert_perf_agrees(rep, "rrsig_expiry", -1)


def test_cert_expiry_perfdata_at_its_boundary(
    world: CheckWorld, ca: pki.Issued, tmp_path: Path, chains: Callable[..., Chain]
) -> None:
    leaf = pki.make_leaf(ca, [HOST], days=15)  # the 14-day boundary is 1 day away
    (tmp_path / "short.crt").write_bytes(pki.fullchain_pem(leaf, ca))
    (tmp_path / "short.key").write_bytes(leaf.key_pem)
    short = Chain(leaf, (ca,), tmp_path / "short.crt", tmp_path / "short.key")
    publish(world.bind, "example.test.", world.owner, [rec(short)])
    cfg = config.load(world.config(short))
    leaf_m = material.parse(short.fullchain.read_bytes(), short.fullchain)
    assert leaf_m.leaf is not None
    not_after = leaf_m.leaf.not_valid_after_utc.timestamp()
    for left in (CERT + 1, CERT, CERT - 1):
        rep = check.run_check(cfg, live=False, timeout=3, clock=FakeClock(not_after - left))
        assert rep.exit_code == (1 if left < CERT else 0), [f.message for f in rep.findings]
        assert_perf_agrees(rep, "cert_expiry", left)

    # with a next certificate on its way, an expiring deployed one is not a warning: the
    # perfdata must not alert either (cert_expiry counts certificates without a next one)
    nxt = chains("next")
    cfg = config.load(world.config(short, nxt, name="next.yaml"))
    rep = check.run_check(cfg, live=False, timeout=3, clock=FakeClock(not_after - CERT + 1))
    assert rep.exit_code == 0, [f.message for f in rep.findings]
    status, perf = parse_nagios(render_nagios.render(rep))
    assert status == 0 and perf_state(perf) == 0 and "cert_expiry" not in perf, perf
    assert rep.perf.cert_expiry_min_seconds == CERT - 1  # JSON still tells the earliest
    assert rep.perf.cert_expiry_no_next_min_seconds is None


def test_count_thresholds_through_the_cli(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    """The incident (records of the old key only, the renewed certificate served): 1 owner
    unpublished, 2 endpoints failing. The old ``unpublished=1;;1`` did not alert at 1."""
    old, new = chains("old"), chains("renewed")
    w = serve(world, servers, new)
    publish(w.bind, "example.test.", w.owner, [rec(old)])
    proc = run_cli("-c", w.config(new), "check", "--output", "nagios", "--timeout", "5")
    status, perf = parse_nagios(proc.stdout)
    assert proc.returncode == status == 2, proc.stdout + proc.stderr
    for label, value in (("unpublished", 1), ("failing", 2), ("criticals", 3)):
        v, _, warn, crit = perf[label]
        assert v == value and oracle(v, warn, crit) == 2, (label, perf[label], proc.stdout)
    assert perf_state(perf) == 2

    publish(w.bind, "example.test.", w.owner, [rec(old), rec(new)])
    proc = run_cli("-c", w.config(new), "check", "--output", "nagios", "--timeout", "5")
    status, perf = parse_nagios(proc.stdout)
    assert proc.returncode == status == 0, proc.stdout + proc.stderr
    assert perf["unpublished"][0] == perf["failing"][0] == perf["criticals"][0] == 0
    assert perf_state(perf) == 0


# --- unknown is not a number -----------------------------------------------------------------


def with_nameservers(cfg: Path, *ns: str) -> Path:
    text = re.sub(
        r"(?m)^    nameservers: \[.*\]$", f"    nameservers: [{', '.join(ns)}]", cfg.read_text()
    )
    cfg.write_text(text)
    return cfg


def samples(prom: str, name: str) -> list[str]:
    return [line for line in prom.splitlines() if re.match(rf"{name}[{{ ]", line)]


def test_unreachable_nameserver_is_not_published(
    world: CheckWorld, chains: Callable[..., Chain], tmp_path: Path
) -> None:
    """The only nameserver is a closed port: status 3, and nothing claims the records are
    published (the old textfile said ``tlsarotate_tlsa_published 1``, nagios ``unpublished=0``)."""
    cur, nxt = chains("cur"), chains("next")
    closed = free_port(udp=True)
    cfg = with_nameservers(world.config(cur, nxt), f'"127.0.0.1:{closed}"')
    prom = tmp_path / "check.prom"
    args = ("-c", cfg, "check", "--no-live", "--timeout", "1", "--prometheus", prom)
    proc = run_cli(*args)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "TLSAROTATE UNKNOWN" in proc.stdout
    text = prom.read_text()
    assert "tlsarotate_check_status 3" in text
    assert samples(text, "tlsarotate_tlsa_published") == [], text
    assert samples(text, "tlsarotate_tlsa_signed") == [], text
    assert samples(text, "tlsarotate_next_records_published") == [], text
    assert samples(text, "tlsarotate_tlsa_observed") == [
        f'tlsarotate_tlsa_observed{{service="mail",owner="{world.owner}"}} 0'
    ]

    proc = run_cli(*args[:-2], "--output", "nagios")
    status, perf = parse_nagios(proc.stdout)
    assert proc.returncode == status == 3, proc.stdout
    assert "unpublished" not in perf, perf

    proc = run_cli(*args[:-2], "--output", "json")
    js = json.loads(proc.stdout)
    assert proc.returncode == 3 and js["status"] == "UNKNOWN"
    assert js["perfdata"]["unpublished"] is None
    (own,) = js["services"][0]["owners"]
    assert own["records"] is None and own["consistent"] is None and own["signed"] is None, own


def test_one_server_unreachable_published_is_absent_or_a_seen_zero(
    world: CheckWorld, chains: Callable[..., Chain], tmp_path: Path
) -> None:
    """BIND answers, a second nameserver does not: good records there are not "published
    everywhere" (absent), records seen failing there are a definite 0."""
    old, cur = chains("old"), chains("cur")
    closed = free_port(udp=True)
    cfg = with_nameservers(
        world.config(cur), f'"127.0.0.1:{world.bind.port}"', f'"127.0.0.1:{closed}"'
    )
    prom = tmp_path / "check.prom"
    publish(world.bind, "example.test.", world.owner, [rec(cur)])
    proc = run_cli("-c", cfg, "check", "--no-live", "--timeout", "1", "--prometheus", prom)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    text = prom.read_text()
    assert samples(text, "tlsarotate_tlsa_published") == [], text
    assert f'tlsarotate_tlsa_observed{{service="mail",owner="{world.owner}"}} 0' in text

    publish(world.bind, "example.test.", world.owner, [rec(old)])
    proc = run_cli("-c", cfg, "check", "--no-live", "--timeout", "1", "--prometheus", prom)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    text = prom.read_text()
    assert samples(text, "tlsarotate_tlsa_published") == [
        f'tlsarotate_tlsa_published{{service="mail",owner="{world.owner}"}} 0'
    ]


def test_endpoint_is_not_dane_ok_when_no_nameserver_answers(
    world: CheckWorld, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    """The zone's authoritative servers are all unreachable (the observer asks a closed port)
    while the endpoint's addresses still resolve (through BIND): its TLSA records are unknown,
    so it is not "DANE ok" (it was: no RRset to fail against counted as a pass)."""
    cur = chains("cur")
    w = serve(world, servers, cur)
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    cfg = config.load(w.config(cur))
    closed = free_port(udp=True)

    def observer_for(
        s: config.Service, provider: Callable[[], Provider], timeout: float
    ) -> Observer:
        return nameserver_observer([Nameserver("127.0.0.1", closed)], timeout)

    rep = check.run_check(cfg, timeout=2, observer_for=observer_for)
    assert rep.exit_code == 3, [f.message for f in rep.findings]
    eps = rep.services[0].endpoints
    assert {ep.endpoint.address for ep in eps} == {"127.0.0.1", "::1"}
    for ep in eps:
        assert ep.endpoint.served.ok  # the endpoint itself answered
        assert ep.ok is None and ep.summary == "TLSA records unknown (DNS not observed)"
    text = render_prometheus.render(rep)
    assert samples(text, "tlsarotate_endpoint_dane_ok") == [], text
    assert len(samples(text, "tlsarotate_endpoint_up")) == 2
    assert rep.perf.unknown == 2 and rep.perf.failing == 0


# --- every format says UNKNOWN when the check cannot run --------------------------------------


@pytest.mark.parametrize("broken", ["missing", "bad-yaml"])
def test_config_error_is_unknown_in_every_format(tmp_path: Path, broken: str) -> None:
    cfg = tmp_path / "config.yaml"
    if broken == "bad-yaml":
        cfg.write_text("services: [\n")
    prom = tmp_path / "check.prom"
    prom.write_text("tlsarotate_check_status 0\n")  # the last good run
    for output in ("text", "json", "nagios"):
        proc = run_cli("-c", cfg, "check", "--output", output, "--prometheus", prom)
        assert proc.returncode == 3, (output, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        if output == "json":
            js = validate("check", proc.stdout)
            assert js["status"] == "UNKNOWN" and js["exit"] == 3, js
            assert js["version"] == 1 and js["tool_version"] == __version__
            assert "config.yaml" in js["error"] and "\n" not in js["error"]
            assert js["summary"] == js["error"]
            assert [f["severity"] for f in js["findings"]] == ["UNKNOWN"]
            assert js["services"] == [] and js["perfdata"] is None
        else:
            status, perf = parse_nagios(proc.stdout)
            assert status == 3 and perf == {} and "config.yaml" in proc.stdout
        if output != "nagios":
            err = proc.stderr.strip().splitlines()
            assert len(err) == 1 and "config.yaml" in err[0], proc.stderr
        text = prom.read_text()
        assert samples(text, "tlsarotate_check_status") == ["tlsarotate_check_status 3"], text
        prom.write_text("tlsarotate_check_status 0\n")


def test_a_bug_is_unknown_not_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception inside the check (fault injected into run_check) must not exit 1
    (WARNING to Nagios) with a traceback: UNKNOWN, 3, in the chosen format."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("services: []\n")

    def boom(*a: object, **k: object) -> CheckReport:
        raise KeyError("oops")

    monkeypatch.setattr(check, "run_check", boom)
    monkeypatch.setattr(config, "load", lambda path: None)
    for output in ("json", "nagios"):
        args = argparse.Namespace(
            config=str(cfg),
            service=None,
            next=None,
            no_live=True,
            timeout=1.0,
            output=output,
            prometheus=str(tmp_path / "c.prom"),
        )
        assert check.cmd_check(args) == 3
        out = capsys.readouterr().out
        if output == "json":
            assert json.loads(out)["error"] == "internal error: KeyError: 'oops'"
        else:
            assert out == "TLSAROTATE UNKNOWN - internal error: KeyError: 'oops'\n"
        prom = (tmp_path / "c.prom").read_text()
        assert samples(prom, "tlsarotate_check_status") == ["tlsarotate_check_status 3"]


# --- names and units -------------------------------------------------------------------------


def test_metric_names_timestamps_and_json_version(
    world: CheckWorld, chains: Callable[..., Chain], tmp_path: Path
) -> None:
    cur = chains("cur")
    publish(world.bind, "example.test.", world.owner, [rec(cur)])
    prom = tmp_path / "check.prom"
    proc = run_cli(
        "-c", world.config(cur), "check", "--no-live", "--output", "json", "--prometheus", prom
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    js = validate("check", proc.stdout)
    assert js["version"] == 1 and js["tool_version"] == __version__ and js["error"] is None
    exp = int(x509.load_pem_x509_certificate(cur.leaf_pem).not_valid_after_utc.timestamp())
    text = prom.read_text()
    labels = '{service="mail",slot="default",which="deployed"}'
    assert f"tlsarotate_cert_expiry_timestamp_seconds{labels} {exp}" in text
    assert "tlsarotate_cert_expiry_seconds" not in text  # the old name (a timestamp) is gone
    assert "# TYPE tlsarotate_cert_expiry_timestamp_seconds gauge" in text
    for name in ("published", "signed", "observed"):
        assert f'tlsarotate_tlsa_{name}{{service="mail",owner="{world.owner}"}} 1' in text
    # every metric holding a Unix time says so in its name
    for line in text.splitlines():
        if line.startswith("tlsarotate_") and float(line.rsplit(" ", 1)[1]) > 1e9:
            name = line.split("{")[0].split(" ")[0]
            assert name.endswith("_timestamp_seconds"), name


def test_published_and_signed_are_separate_gauges(
    world: CheckWorld, chains: Callable[..., Chain], tmp_path: Path
) -> None:
    """Records that accept the deployed certificate, in a zone that is not signed: the
    RRSIG problem is ``tlsarotate_tlsa_signed 0``; ``tlsarotate_tlsa_published`` stays 1, as
    nagios says ``unpublished=0`` and JSON ``unpublished: 0`` in the same check (it was 0:
    every CRITICAL finding on the owner counted as "not published", the missing RRSIG too)."""
    cur = chains("u", hosts=("mx.unsigned.test",))
    world.port = 2525
    owner = "_2525._tcp.mx.unsigned.test."
    publish(world.bind, "unsigned.test.", owner, [rec(cur)])
    cfg = world.config(cur, zone="unsigned.test", host="mx.unsigned.test")
    prom = tmp_path / "check.prom"
    proc = run_cli("-c", cfg, "check", "--no-live", "--prometheus", prom, "--output", "nagios")
    status, perf = parse_nagios(proc.stdout)
    assert proc.returncode == status == 2, proc.stdout  # unsigned: CRITICAL
    assert perf["unpublished"][0] == 0, perf
    text = prom.read_text()
    assert samples(text, "tlsarotate_tlsa_signed") == [
        f'tlsarotate_tlsa_signed{{service="mail",owner="{owner}"}} 0'
    ], text
    assert samples(text, "tlsarotate_tlsa_published") == [
        f'tlsarotate_tlsa_published{{service="mail",owner="{owner}"}} 1'
    ], text
    js = json.loads(run_cli("-c", cfg, "check", "--no-live", "--output", "json").stdout)
    assert js["perfdata"]["unpublished"] == 0, js["perfdata"]
