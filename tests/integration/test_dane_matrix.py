"""The DANE matrix: tlsarotate's verdict against real clients, row by row.

Every row is a scenario served for real: its records in a zone of one BIND (inline-signed
``dane.test``, unsigned ``insecure.test``, and ``bogus.test`` whose TLSA data was changed
behind its signatures), an SMTP server (aiosmtpd, STARTTLS, on a high "lab" port, so the port
never says SMTP) or an implicit-TLS server on 127.0.0.1 and/or ::1, a validating unbound on
127.0.0.53:53. Then, for each row:

- ``tlsarotate probe HOST --port P --starttls smtp|none --resolver 127.0.0.53 --nameserver
  named --output json`` (the CLI, a real subprocess): the ``dane`` verdict of every address;
- **posttls-finger** (Postfix's own DANE client, the system resolver pointed at the unbound in a
  private mount namespace), once per address family: its verdict must be tlsarotate's;
- ``openssl s_client -dane_tlsa_rrdata`` with the records: openssl knows neither DNSSEC nor
  RFC 7672's SMTP rules, so where it differs the row says which RFC rule decides.

Outcomes (RFC 7672 §2.2): ``authenticated`` (Postfix: "Verified TLS connection"), ``fails``
(a DANE sender defers: "no matching DANE TLSA records", "TLSA lookup error"), ``none``
(no DANE, the sender delivers without it: posttls-finger "resorting to secure").

Rows run in parallel in one module fixture (one BIND, one unbound, a few servers); each
test then checks its row.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.helpers import cli_env, run_cli
from tests.support.posttls import NAMED_ADDR, RESOLVER, DaneDns, Zone, make_world, posttls_verdict
from tests.support.servers import free_port
from tests.support.tls_servers import (
    LOOPBACKS,
    Chain,
    ScriptedServer,
    SmtpdServer,
    SmtpsServer,
    make_chain,
    make_pkix_chain,
    need_openssl,
)
from tlsarotate import material, pki, records
from tlsarotate.config import Nameserver
from tlsarotate.handshake import fetch_chain
from tlsarotate.probe import run_probe
from tlsarotate.probe_render import report_json
from tlsarotate.served import ServedChain

AUTH, FAILS, NONE = "authenticated", "fails", "none"
V4, V6 = "127.0.0.1", "::1"
ZONES = ("dane.test.", "insecure.test.", "bogus.test.")
WILD = ("*.dane.test", "*.insecure.test", "*.bogus.test")


# ---------------------------------------------------------------------------------------------
# the world: chains and servers


@dataclass
class MatrixWorld:
    chains: dict[str, Chain]
    ca: pki.Issued
    pkix_root: Path
    ports: dict[str, int] = field(default_factory=dict)  # server key -> port
    dns: DaneDns | None = None


def _rec(chain: Chain, params: str) -> str:
    m = material.parse(chain.fullchain.read_bytes(), chain.fullchain)
    return records.to_text(records.build(m, records.parse_params(params), 1))


def _rec_ca(issued: pki.Issued, params: str) -> str:
    p = records.parse_params(params)
    from cryptography.hazmat.primitives import serialization as ser

    data = (
        issued.cert.public_bytes(ser.Encoding.DER)
        if p.selector == 0
        else issued.cert.public_key().public_bytes(
            ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return records.to_text(records.make(p, data))


Records = Callable[[MatrixWorld], list[str]]


def ee(chain: str, params: str = "3 1 1") -> Records:
    return lambda w: [_rec(w.chains[chain], params)]


def ta(params: str = "2 1 1", which: str = "ca") -> Records:
    return lambda w: [_rec_ca(w.ca if which == "ca" else w.chains["pkix"].cas[0], params)]


def both(*parts: Records) -> Records:
    return lambda w: [r for p in parts for r in p(w)]


# ---------------------------------------------------------------------------------------------
# the rows


@dataclass(frozen=True)
class Row:
    id: str
    server: str  # which server (key of SERVERS)
    records: Records
    expect: dict[str, str]  # address -> verdict (also which A/AAAA records exist)
    zone: str = "dane.test."
    smtp: bool = True  # STARTTLS smtp (posttls-finger applies); False: implicit TLS, not SMTP
    # openssl's verdict given the records: SAME (tlsarotate's, address by address), a verdict
    # for every address (then ``why`` names the rule where it differs), or None: not asked
    openssl: str | None = "same"
    why: str = ""  # why openssl differs / is not asked, or which RFC rule decides
    owner_port: int | None = None  # publish the TLSA at this port's owner (wrong port)
    trust_root: bool = False  # the PKIX trust store is the test root (SSL_CERT_FILE, -CAfile)
    # SMTPS (implicit TLS SMTP, RFC 8314): posttls-finger -w; tlsarotate probes "port 465"
    # (in-process, its connections sent to the server's real port; records at both owners)
    wrapper: bool = False


ONE = {V4: AUTH}
ROWS = [
    Row("match 3 1 1", "good", ee("good"), ONE, openssl=AUTH),
    Row("match 3 0 1", "good", ee("good", "3 0 1"), ONE, openssl=AUTH),
    Row(
        "seed incident: renewed certificate, stale 3 1 1",
        "good",
        ee("old"),
        {V4: FAILS},
        openssl=FAILS,
    ),
    Row("rollover: old + new 3 1 1", "good", both(ee("old"), ee("good")), ONE, openssl=AUTH),
    Row(
        "stale 3 0 1 beside good 3 1 1 (same key renewed)",
        "good",
        both(ee("samekey", "3 0 1"), ee("good")),
        ONE,
    ),
    Row(
        "stale 3 1 2 beside good 3 1 1",
        "good",
        both(ee("old", "3 1 2"), ee("good")),
        {V4: FAILS},
        why="RFC 7671 §9 digest agility: the stronger 3 1 2 hides the 3 1 1 (all clients agree)",
    ),
    Row(
        "good 3 1 2 beside stale 3 1 1",
        "good",
        both(ee("good", "3 1 2"), ee("old")),
        ONE,
    ),
    Row("2 1 1, CA served", "good", ta(), ONE, openssl=AUTH),
    Row(
        "2 1 1, CA not served",
        "leafonly",
        ta(),
        {V4: FAILS},
        openssl=FAILS,
        why="RFC 7671 §5.2.2: the DANE-TA trust anchor must be in the served chain",
    ),
    Row(
        "3 1 1, name mismatch",
        "mismatch",
        ee("mismatch"),
        ONE,
        why="RFC 7672 §3.1.1: DANE-EE ignores names (openssl with -dane_ee_no_namechecks)",
    ),
    Row("2 1 1, name mismatch", "mismatch", ta(), {V4: FAILS}, openssl=FAILS),
    Row(
        "3 1 1, expired leaf",
        "expired",
        ee("expired"),
        ONE,
        why="RFC 7672 §3.1.1: DANE-EE ignores validity dates",
    ),
    Row("2 1 1, expired leaf", "expired", ta(), {V4: FAILS}, openssl=FAILS),
    Row(
        "1 1 1 alone on SMTP (lab port)",
        "good",
        ee("good", "1 1 1"),
        {V4: NONE},
        openssl=FAILS,
        why="RFC 7672 §3.1.3: usage 1 is unusable for SMTP, so the RRset counts as none "
        "(§2.2); openssl knows no SMTP rules and demands PKIX (the CA is untrusted)",
    ),
    Row(
        "0 1 1 alone on SMTP",
        "good",
        ta("0 1 1"),
        {V4: NONE},
        openssl=FAILS,
        why="RFC 7672 §3.1.3: usage 0 is unusable for SMTP; openssl demands PKIX",
    ),
    Row(
        "1 1 1 beside stale 3 1 1 on SMTP",
        "good",
        both(ee("good", "1 1 1"), ee("old")),
        {V4: FAILS},
        openssl=FAILS,
        why="the usable 3 1 1 matches nothing; the 1 1 1 does not count for SMTP",
    ),
    Row(
        "2 1 1 of another CA",
        "good",
        ta(which="pkix"),
        {V4: FAILS},
        openssl=FAILS,
    ),
    Row(
        "no TLSA records (signed zone)",
        "good",
        lambda w: [],
        {V4: NONE},
        openssl=None,
        why="no records: nothing to give openssl",
    ),
    Row(
        "TLSA at the wrong port's owner",
        "good",
        ee("good"),
        {V4: NONE},
        owner_port=25,
        openssl=None,
        why="no records at _PORT._tcp (they are at _25._tcp): nothing to give openssl",
    ),
    Row(
        "unsigned zone, matching 3 1 1",
        "good",
        ee("good"),
        {V4: NONE},
        zone="insecure.test.",
        openssl=AUTH,
        why="RFC 7672 §2.2: insecure TLSA records are ignored; openssl knows no DNSSEC",
    ),
    Row(
        "unsigned zone, stale 3 1 1",
        "good",
        ee("old"),
        {V4: NONE},
        zone="insecure.test.",
        openssl=FAILS,
        why="RFC 7672 §2.2: insecure records are ignored, a sender delivers without DANE",
    ),
    Row(
        "bogus RRSIG over the TLSA RRset",
        "good",
        ee("good"),
        {V4: FAILS},
        zone="bogus.test.",
        openssl=None,
        why="RFC 7672 §2.1.1: a bogus TLSA lookup defers delivery; openssl knows no DNSSEC",
    ),
    Row("IPv6 only, match", "good", ee("good"), {V6: AUTH}),
    Row("dual stack, match", "good", ee("good"), {V4: AUTH, V6: AUTH}),
    Row(
        "dual stack, the IPv6 server still has the old certificate",
        "mixed",
        ee("good"),
        {V4: AUTH, V6: FAILS},
    ),
    # SMTPS on 465: implicit TLS, but SMTP: RFC 7672's rules, as Postfix applies them
    Row("SMTPS (465), 3 1 1", "smtps", ee("good"), ONE, wrapper=True),
    Row(
        "SMTPS (465), 1 1 1 alone",
        "smtps",
        ee("good", "1 1 1"),
        {V4: NONE},
        wrapper=True,
        openssl=FAILS,
        why="RFC 7672 §3.1.3 for the SMTP client on 465 (posttls-finger -w agrees); openssl "
        "knows no SMTP rules and demands PKIX",
    ),
    # not SMTP (implicit TLS, e.g. HTTPS): posttls-finger does not apply, openssl does
    Row("implicit TLS, 3 1 1", "implicit", ee("good"), ONE, smtp=False, openssl=AUTH),
    Row(
        "implicit TLS, 1 1 1, CA not trusted",
        "implicit",
        ee("good", "1 1 1"),
        {V4: FAILS},
        smtp=False,
        openssl=FAILS,
        why="RFC 6698 §2.1.1: PKIX-EE needs PKIX validation, which fails",
    ),
    Row(
        "implicit TLS, 1 1 1, PKIX-valid chain",
        "pkix",
        ee("pkix", "1 1 1"),
        ONE,
        smtp=False,
        trust_root=True,
    ),
    Row(
        "implicit TLS, 0 1 1, PKIX-valid chain",
        "pkix",
        ta("0 1 1", which="pkix"),
        ONE,
        smtp=False,
        trust_root=True,
    ),
    Row(
        "implicit TLS, 1 1 1, PKIX-valid chain, wrong name",
        "pkix",
        ee("pkix", "1 1 1"),
        {V4: FAILS},
        smtp=False,
        openssl=FAILS,
        trust_root=True,
        why="PKIX-EE checks the name (RFC 6125), unlike DANE-EE",
    ),
]


def _host(i: int, row: Row) -> str:
    return f"r{i:02d}.{row.zone.rstrip('.')}"


def _owner_port(row: Row, port: int) -> int:
    return row.owner_port if row.owner_port is not None else port


# ---------------------------------------------------------------------------------------------
# running a row


@dataclass
class Outcome:
    tlsarotate: dict[str, str | None]
    probe_json: dict[str, object]
    posttls: dict[str, tuple[str, str]] = field(default_factory=dict)  # addr -> (verdict, out)
    openssl: dict[str, tuple[str, str]] = field(default_factory=dict)  # addr -> (verdict, out)


def _openssl(
    addr: str, port: int, host: str, rrdata: list[str], smtp: bool, cafile: Path | None
) -> tuple[str, str]:
    cmd = [need_openssl(), "s_client", "-brief", "-connect", f"{addr}:{port}"]
    cmd += ["-servername", host, "-dane_tlsa_domain", host, "-dane_ee_no_namechecks"]
    if smtp:
        cmd += ["-starttls", "smtp"]
    if cafile is not None:
        cmd += ["-CAfile", str(cafile)]
    for r in rrdata:
        cmd += ["-dane_tlsa_rrdata", r]
    cmd += ["-verify_return_error"]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    out = p.stdout + p.stderr
    ok = p.returncode == 0 and "Verification: OK" in out
    return (AUTH if ok else FAILS), out


def _run_row(i: int, row: Row, w: MatrixWorld) -> Outcome:
    assert w.dns is not None
    port = w.ports[row.server]
    host = _host(i, row)
    env = cli_env()
    if row.trust_root:
        env["SSL_CERT_FILE"] = str(w.pkix_root)
    if row.wrapper:
        js = _probe_as_465(host, port, w.dns.port)
        out = Outcome({str(a["address"]): a["dane"] for a in js["addresses"]}, js)  # type: ignore[attr-defined]
    else:
        out = _probe_cli(host, port, row, w.dns.port, env)
    if row.smtp:
        for addr in row.expect:
            family = "ipv6" if ":" in addr else "ipv4"
            text = w.dns.posttls_finger(host, port, family, wrapper=row.wrapper)
            out.posttls[addr] = (posttls_verdict(text), text)
    if row.openssl is not None:
        rrdata = row.records(w)
        for addr in row.expect:
            target = f"[{addr}]" if ":" in addr else addr
            out.openssl[addr] = _openssl(
                target,
                port,
                host,
                rrdata,
                row.smtp and not row.wrapper,
                w.pkix_root if row.trust_root else None,
            )
    return out


def _probe_as_465(host: str, port: int, named_port: int) -> dict[str, object]:
    """``probe HOST --port 465 --starttls auto`` whose connections reach the SMTPS server's
    real (high) port."""

    def fetch(
        address: str,
        _port: int,
        mode: str,
        timeout: float,
        server_name: str | None = None,
        key_type: str | None = None,
    ) -> ServedChain:
        return fetch_chain(address, port, mode, timeout, server_name, key_type)

    rep = run_probe(
        host,
        465,
        "auto",
        5,
        resolver=Nameserver(RESOLVER, 53),
        nameservers=[Nameserver(NAMED_ADDR, named_port)],
        fetch=fetch,
    )
    assert rep.smtp and rep.starttls == "none"
    return report_json(rep)


def _probe_cli(host: str, port: int, row: Row, named_port: int, env: dict[str, str]) -> Outcome:
    proc = run_cli(
        "probe",
        host,
        "--port",
        str(port),
        "--starttls",
        "smtp" if row.smtp else "none",
        "--resolver",
        RESOLVER,
        "--nameserver",
        f"{NAMED_ADDR}:{named_port}",
        "--timeout",
        "5",
        "--output",
        "json",
        env=env,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    js = json.loads(proc.stdout)
    got = {str(a["address"]): a["dane"] for a in js["addresses"]}
    return Outcome(got, js)


# ---------------------------------------------------------------------------------------------
# the fixture


@dataclass
class Matrix:
    results: dict[str, Outcome]
    world: MatrixWorld

    def row(self, row_id: str) -> tuple[str, int]:
        """(host, port) of a row."""
        i, row = next((i, r) for i, r in enumerate(ROWS, 1) if r.id == row_id)
        return _host(i, row), self.world.ports[row.server]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    d = tmp_path_factory.mktemp("matrix")
    ca = pki.make_ca("Matrix Root")
    good = make_chain(d, "good", ca, hosts=WILD)
    now = dt.datetime.now(dt.timezone.utc)
    expired_leaf = pki.make_leaf(ca, list(WILD), not_before=now - dt.timedelta(days=40))
    (d / "expired.fullchain.pem").write_bytes(pki.fullchain_pem(expired_leaf, ca))
    (d / "expired.key").write_bytes(expired_leaf.key_pem)
    pkix_names = [
        _host(i, r) for i, r in enumerate(ROWS, 1) if r.server == "pkix" and "wrong" not in r.id
    ]
    pkix, pkix_root = make_pkix_chain(d, "pkix", pkix_names)
    chains = {
        "good": good,
        "old": make_chain(d, "old", ca, hosts=WILD),
        "samekey": make_chain(d, "samekey", ca, hosts=WILD, key=good.leaf.key),
        "leafonly": make_chain(d, "leafonly", ca, hosts=WILD, send_ca=False),
        "mismatch": make_chain(d, "mismatch", ca, hosts=("mail.other.example",)),
        "expired": Chain(expired_leaf, (ca,), d / "expired.fullchain.pem", d / "expired.key"),
        "pkix": pkix,
    }
    w = MatrixWorld(chains, ca, pkix_root)
    started: list[SmtpdServer | ScriptedServer | SmtpsServer] = []
    try:
        # one port per server key; "good" and "mixed" on both loopbacks
        for key, plan in {
            "good": {V4: "good", V6: "good"},
            "mixed": {V4: "good", V6: "old"},
            "leafonly": {V4: "leafonly"},
            "mismatch": {V4: "mismatch"},
            "expired": {V4: "expired"},
        }.items():
            port = free_port(LOOPBACKS)
            for addr, chain in plan.items():
                started.append(SmtpdServer(addr, chains[chain], port).start())
            w.ports[key] = port
        smtps = SmtpsServer(V4, chains["good"]).start()
        started.append(smtps)
        w.ports["smtps"] = smtps.port
        for key, chain in (("implicit", "good"), ("pkix", "pkix")):
            srv = ScriptedServer(V4, chains[chain], "implicit").start()
            started.append(srv)
            w.ports[key] = srv.port

        lines: dict[str, list[str]] = {z: [] for z in ZONES}
        tamper: set[str] = set()
        for i, row in enumerate(ROWS, 1):
            label = _host(i, row).split(".")[0]
            for addr in row.expect:
                lines[row.zone].append(f"{label} {'AAAA' if ':' in addr else 'A'} {addr}")
            owner = f"_{_owner_port(row, w.ports[row.server])}._tcp.{label}"
            owners = [owner, f"_465._tcp.{label}"] if row.wrapper else [owner]
            for r in row.records(w):
                lines[row.zone] += [f"{o} TLSA {r}" for o in owners]
            if row.zone == "bogus.test.":
                tamper.add(f"{owner}.{row.zone}")
        kinds = {"dane.test.": "inline", "insecure.test.": "unsigned", "bogus.test.": "tampered"}
        zones = [
            Zone(z, kinds[z], lines[z], tamper if z == "bogus.test." else set()) for z in ZONES
        ]
        dns_world, tmp = make_world(zones)
        w.dns = dns_world
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = {
                    row.id: pool.submit(_run_row, i, row, w) for i, row in enumerate(ROWS, 1)
                }
                results = {k: f.result() for k, f in futures.items()}
            yield Matrix(results, w)
        finally:
            dns_world.stop()
            tmp.cleanup()
    finally:
        for s in started:
            s.stop()


# ---------------------------------------------------------------------------------------------
# the checks


def test_matrix_is_big_enough() -> None:
    assert len(ROWS) >= 20 and len({r.id for r in ROWS}) == len(ROWS)
    assert sum(1 for r in ROWS if r.smtp) >= 20  # rows posttls-finger judges


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(row: Row, matrix: Matrix) -> None:
    out = matrix.results[row.id]
    js = out.probe_json
    where = json.dumps(js, indent=1)[:3000]
    # tlsarotate: one verdict per address, as expected
    assert out.tlsarotate == row.expect, where
    # ... and the JSON agrees with itself: ok <=> authenticated, top verdict, exit code
    for a in js["addresses"]:  # type: ignore[attr-defined]
        assert a["ok"] == (a["dane"] == AUTH), a
    verdicts = set(row.expect.values())
    top = FAILS if FAILS in verdicts else NONE if NONE in verdicts else AUTH
    assert js["dane"] == top
    assert js["exit"] == {AUTH: 0, FAILS: 2, NONE: 3}[top]
    assert js["ok"] == (top == AUTH)

    # the real client: posttls-finger, once per address family
    if row.smtp:
        for addr, want in row.expect.items():
            verdict, text = out.posttls[addr]
            assert verdict == want, f"posttls-finger for {addr}: {verdict}\n{text}"
            if "Failed to establish session" not in text:
                assert f"[{addr}]" in text, text  # it judged the address we meant
    # openssl, where it applies; a difference must say which rule decides
    if row.openssl is not None:
        for addr, want in row.expect.items():
            verdict, text = out.openssl[addr]
            expected = want if row.openssl == "same" else row.openssl
            assert verdict == expected, f"openssl for {addr}: {verdict}\n{text}"
            if verdict != want:
                assert "RFC" in row.why, f"{row.id}: openssl differs and the row does not say why"
    else:
        assert row.why, f"{row.id}: openssl is not asked and the row does not say why"


# ---------------------------------------------------------------------------------------------
# the text output says the same as the JSON (the issue: "=> OK: DANE ok" beside "DNS makes DANE
# fail"; an unsigned zone called both "bogus" and "ignored")


def _probe_text(matrix: Matrix, row_id: str) -> tuple[int, str]:
    host, port = matrix.row(row_id)
    assert matrix.world.dns is not None
    proc = run_cli(
        "probe",
        host,
        "--port",
        str(port),
        "--starttls",
        "smtp",
        "--resolver",
        RESOLVER,
        "--nameserver",
        f"{NAMED_ADDR}:{matrix.world.dns.port}",
        "--timeout",
        "5",
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


def test_text_unsigned_zone_is_no_dane_in_one_voice(matrix: Matrix) -> None:
    code, out = _probe_text(matrix, "unsigned zone, matching 3 1 1")
    assert code == 3, out
    assert "zone insecure.test. is not DNSSEC-signed: DANE clients ignore its TLSA records" in out
    assert "no valid RRSIG" not in out and "bogus" not in out, out
    assert "=> NO DANE: zone insecure.test. is not DNSSEC-signed" in out
    assert "=> OK" not in out and "=> FAIL" not in out
    assert "result: no DANE for 1 of 1 address(es): a sender delivers without DANE" in out


def test_text_bogus_fails_in_one_voice(matrix: Matrix) -> None:
    code, out = _probe_text(matrix, "bogus RRSIG over the TLSA RRset")
    assert code == 2, out
    assert "DNS PROBLEM:" in out and "SERVFAIL" in out
    assert "=> FAIL:" in out and "=> OK" not in out
    assert "result: DNS makes DANE fail for every address: a DANE sender defers mail" in out


def test_text_1_1_1_on_a_lab_smtp_port_is_no_dane(matrix: Matrix) -> None:
    """The issue's first item: --starttls smtp on a port that is not 25/587."""
    code, out = _probe_text(matrix, "1 1 1 alone on SMTP (lab port)")
    assert code == 3, out
    assert "unusable  1 1 1 " in out and "not used for SMTP (RFC 7672 §3.1.3)" in out
    assert "=> NO DANE: no usable TLSA record" in out and "DANE ok" not in out
