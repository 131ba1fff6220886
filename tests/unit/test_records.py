"""tlsarotate.records: parameters, record text, building records from material and matching
them against a chain, each checked against an independent computation (hashlib over the DER
that cryptography gives), never against the module's own helpers."""

from __future__ import annotations

import hashlib

import dns.name
import pytest
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import material, pki, records
from tlsarotate.errors import RecordError
from tlsarotate.records import Params

CA = pki.make_ca()
LEAF = pki.make_leaf(CA, ["mx.example.test"])
OTHER = pki.make_leaf(CA, ["mx.example.test"])
MAT = material.parse(pki.fullchain_pem(LEAF, CA), "fullchain.pem")
LEAF_DER = LEAF.cert.public_bytes(serialization.Encoding.DER)
CA_DER = CA.cert.public_bytes(serialization.Encoding.DER)
CHAIN = [LEAF_DER, CA_DER]


def spki(issued: pki.Issued) -> bytes:
    return issued.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("3 1 1", Params(3, 1, 1)),
        ("3,0,1", Params(3, 0, 1)),
        ("  2 1 2 ", Params(2, 1, 2)),
        ("DANE-EE SPKI SHA2-256", Params(3, 1, 1)),
        ("dane-ta cert full", Params(2, 0, 0)),
        ("PKIX-EE SPKI SHA2-512", Params(1, 1, 2)),
    ],
)
def test_parse_params_accepts_numbers_and_mnemonics(text: str, want: Params) -> None:
    assert records.parse_params(text) == want
    assert str(want) == f"{want.usage} {want.selector} {want.mtype}"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("3 1", "expected 'usage selector mtype'"),
        ("3 1 1 1", "expected 'usage selector mtype'"),
        ("4 1 1", "usage must be one of 0, 1, 2, 3"),
        ("3 2 1", "selector must be one of 0, 1"),
        ("3 1 3", "matching type must be one of 0, 1, 2"),
        ("DANE-XX SPKI SHA2-256", "unknown usage 'DANE-XX'"),
        ("3 1 SHA1", "unknown matching type 'SHA1'"),
    ],
)
def test_parse_params_refuses_in_one_line(text: str, needle: str) -> None:
    with pytest.raises(RecordError) as e:
        records.parse_params(text)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg and repr(text) in msg


@pytest.mark.parametrize(
    ("params", "data"),
    [
        ("3 1 1", lambda: hashlib.sha256(spki(LEAF)).digest()),
        ("3 1 2", lambda: hashlib.sha512(spki(LEAF)).digest()),
        ("3 0 1", lambda: hashlib.sha256(LEAF_DER).digest()),
        ("3 1 0", lambda: spki(LEAF)),
        ("2 1 1", lambda: hashlib.sha256(spki(CA)).digest()),
        ("2 0 1", lambda: hashlib.sha256(CA_DER).digest()),
    ],
)
def test_build_hashes_the_selected_der(params: str, data: object) -> None:
    rd = records.build(MAT, records.parse_params(params))
    assert isinstance(rd, TLSA)
    assert (rd.usage, rd.selector, rd.mtype) == tuple(records.parse_params(params))
    assert rd.cert == data()  # type: ignore[operator]
    assert records.matches(rd, CHAIN)


def test_usage_3_matches_the_leaf_only_and_usage_2_what_is_above_it() -> None:
    ee = records.build(MAT, Params(3, 1, 1))
    ta = records.build(MAT, Params(2, 1, 1))
    # the leaf's record does not match a chain where the same cert is not first
    assert not records.matches(ee, [CA_DER, LEAF_DER])
    # a DANE-TA record never matches the leaf itself
    leaf_as_ta = records.make(Params(2, 1, 1), spki(LEAF))
    assert not records.matches(leaf_as_ta, CHAIN)
    # the TA must be in the served chain: a leaf-only chain does not match 2 1 1
    assert not records.matches(ta, [LEAF_DER])
    # another key's record does not match
    assert not records.matches(records.make(Params(3, 1, 1), spki(OTHER)), CHAIN)
    assert not records.matches(ee, [])


def test_records_with_unknown_parameters_never_match() -> None:
    rd = records.from_text(f"3 1 255 {hashlib.sha256(spki(LEAF)).hexdigest()}")
    assert not records.usable(rd)
    assert not records.matches(rd, CHAIN)


def test_usage_2_needs_a_ca_above_the_leaf() -> None:
    leaf_only = material.parse(pki.cert_pem(LEAF.cert), "leaf.pem")
    with pytest.raises(RecordError, match=r"leaf\.pem: usage 2 needs the CA certificate"):
        records.build(leaf_only, Params(2, 1, 1))
    with pytest.raises(RecordError, match="trust-anchor depth 0 is not above the leaf"):
        records.build(MAT, Params(2, 1, 1), ta_depth=0)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("3 1 1 " + "AB" * 32, True),  # upper case hex
        ("3 1 1 " + "ab" * 16 + " " + "ab" * 16, True),  # chunked
        ("3 1 2 " + "00" * 64, True),
        ("3 1 1 " + "ab" * 31, False),  # 31 bytes for SHA-256
        ("3 1 2 " + "ab" * 32, False),  # 32 bytes for SHA-512
        ("3 1 1 xyz", False),
        ("3 1", False),
    ],
)
def test_from_text_checks_digest_lengths(text: str, ok: bool) -> None:
    if ok:
        rd = records.from_text(text)
        # one canonical text: lower case, never chunked
        words = text.split()
        assert records.to_text(rd) == " ".join(words[:3]) + " " + "".join(words[3:]).lower()
        assert records.to_text(rd) == records.to_text(records.from_text(records.to_text(rd)))
    else:
        with pytest.raises(RecordError, match="invalid TLSA record"):
            records.from_text(text)


def test_owner_name_and_zone_line() -> None:
    owner = records.owner_name("mx.example.test.", 25)
    assert owner == dns.name.from_text("_25._tcp.mx.example.test.")
    rd = records.build(MAT, Params(3, 1, 1))
    line = records.zone_line(owner, 300, rd)
    assert line == f"_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 {rd.cert.hex()}"
    assert records.owner_name("mail.example.test", 443, "udp").to_text().startswith("_443._udp.")


def test_owner_names_hash_once_and_behave_as_plain_names() -> None:
    import copy
    import pickle

    owner = records.owner_name("MX.Example.test", 25)
    plain = dns.name.from_text("_25._tcp.mx.example.TEST.")
    assert owner == plain and hash(owner) == hash(plain) == hash(dns.name.Name(plain.labels))
    assert {plain: 1}[owner] == 1 and {owner: 2}[plain] == 2
    assert owner.to_text() == "_25._tcp.MX.Example.test."
    for again in (pickle.loads(pickle.dumps(owner)), copy.copy(owner), copy.deepcopy(owner)):
        assert again == owner and hash(again) == hash(owner)
    assert owner.parent() == dns.name.from_text("_tcp.mx.example.test.")
    # the hash is kept, not recomputed per lookup (the point of the class)
    assert isinstance(owner, records.OwnerName) and owner._hash == hash(plain)
    assert owner.to_text() == owner.to_text() == "_25._tcp.MX.Example.test."
    assert owner.to_text(omit_final_dot=True) == "_25._tcp.MX.Example.test"
    assert str(owner) == owner.to_text() and owner.to_unicode() == "_25._tcp.MX.Example.test."
