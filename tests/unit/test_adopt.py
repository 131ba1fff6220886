"""The pure adoption (``tlsarotate import``), table-driven: published RRsets and the certificates
given per host in, the services (hosts, ports, TTL, params, deployed paths, what confirmed
them), the unaccounted records and the warnings out. Certificates made in memory; the YAML
output is checked to load and to parse as a config once beside a providers: section."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
import yaml
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import adopt, adopt_render, config, material, pki, records
from tlsarotate.adopt import HostCert
from tlsarotate.change import TlsaRRset
from tlsarotate.material import Material

ZONE = dns.name.from_text("example.test.")
CA = pki.make_ca()


def cert(*hosts: str) -> Material:
    leaf = pki.make_leaf(CA, list(hosts))
    return material.parse(pki.fullchain_pem(leaf, CA), hosts[0])


A, B = cert("mx1.example.test"), cert("mx2.example.test")
FOREIGN = cert("other.example.test")


def o(host: str, port: int = 25) -> dns.name.Name:
    return records.owner_name(f"{host}.example.test", port)


def recs(m: Material, *params: str) -> list[TLSA]:
    return [records.build(m, records.parse_params(p)) for p in params]


def rr(ttl: int, *rds: list[TLSA] | TLSA) -> TlsaRRset:
    flat: list[TLSA] = []
    for r in rds:
        flat += r if isinstance(r, list) else [r]
    return TlsaRRset.of(ttl, flat)


def deployed(m: Material, d: str, host: str = "") -> HostCert:
    """Deployed in /etc/D/, given as ``--deployed HOST=...`` (the source)."""
    paths = {"cert": f"/etc/{d}/fullchain.pem", "key": f"/etc/{d}/privkey.pem"}
    return HostCert(m, paths, f"--deployed {host}={d}" if host else d)


def given(m: Material, src: str = "--cert") -> HostCert:
    return HostCert(m, None, src)


def h(host: str) -> str:
    return f"{host}.example.test."


#: a record of a usage no certificate can match (usage 4 is unassigned)
ODD = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, "4 1 1 " + "ab" * 32)
assert isinstance(ODD, TLSA)


@dataclass
class Row:
    id: str
    published: dict[dns.name.Name, TlsaRRset]
    certs: dict[str, HostCert]
    # (hosts (short), ports, ttl, params, deployed dir or None, confirmed_by)
    services: list[tuple[tuple[str, ...], tuple[int, ...], int, tuple[str, ...], str | None, int]]
    unaccounted: list[tuple[dns.name.Name, str, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # each a substring of one warning
    notes: list[str] = field(default_factory=list)  # each a substring of one service note


ROWS = [
    Row(
        "one host, its certificate deployed: one confirmed service, idle as published",
        {o("mx1"): rr(300, recs(A, "3 1 1", "3 0 1"))},
        {h("mx1"): deployed(A, "a")},
        [(("mx1",), (25,), 300, ("3 1 1", "3 0 1"), "a", 1)],
    ),
    Row(
        "two hosts deploying the same files: one service for both",
        {o("mx1"): rr(300, recs(A, "3 1 1")), o("mx2"): rr(300, recs(A, "3 1 1"))},
        {h("mx1"): deployed(A, "a", "mx1"), h("mx2"): deployed(A, "a", "mx2")},
        [(("mx1", "mx2"), (25,), 300, ("3 1 1",), "a", 2)],
    ),
    Row(
        "two hosts, two certificates: two services",
        {o("mx1"): rr(300, recs(A, "3 1 1")), o("mx2"): rr(3600, recs(B, "3 1 1"))},
        {h("mx1"): deployed(A, "a"), h("mx2"): deployed(B, "b")},
        [
            (("mx1",), (25,), 300, ("3 1 1",), "a", 1),
            (("mx2",), (25,), 3600, ("3 1 1",), "b", 1),
        ],
    ),
    Row(
        "another writer's record at the owner: a comment and a warning, never dropped",
        {o("mx1"): rr(300, recs(A, "3 1 1"), recs(FOREIGN, "3 1 1"))},
        {h("mx1"): deployed(A, "a")},
        [(("mx1",), (25,), 300, ("3 1 1",), "a", 1)],
        unaccounted=[(o("mx1"), "does not match the certificate given for mx1", "mx1")],
        warnings=["1 published record(s) at 1 owner(s) that no given certificate accounts for"],
    ),
    Row(
        "another writer's combination the certificate lacks: the plan would add ours, said so",
        {o("mx1"): rr(300, recs(A, "3 1 1"), recs(FOREIGN, "3 0 1"))},
        {h("mx1"): deployed(A, "a")},
        [(("mx1",), (25,), 300, ("3 1 1",), "a", 1)],
        unaccounted=[(o("mx1"), "does not match", "mx1")],
        notes=["use 3 0 1: plan publishes this service's own"],
    ),
    Row(
        "a certificate that matches none of the records: no service, every record reported",
        {o("mx1"): rr(300, recs(FOREIGN, "3 1 1", "3 0 1"))},
        {h("mx1"): deployed(A, "a")},
        [],
        unaccounted=[(o("mx1"), "does not match", None), (o("mx1"), "does not match", None)],
        warnings=["matches none of its 2 record(s)", "2 published record(s) at 1 owner(s)"],
    ),
    Row(
        "no certificate: identical records make one unconfirmed service, paths to fill in",
        {o("mx1"): rr(300, recs(A, "3 1 1")), o("mx2"): rr(300, recs(A, "3 1 1"))},
        {},
        [(("mx1", "mx2"), (25,), 300, ("3 1 1",), None, 0)],
        warnings=["adopted unconfirmed", "deployed certificate paths unknown"],
    ),
    Row(
        "no certificate: the same records on different port sets make two services",
        {
            o("mx1"): rr(300, recs(A, "3 1 1")),
            o("mx1", 465): rr(300, recs(A, "3 1 1")),
            o("mx2"): rr(300, recs(A, "3 1 1")),
        },
        {},
        [
            (("mx1",), (25, 465), 300, ("3 1 1",), None, 0),
            (("mx2",), (25,), 300, ("3 1 1",), None, 0),
        ],
    ),
    Row(
        "no certificate: different TTLs make different services",
        {o("mx1"): rr(300, recs(A, "3 1 1")), o("mx2"): rr(600, recs(A, "3 1 1"))},
        {},
        [
            (("mx1",), (25,), 300, ("3 1 1",), None, 0),
            (("mx2",), (25,), 600, ("3 1 1",), None, 0),
        ],
    ),
    Row(
        "--cert only: confirmed, but the deployed paths are still to fill in",
        {o("mx1"): rr(300, recs(A, "3 1 1"), recs(FOREIGN, "3 1 1"))},
        {h("mx1"): given(A)},
        [(("mx1",), (25,), 300, ("3 1 1",), None, 1)],
        unaccounted=[(o("mx1"), "does not match", "mx1")],
        warnings=["deployed certificate paths unknown"],
    ),
    Row(
        "--cert: two hosts serving the same certificate, both confirming one service",
        {o("mx1"): rr(300, recs(A, "3 1 1")), o("mx2"): rr(300, recs(A, "3 1 1"))},
        {h("mx1"): given(A, "--cert mx1"), h("mx2"): given(A, "--cert mx2")},
        [(("mx1", "mx2"), (25,), 300, ("3 1 1",), None, 2)],
        warnings=["deployed certificate paths unknown"],
    ),
    Row(
        "one deployed certificate, ports and TTLs that differ: one service, what plan changes",
        {
            o("mx1"): rr(300, recs(A, "3 1 1", "3 0 1")),
            o("mx1", 465): rr(600, recs(A, "3 1 1")),
            o("mx2"): rr(300, recs(A, "3 1 1", "3 0 1")),
        },
        {h("mx1"): deployed(A, "a", "mx1"), h("mx2"): deployed(A, "a", "mx2")},
        [(("mx1", "mx2"), (25, 465), 600, ("3 1 1", "3 0 1"), "a", 2)],
        notes=[
            "_25._tcp.mx1.example.test.: TTL 300: plan sets it to 600",
            "_25._tcp.mx2.example.test.: TTL 300: plan sets it to 600",
            "_465._tcp.mx1.example.test.: no 3 0 1 record: plan publishes one",
            "_465._tcp.mx2.example.test.: no records of this certificate yet: plan publishes",
        ],
    ),
    Row(
        "names that are no _PORT._PROTO.HOST owner, and unknown parameters: reported",
        {
            dns.name.from_text("www.example.test."): rr(300, recs(A, "3 1 1")),
            dns.name.from_text("_x._tcp.mx1.example.test."): rr(300, recs(A, "3 1 1")),
            o("mx1"): rr(300, recs(A, "3 1 1"), ODD),
        },
        {h("mx1"): deployed(A, "a")},
        [(("mx1",), (25,), 300, ("3 1 1",), "a", 1)],
        unaccounted=[
            (o("mx1"), "unknown usage", "mx1"),
            (dns.name.from_text("_x._tcp.mx1.example.test."), "not a _PORT._PROTO.HOST", None),
            (dns.name.from_text("www.example.test."), "not a _PORT._PROTO.HOST", None),
        ],
        warnings=["3 published record(s) at 3 owner(s)"],
    ),
    Row(
        "a certificate for a host with nothing published: said so",
        {o("mx1"): rr(300, recs(A, "3 1 1"))},
        {h("mx1"): deployed(A, "a"), h("mx2"): deployed(B, "b")},
        [(("mx1",), (25,), 300, ("3 1 1",), "a", 1)],
        warnings=["mx2.example.test.: a certificate was given (b) but no TLSA records"],
    ),
    Row("nothing published: no services", {}, {}, []),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_adopt(row: Row) -> None:
    a = adopt.adopt(ZONE, "dns", row.published, row.certs)
    got = [
        (
            tuple(x.removesuffix(".example.test.") for x in d.hosts),
            d.ports,
            d.ttl,
            tuple(adopt.params_text(d.params)),
            d.deployed["cert"].split("/")[2] if d.deployed else None,
            len(d.confirmed_by),
        )
        for d in a.services
    ]
    assert got == row.services
    lost = [(u.owner, u.reason, None) for u in a.unaccounted] + [
        (u.owner, u.reason, d.hosts[0].split(".")[0]) for d in a.services for u in d.unaccounted
    ]
    assert len(lost) == len(row.unaccounted), lost
    for owner, why, service in row.unaccounted:
        match = [x for x in lost if x[0] == owner and why in x[1] and x[2] == service]
        assert match, f"{owner} {why!r} ({service}) not in {lost}"
        lost.remove(match[0])
    for w in row.warnings:
        assert any(w in x for x in a.warnings), f"{w!r} not in {a.warnings}"
    notes = [n for d in a.services for n in d.notes]
    assert len(notes) == len(row.notes), notes
    for n in row.notes:
        assert any(n in x for x in notes), f"{n!r} not in {notes}"
    names = [d.name for d in a.services]
    assert len(set(names)) == len(names)


def test_records_nobody_accounts_for_are_comments_and_one_warning_line() -> None:
    a = adopt.adopt(
        ZONE,
        "dns",
        {o("mx1"): rr(300, recs(A, "3 1 1"), recs(FOREIGN, "3 1 1"))},
        {h("mx1"): deployed(A, "a")},
    )
    text = adopt_render.render_yaml(a)
    theirs = records.to_text(recs(FOREIGN, "3 1 1")[0])
    where = [ln for ln in text.splitlines() if theirs in ln]
    assert len(where) == 1 and where[0].lstrip().startswith("# unaccounted: ")
    assert len([w for w in a.warnings if "no given certificate accounts for" in w]) == 1
    doc = adopt_render.render_json(a)
    assert [u["record"] for u in doc["unaccounted"]] == [theirs]
    assert doc["unaccounted"][0]["service"] == "mx1.example.test"


PROVIDERS = "providers:\n  dns:\n    type: memory\n"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_yaml_loads_as_the_config_structure_and_parses_as_a_config(row: Row) -> None:
    common = {"nameservers": ["127.0.0.1:5353"], "observe": "dns"}
    a = adopt.adopt(ZONE, "dns", row.published, row.certs, common)
    text = adopt_render.render_yaml(a)
    assert yaml.safe_load(text) == adopt.config_of(a)
    assert adopt_render.render_json(a)["services"] == adopt.config_of(a)["services"]
    json.dumps(adopt_render.render_json(a))
    if not a.services:
        return
    cfg = config.parse(PROVIDERS + text, Path("/nonexistent/config.yaml"))
    for svc, d in zip(cfg.services, a.services, strict=True):
        assert svc.name == d.name
        assert svc.hosts == d.hosts and svc.ports == d.ports and svc.ttl == d.ttl
        assert svc.params == d.params and svc.zone == ZONE
        assert [str(n.address) for n in svc.nameservers] == ["127.0.0.1"]
        owners = set(svc.owners)
        published_here = {k for k in row.published if k in owners}
        assert published_here, "every service manages published owners"


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("_25._tcp.mx.example.test.", (25, "tcp", "mx.example.test.")),
        ("_443._udp.example.test.", (443, "udp", "example.test.")),
        ("_5061._sctp.sip.example.test.", (5061, "sctp", "sip.example.test.")),
        ("_025._tcp.mx.example.test.", None),
        ("_0._tcp.mx.example.test.", None),
        ("_70000._tcp.mx.example.test.", None),
        ("_25._xyz.mx.example.test.", None),
        ("25._tcp.mx.example.test.", None),
        ("_25._tcp.example.test.", (25, "tcp", "example.test.")),
        ("_tcp.example.test.", None),
    ],
)
def test_split_owner(owner: str, expected: tuple[int, str, str] | None) -> None:
    assert adopt.split_owner(dns.name.from_text(owner), ZONE) == expected
