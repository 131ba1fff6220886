"""verdict.diagnose and probe's per-address verdict, as pure functions (no servers).

The protocol decides the rules (``smtp=``), never the port; three outcomes as RFC 7672 §2.2
defines them; usages 0/1 off SMTP only with real PKIX validation. The real-client cross-check
is tests/integration/test_dane_matrix.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dns.name
import pytest
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TLSA import TLSA

from tests.support.tls_servers import Chain, make_chain, make_pkix_chain
from tlsarotate import material, pki, records
from tlsarotate.pkix import Trust, load_trust
from tlsarotate.probe_judge import AddressResult, ProbeReport, address_verdict
from tlsarotate.probe_render import report_json, result_line, verdict_json
from tlsarotate.served import ServedChain, speaks_smtp
from tlsarotate.tlsaanswer import TlsaAnswer
from tlsarotate.verdict import AUTHENTICATED, FAILS, NO_DANE, Verdict, diagnose

HOST = "mx.example.test"


def _der(chain: Chain) -> tuple[bytes, ...]:
    return material.parse(chain.fullchain.read_bytes(), chain.fullchain).chain_der


def _rec(chain: Chain, params: str) -> TLSA:
    m = material.parse(chain.fullchain.read_bytes(), chain.fullchain)
    return records.build(m, records.parse_params(params), 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("dane")
    ca = pki.make_ca("Unit Root")
    pkix, root = make_pkix_chain(d, "pkix", (HOST,))
    return {
        "ca": ca,
        "good": make_chain(d, "good", ca),
        "old": make_chain(d, "old", ca),
        "pkix": pkix,
        "trust": load_trust(str(root)),
        "root": root,
    }


# ---------------------------------------------------------------------------------------------
# the protocol, not the port


def test_speaks_smtp_by_protocol() -> None:
    assert speaks_smtp("smtp", 2525) and speaks_smtp("smtp", 443)  # STARTTLS smtp anywhere
    assert speaks_smtp("auto", 25) and speaks_smtp("auto", 587)
    assert speaks_smtp("auto", 465) and speaks_smtp("none", 465)  # SMTPS (RFC 8314)
    assert not speaks_smtp("none", 25)  # implicit TLS on 25 is not SMTP STARTTLS
    assert not speaks_smtp("auto", 443) and not speaks_smtp("imap", 143)


def test_1_1_1_alone_for_smtp_is_no_dane(world: dict[str, object]) -> None:
    """The issue: 1 1 1 on a lab SMTP port said "DANE ok". For SMTP, usage 1 is unusable
    (RFC 7672 §3.1.3) and an RRset of unusable records counts as none (§2.2)."""
    good = world["good"]
    assert isinstance(good, Chain)
    v = diagnose(_der(good), [_rec(good, "1 1 1")], HOST, smtp=True)
    assert v.dane == NO_DANE and not v.ok
    assert "not used for SMTP" in v.summary and "RFC 7672 §2.2" in v.summary
    assert verdict_json(v)["dane"] == "none" and verdict_json(v)["ok"] is False
    # a usable record beside it decides: a stale 3 1 1 fails, a good one authenticates
    old = world["old"]
    assert isinstance(old, Chain)
    assert diagnose(
        _der(good), [_rec(good, "1 1 1"), _rec(old, "3 1 1")], HOST, smtp=True
    ).dane == (FAILS)
    assert diagnose(_der(good), [_rec(good, "0 1 1"), _rec(good, "3 1 1")], HOST, smtp=True).ok


def test_outcomes(world: dict[str, object]) -> None:
    good, old = world["good"], world["old"]
    assert isinstance(good, Chain) and isinstance(old, Chain)
    assert diagnose(_der(good), [], HOST, smtp=True).dane == NO_DANE
    assert diagnose(_der(good), [_rec(good, "3 1 1")], HOST, smtp=True).dane == AUTHENTICATED
    assert diagnose(_der(good), [_rec(old, "3 1 1")], HOST, smtp=True).dane == FAILS
    assert diagnose((), [_rec(old, "3 1 1")], HOST, smtp=True).dane == FAILS


# ---------------------------------------------------------------------------------------------
# PKIX off SMTP


def test_pkix_ee_off_smtp_needs_validation(world: dict[str, object]) -> None:
    """Usage 1 off SMTP used to pass unvalidated ("PKIX ... is not checked", yet ok)."""
    good, pkix, trust = world["good"], world["pkix"], world["trust"]
    assert isinstance(good, Chain) and isinstance(pkix, Chain) and isinstance(trust, Trust)
    # a throwaway CA is in no trust store: PKIX fails, so the record cannot authenticate
    v = diagnose(_der(good), [_rec(good, "1 1 1")], HOST, smtp=False, trust=trust)
    assert v.dane == FAILS and "PKIX validation against" in v.summary
    (rc,) = v.records
    assert rc.matched and not rc.authenticates
    # a chain that validates to the trusted root, for the host name
    v = diagnose(_der(pkix), [_rec(pkix, "1 1 1")], HOST, smtp=False, trust=trust)
    assert v.dane == AUTHENTICATED and "validates (PKIX)" in v.summary
    # ... but not for another name (PKIX checks names, unlike DANE-EE)
    v = diagnose(_der(pkix), [_rec(pkix, "1 1 1")], "mx.other.test", smtp=False, trust=trust)
    assert v.dane == FAILS and "subjectAltName" in v.summary
    # ... and not once expired (PKIX checks dates, unlike DANE-EE)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=60)
    v = diagnose(_der(pkix), [_rec(pkix, "1 1 1")], HOST, smtp=False, trust=trust, now=later)
    assert v.dane == FAILS
    # the same chain for SMTP: usage 1 unusable, whatever PKIX says
    assert diagnose(_der(pkix), [_rec(pkix, "1 1 1")], HOST, smtp=True, trust=trust).dane == (
        NO_DANE
    )


def test_pkix_ta_matches_a_ca_of_the_validated_path(world: dict[str, object]) -> None:
    pkix, trust = world["pkix"], world["trust"]
    assert isinstance(pkix, Chain) and isinstance(trust, Trust)
    root = pkix.cas[0]
    spki = root.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rd = records.make(records.parse_params("0 1 1"), spki)
    v = diagnose(_der(pkix), [rd], HOST, smtp=False, trust=trust)
    assert v.dane == AUTHENTICATED and "depth 1" in v.summary
    # the root need not be sent: PKIX-TA may name the store's trust anchor (RFC 6698 §2.1.1)
    leaf_only = _der(pkix)[:1]
    assert diagnose(leaf_only, [rd], HOST, smtp=False, trust=trust).dane == AUTHENTICATED
    # untrusted: no PKIX path, no authentication
    nothing = Trust("empty", error="no certificates in the trust store empty")
    v = diagnose(_der(pkix), [rd], HOST, smtp=False, trust=nothing)
    assert v.dane == FAILS and "not checked" in v.summary


def test_trust_store_loading(tmp_path: Path, world: dict[str, object]) -> None:
    missing = load_trust(str(tmp_path / "none.pem"))
    assert missing.error and "cannot read the trust store" in missing.error
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert load_trust(str(junk)).error == f"no certificates in the trust store {junk}"
    root = world["root"]
    assert isinstance(root, Path)
    assert len(load_trust(str(root)).anchors) == 1
    assert len(load_trust("/etc/ssl/certs/ca-certificates.crt").anchors) > 50


# ---------------------------------------------------------------------------------------------
# one verdict per address: DNS and chain together


def _answer(**kw: object) -> TlsaAnswer:
    a = TlsaAnswer(source="dns")
    for k, v in kw.items():
        setattr(a, k, v)
    return a


OK = Verdict(AUTHENTICATED, "DANE ok: 3 1 1 matches")
BAD = Verdict(FAILS, "no record matches")
NONE_ = Verdict(NO_DANE, "no usable TLSA record")


def test_address_verdict_combines_dns_and_chain() -> None:
    plain = _answer()
    assert address_verdict(plain, [(("a",), OK)]) == (AUTHENTICATED, OK.summary)
    assert address_verdict(plain, [(("a",), OK), (("b",), BAD)])[0] == FAILS  # worst variant
    assert address_verdict(plain, [(("a",), OK), (("b",), NONE_)])[0] == NO_DANE
    assert address_verdict(plain, []) == (None, None)
    # an unsigned zone: no DANE, even when the records match (was "=> OK: DANE ok")
    unsigned = _answer(insecure=["zone z. is not DNSSEC-signed: DANE clients ignore ..."])
    dane, why = address_verdict(unsigned, [(("a",), OK)])
    assert dane == NO_DANE and why and why.startswith("zone z. is not DNSSEC-signed")
    assert "DANE ok" in why  # what the records alone would do, said as such
    # bogus: fails, whatever the chain
    bogus = _answer(problems=["resolver answers SERVFAIL"])
    assert address_verdict(bogus, [(("a",), OK)])[0] == FAILS


LEAF_DER = pki.make_leaf(pki.make_ca(), [HOST]).cert.public_bytes(serialization.Encoding.DER)


def _report(tlsa: TlsaAnswer, *verdicts: str | None) -> ProbeReport:
    addrs = []
    for i, d in enumerate(verdicts):
        served = ServedChain(f"192.0.2.{i + 1}", 25, "smtp", der=(LEAF_DER,))
        if d is None:
            served = ServedChain(f"192.0.2.{i + 1}", 25, "smtp", error="connection refused")
        addrs.append(AddressResult(served, [], None, d, "why"))
    return ProbeReport(
        "mx.example.test",
        25,
        dns.name.from_text("_25._tcp.mx.example.test."),
        "smtp",
        tlsa,
        addrs,
        smtp=True,
    )


@pytest.mark.parametrize(
    ("verdicts", "top", "code", "line"),
    [
        ((AUTHENTICATED, AUTHENTICATED), AUTHENTICATED, 0, "all 2 address(es) pass DANE"),
        ((AUTHENTICATED, FAILS), FAILS, 2, "1 of 2 address(es) fail DANE"),
        ((AUTHENTICATED, NO_DANE), NO_DANE, 3, "no DANE for 1 of 2 address(es)"),
        ((FAILS, NO_DANE), FAILS, 2, "1 of 2 address(es) fail DANE"),
        ((AUTHENTICATED, None), None, 1, "1 of 2 address(es) could not be probed"),
        ((NO_DANE, None), NO_DANE, 1, "no DANE for 1 of 2"),
    ],
)
def test_exit_codes_and_result_line(
    verdicts: tuple[str | None, ...], top: str | None, code: int, line: str
) -> None:
    rep = _report(_answer(), *verdicts)
    assert rep.dane == top and rep.exit_code == code
    assert line in result_line(rep)
    js = report_json(rep)
    assert js["dane"] == top and js["exit"] == code and js["ok"] == (code == 0)
    addresses = js["addresses"]
    assert isinstance(addresses, list)
    assert [a["dane"] for a in addresses] == list(verdicts)


def test_dns_problem_fails_every_address() -> None:
    rep = _report(_answer(problems=["bad RRSIG"]), None)
    assert rep.dane == FAILS and rep.exit_code == 2
    assert "DNS makes DANE fail" in result_line(rep)
