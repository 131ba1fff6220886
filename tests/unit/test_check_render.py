"""check's renderers: one typed report, rendered in every format, read back by structure."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import dns.name

from tlsarotate import records
from tlsarotate.change import TlsaRRset
from tlsarotate.check import render_json, render_nagios, render_prometheus, render_text
from tlsarotate.check.facts import Endpoint
from tlsarotate.check.report import (
    CRITICAL,
    UNKNOWN,
    WARNING,
    CertInfo,
    CertReport,
    CheckReport,
    EndpointReport,
    Finding,
    NextGate,
    OwnerReport,
    PerfData,
    ServiceReport,
    SwapReadiness,
)
from tlsarotate.config import CertPaths, CertSlot, Service
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.served import ServedChain

NOW = 1_800_000_000.0
ZONE = dns.name.from_text("example.test.")
OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
NAME = 'ma"il\\x'  # a label value that must be escaped in the textfile
RD = records.from_text("3 1 1 " + "ab" * 32)


def report() -> CheckReport:
    slot = CertSlot("default", CertPaths(cert=Path("/etc/c.pem"), key=Path("/etc/k.pem")), None)
    svc = Service(
        NAME,
        ZONE,
        "p",
        ("mx.example.test",),
        (25,),
        "tcp",
        300,
        (records.parse_params("3 1 1"),),
        (slot,),
    )
    obs = Observation(
        ZONE,
        (
            ServerAnswer(
                "ns1",
                "192.0.2.1",
                rrsets={OWNER: TlsaRRset.of(300, [RD])},
                signed={OWNER: True},
                min_rrsig_expiry=NOW + 86400,
            ),
            ServerAnswer("ns2", "192.0.2.2", error="timeout after 3s"),
        ),
        zone_signed=True,
    )
    up = Endpoint(
        NAME,
        "mx.example.test.",
        25,
        OWNER,
        "192.0.2.25",
        "smtp",
        ServedChain("192.0.2.25", 25, "smtp", der=(b"not a certificate",)),
    )
    down = Endpoint(
        NAME,
        "mx.example.test.",
        25,
        OWNER,
        "2001:db8::25",
        "smtp",
        ServedChain("2001:db8::25", 25, "smtp", error="connection refused", unreachable=True),
    )
    readiness = SwapReadiness(False, False, ("x is not published on ns2",), "1 record(s) missing")
    cert = CertReport(
        "default",
        CertInfo("/etc/c.pem", "cd" * 32, NOW + 10 * 86400),
        CertInfo("/etc/n.pem", "ef" * 32, None),
        readiness,
    )
    findings = (
        Finding(UNKNOWN, NAME, "ns2: timeout after 3s"),
        Finding(CRITICAL, NAME, "a | pipe", owner=OWNER.to_text()),
        Finding(WARNING, NAME, "soon"),
    )
    svc_rep = ServiceReport(
        svc,
        obs,
        None,
        False,
        (OwnerReport(OWNER, False, None),),
        (EndpointReport(up, False, "fails"), EndpointReport(down, None, "connection refused")),
        (cert,),
    )
    perf = PerfData(2, 1, 1, 1, None, 1, 1, 10 * 86400, 10 * 86400, 86400)
    return CheckReport(NOW, (svc_rep,), findings, NextGate("/n.pem", False, ("m",)), perf)


def test_json_parses_with_the_documented_keys() -> None:
    rep = report()
    doc = json.loads(render_json.render(rep))
    err = render_json.error_json("boom", NOW)
    assert set(doc) == set(err)  # one key set, ran or not
    assert (doc["status"], doc["exit"], doc["error"]) == ("CRITICAL", 2, None)
    assert doc["summary"] == rep.summary() and "|" not in doc["summary"]
    assert [f["severity"] for f in doc["findings"]] == ["UNKNOWN", "CRITICAL", "WARNING"]
    assert set(doc["findings"][1]) == {"severity", "service", "owner", "address", "message"}
    assert list(doc["perfdata"]) == [f.name for f in dataclasses.fields(PerfData)]
    assert doc["perfdata"]["unpublished"] is None  # not known: null, never 0
    assert doc["tlsrpt"] is None and doc["perfdata"]["tlsrpt_failed"] is None  # not configured
    (svc,) = doc["services"]
    assert list(svc) == ["name", "zone", "owners", "endpoints", "certificates", "aliases"]
    (own,) = svc["owners"]
    assert list(own) == ["owner", "records", "servers", "consistent", "signed", "rrsig_expiry"]
    assert own["records"] == [records.to_text(RD)] and own["signed"] is None
    assert [s["records"] for s in own["servers"]] == [[records.to_text(RD)], None]
    assert [e["ok"] for e in svc["endpoints"]] == [False, None]
    assert svc["endpoints"][0]["host"] == "mx.example.test"
    assert set(svc["endpoints"][0]) == {
        "host",
        "port",
        "owner",
        "address",
        "ok",
        "error",
        "summary",
        "spki_sha256",
        "key_type",
    }
    (c,) = svc["certificates"]
    assert list(c) == ["slot", "deployed", "next", "swap_readiness"]
    assert list(c["deployed"]) == [
        "file",
        "spki_sha256",
        "not_after",
        "not_after_unix",
        "expires_in_seconds",
    ]
    assert c["deployed"]["expires_in_seconds"] == 10 * 86400
    assert c["next"]["not_after"] is None and c["next"]["not_after_unix"] is None
    assert c["swap_readiness"] == {
        "ready": False,
        "published": False,
        "missing": ["x is not published on ns2"],
        "detail": "1 record(s) missing",
    }
    assert doc["next_gate"] == {"file": "/n.pem", "ok": False, "missing": ["m"]}


SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>-?[0-9.e+]+)"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_textfile(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition; every metric declared (HELP, TYPE gauge)
    before its samples, every label value unescaped."""
    assert text.endswith("\n")
    declared: dict[str, list[str]] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name, rest = line[2:].split(" ", 2)
            declared.setdefault(name, []).append(kind)
            assert kind in ("HELP", "TYPE") and (kind == "HELP" or rest == "gauge"), line
            continue
        m = SAMPLE.fullmatch(line)
        assert m, line
        assert declared.get(m["name"]) == ["HELP", "TYPE"], line
        raw = m["labels"] or ""
        pairs = LABEL.findall(raw)
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == raw, line
        labels = {k: re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e[1], e[1]), v) for k, v in pairs}
        samples.append((m["name"], labels, float(m["value"])))
    return samples


def test_prometheus_lines_parse() -> None:
    samples = parse_textfile(render_prometheus.render(report()))
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))
    assert by_name["tlsarotate_check_status"] == [({}, 2.0)]
    assert by_name["tlsarotate_check_timestamp_seconds"] == [({}, NOW)]
    own = {"service": NAME, "owner": OWNER.to_text()}
    assert by_name["tlsarotate_tlsa_observed"] == [(own, 0.0)]
    assert by_name["tlsarotate_tlsa_published"] == [(own, 0.0)]  # seen failing: a definite 0
    assert "tlsarotate_tlsa_signed" not in by_name  # not known: absent
    assert [v for _, v in by_name["tlsarotate_endpoint_up"]] == [1.0, 0.0]
    assert by_name["tlsarotate_endpoint_dane_ok"] == [
        ({**own, "address": "192.0.2.25"}, 0.0)  # the unreachable one: absent
    ]
    assert by_name["tlsarotate_cert_expiry_timestamp_seconds"] == [
        ({"service": NAME, "slot": "default", "which": "deployed"}, NOW + 10 * 86400)
    ]
    assert "tlsarotate_next_records_published" not in by_name  # a server did not answer
    unknown = parse_textfile(render_prometheus.render_unknown(NOW))
    assert [(n, v) for n, _, v in unknown] == [
        ("tlsarotate_check_status", 3.0),
        ("tlsarotate_check_timestamp_seconds", NOW),
    ]


NAGIOS = re.compile(r"TLSAROTATE (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+) \| (.*)\n")
PERF = re.compile(r"([a-z_]+)=(-?\d+)(s?)(?:;([0-9:]*)(?:;([0-9:]*))?)?")


def test_nagios_one_line_with_perfdata() -> None:
    rep = report()
    out = render_nagios.render(rep)
    m = NAGIOS.fullmatch(out)
    assert m, out
    assert m[1] == "CRITICAL" and m[2] == rep.summary() and "a / pipe" in m[2]
    perf = {}
    for item in m[3].split(" "):
        pm = PERF.fullmatch(item)
        assert pm, item
        perf[pm[1]] = (int(pm[2]), pm[3], pm[4] or "", pm[5] or "")
    assert "unpublished" not in perf  # not known: left out, never guessed
    assert perf["failing"] == (1, "", "", "0")
    assert perf["cert_expiry"] == (10 * 86400, "s", *render_nagios.PERF_THRESHOLDS["cert_expiry"])
    assert perf["rrsig_expiry"][:2] == (86400, "s")
    assert render_nagios.render_unknown("x | y") == "TLSAROTATE UNKNOWN - x / y\n"


def test_text_ends_in_the_status_line() -> None:
    rep = report()
    lines = render_text.render(rep).splitlines()
    assert lines[0] == f"service {NAME} (zone example.test.):"
    assert lines[1] == f"  CRITICAL {OWNER}"
    assert lines[2].startswith(f"  CRITICAL {OWNER} at 192.0.2.25:25: fails")
    assert lines[3].startswith(f"  UNKNOWN  {OWNER} at [2001:db8::25]:25: connection refused")
    assert "  next certificate 'default': safe to swap now: no, 1 record(s) missing" in lines
    assert "    missing: x is not published on ns2" in lines
    assert "next certificate /n.pem: NOT safe to deploy" in lines
    # problems worst first: CRITICAL, UNKNOWN, WARNING
    worst_first = ["CRITICAL: a | pipe", "UNKNOWN: ns2: timeout after 3s", "WARNING: soon"]
    assert lines[-6:-2] == ["", *worst_first]
    assert lines[-2:] == ["", f"TLSAROTATE CRITICAL - {rep.summary()}"]
