"""``tlsarotate records`` agrees byte for byte with the openssl command line.

Every key, certificate, chain, CSR and public key here is made by ``openssl`` itself, and every
expected record is computed by ``openssl`` (``x509 -outform DER``, ``pkey -pubin -outform DER``,
``dgst -sha256/-sha512 -binary``); tlsarotate's own code computes nothing on the expected side.
Each group of inputs is run through ONE ``tlsarotate records`` process; the per-file,
per-parameter tests then compare its output.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives import serialization
from dns.rdtypes.ANY.TLSA import TLSA

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.schemas import validate
from tlsarotate import certfiles, material, pki, records
from tlsarotate.errors import RecordError
from tlsarotate.records import Params

OPENSSL = shutil.which("openssl")
KEYTYPES = {
    "rsa2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ed25519": ["-algorithm", "ED25519"],
    "ed448": ["-algorithm", "ED448"],
}
TRADITIONAL = ("rsa2048", "rsa4096", "p256", "p384")  # "RSA/EC PRIVATE KEY" PEM exists for these

ALL = [Params(u, s, m) for u in (3, 2, 1, 0) for s in (0, 1) for m in (0, 1, 2)]
EE = [p for p in ALL if p.usage in (1, 3)]
EE_SPKI = [p for p in EE if p.selector == 1]

# input forms per group: chains allow every combination, single certificates usage 1/3,
# keys and CSRs usage 1/3 with selector 1 only
CHAIN_FORMS = ("fullchain", "chain2")
CERT_FORMS = ("self.pem", "self.der", "leaf.pem")
KEY_FORMS = ("key.pk8", "key.der", "pub.pem", "pub.der", "csr.pem", "csr.der")
CHAIN_IDS = [f"{t}.{f}" for t in KEYTYPES for f in CHAIN_FORMS] + ["combined", "lineage"]
CERT_IDS = [f"{t}.{f}" for t in KEYTYPES for f in CERT_FORMS]
KEY_IDS = (
    [f"{t}.{f}" for t in KEYTYPES for f in KEY_FORMS]
    + [f"{t}.key.trad" for t in TRADITIONAL]
    + ["ecparam-genkey", "rsa-public-key-pkcs1"]
)


def ossl(*args: str | Path, stdin: bytes | None = None) -> bytes:
    if OPENSSL is None:
        pytest.fail("openssl is not installed (apt-get install openssl)")
    proc = subprocess.run(
        [OPENSSL, *map(str, args)], input=stdin, capture_output=True, check=False, timeout=120
    )
    assert proc.returncode == 0, f"openssl {args}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


def der_form(path: Path) -> list[str]:
    return ["-inform", "DER"] if path.suffix == ".der" else []


def cert_der(path: Path) -> bytes:
    return ossl("x509", "-in", path, *der_form(path), "-outform", "DER")


def cert_spki(path: Path) -> bytes:
    pub = ossl("x509", "-in", path, *der_form(path), "-pubkey", "-noout")
    return ossl("pkey", "-pubin", "-outform", "DER", stdin=pub)


@functools.cache
def digest(mtype: int, der: bytes) -> str:
    if mtype == 0:
        return der.hex()
    return ossl("dgst", "-sha256" if mtype == 1 else "-sha512", "-binary", stdin=der).hex()


@dataclass
class Input:
    path: Path
    ee_spki: bytes
    ee_cert: bytes | None = None
    ta_spki: dict[int, bytes] = field(default_factory=dict)  # chain position -> SPKI DER
    ta_cert: dict[int, bytes] = field(default_factory=dict)

    def expected(self, p: Params, ta_depth: int = 1) -> str:
        if p.usage in (1, 3):
            der = self.ee_spki if p.selector == 1 else self.ee_cert
        else:
            der = (self.ta_spki if p.selector == 1 else self.ta_cert)[ta_depth]
        assert der is not None
        return f"{p} {digest(p.mtype, der)}"


@dataclass
class RecordsWorld:
    dir: Path
    inputs: dict[str, Input]
    root: Path
    inter: Path


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> RecordsWorld:
    d = tmp_path_factory.mktemp("openssl")
    # root CA (P-384, self-signed, CA:TRUE by req -x509's v3_ca) and an RSA intermediate
    ossl("genpkey", *KEYTYPES["p384"], "-out", d / "root.key")
    ossl("req", "-x509", "-key", d / "root.key", "-subj", "/CN=Test Root", "-days", "30",
         "-out", d / "root.crt")  # fmt: skip
    ossl("genpkey", *KEYTYPES["rsa2048"], "-out", d / "int.key")
    ossl("req", "-new", "-key", d / "int.key", "-subj", "/CN=Test Intermediate",
         "-out", d / "int.csr")  # fmt: skip
    (d / "int.ext").write_text(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
    )
    ossl("x509", "-req", "-in", d / "int.csr", "-CA", d / "root.crt", "-CAkey",
         d / "root.key", "-CAcreateserial", "-days", "30", "-extfile", d / "int.ext",
         "-out", d / "int.crt")  # fmt: skip
    (d / "leaf.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:mx.example.test\n"
        "extendedKeyUsage=serverAuth\n"
    )
    root_pem, int_pem = (d / "root.crt").read_bytes(), (d / "int.crt").read_bytes()
    ta_spki = {1: cert_spki(d / "int.crt"), 2: cert_spki(d / "root.crt")}
    ta_cert = {1: cert_der(d / "int.crt"), 2: cert_der(d / "root.crt")}

    inputs: dict[str, Input] = {}
    for t, gen in KEYTYPES.items():
        key = d / f"{t}.key.pk8"
        ossl("genpkey", *gen, "-out", key)
        spki = ossl("pkey", "-in", key, "-pubout", "-outform", "DER")
        ossl("pkey", "-in", key, "-outform", "DER", "-out", d / f"{t}.key.der")
        ossl("pkey", "-in", key, "-pubout", "-out", d / f"{t}.pub.pem")
        ossl("pkey", "-in", key, "-pubout", "-outform", "DER", "-out", d / f"{t}.pub.der")
        ossl("req", "-new", "-key", key, "-subj", "/CN=mx.example.test", "-out", d / f"{t}.csr.pem")
        ossl("req", "-in", d / f"{t}.csr.pem", "-outform", "DER", "-out", d / f"{t}.csr.der")
        if t in TRADITIONAL:
            ossl("pkey", "-in", key, "-traditional", "-out", d / f"{t}.key.trad")
            assert b"-----BEGIN RSA PRIVATE KEY" in (d / f"{t}.key.trad").read_bytes() or (
                b"-----BEGIN EC PRIVATE KEY" in (d / f"{t}.key.trad").read_bytes()
            )
            inputs[f"{t}.key.trad"] = Input(d / f"{t}.key.trad", spki)
        # the SPKI as the CSR carries it, computed from the CSR alone
        csr_pub = ossl("req", "-in", d / f"{t}.csr.pem", "-pubkey", "-noout")
        assert ossl("pkey", "-pubin", "-outform", "DER", stdin=csr_pub) == spki
        for f in KEY_FORMS:
            inputs[f"{t}.{f}"] = Input(d / f"{t}.{f}", spki)

        ossl("req", "-x509", "-key", key, "-subj", "/CN=mx.example.test", "-days", "30",
             "-out", d / f"{t}.self.pem")  # fmt: skip
        ossl("x509", "-in", d / f"{t}.self.pem", "-outform", "DER", "-out", d / f"{t}.self.der")
        ossl("x509", "-req", "-in", d / f"{t}.csr.pem", "-CA", d / "int.crt", "-CAkey",
             d / "int.key", "-CAcreateserial", "-days", "30", "-extfile", d / "leaf.ext",
             "-out", d / f"{t}.leaf.pem")  # fmt: skip
        leaf_pem = (d / f"{t}.leaf.pem").read_bytes()
        (d / f"{t}.fullchain").write_bytes(leaf_pem + int_pem + root_pem)
        (d / f"{t}.chain2").write_bytes(leaf_pem + int_pem)
        for f in CERT_FORMS:
            p = d / f"{t}.{f}"
            assert cert_spki(p) == spki
            inputs[f"{t}.{f}"] = Input(p, spki, cert_der(p))
        leaf_der = cert_der(d / f"{t}.leaf.pem")
        inputs[f"{t}.fullchain"] = Input(d / f"{t}.fullchain", spki, leaf_der, ta_spki, ta_cert)
        inputs[f"{t}.chain2"] = Input(
            d / f"{t}.chain2", spki, leaf_der, {1: ta_spki[1]}, {1: ta_cert[1]}
        )

    # `openssl ecparam -genkey` writes an "EC PARAMETERS" block before the key
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-out", d / "ecparam.key")
    assert (d / "ecparam.key").read_bytes().startswith(b"-----BEGIN EC PARAMETERS")
    inputs["ecparam-genkey"] = Input(
        d / "ecparam.key", ossl("pkey", "-in", d / "ecparam.key", "-pubout", "-outform", "DER")
    )
    # PKCS#1 "RSA PUBLIC KEY"
    ossl("rsa", "-in", d / "rsa2048.key.pk8", "-RSAPublicKey_out", "-out", d / "rsapub.pem")
    assert (d / "rsapub.pem").read_bytes().startswith(b"-----BEGIN RSA PUBLIC KEY")
    inputs["rsa-public-key-pkcs1"] = Input(
        d / "rsapub.pem",
        ossl("rsa", "-RSAPublicKey_in", "-in", d / "rsapub.pem", "-pubout", "-outform", "DER"),
    )

    # Postfix-style combined key + full chain, and a certbot lineage with relative symlinks
    src = inputs["p256.fullchain"]
    (d / "combined.pem").write_bytes((d / "p256.key.pk8").read_bytes() + src.path.read_bytes())
    inputs["combined"] = Input(d / "combined.pem", src.ee_spki, src.ee_cert, ta_spki, ta_cert)
    arch, live = d / "le" / "archive" / "mx", d / "le" / "live" / "mx"
    arch.mkdir(parents=True)
    live.mkdir(parents=True)
    (arch / "fullchain3.pem").write_bytes(src.path.read_bytes())
    (arch / "privkey3.pem").write_bytes((d / "p256.key.pk8").read_bytes())
    (live / "fullchain.pem").symlink_to("../../archive/mx/fullchain3.pem")
    (live / "privkey.pem").symlink_to("../../archive/mx/privkey3.pem")
    inputs["lineage"] = Input(live, src.ee_spki, src.ee_cert, ta_spki, ta_cert)
    return RecordsWorld(d, inputs, d / "root.crt", d / "int.crt")


def params_args(ps: list[Params]) -> list[str]:
    return [a for p in ps for a in ("--params", str(p))]


def sections(stdout: str) -> dict[str, list[str]]:
    """Multi-file text output: '; FILE' then that file's records."""
    out: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("; "):
            cur = out.setdefault(line[2:], [])
        else:
            assert cur is not None, f"record before any '; FILE' header: {line!r}"
            cur.append(line)
    return out


@pytest.fixture(scope="session")
def group_outputs(world: RecordsWorld) -> dict[str, list[str]]:
    """Three processes, one per group: every file of the group, every allowed combination."""
    got: dict[str, list[str]] = {}
    for ids, ps in ((CHAIN_IDS, ALL), (CERT_IDS, EE), (KEY_IDS, EE_SPKI)):
        files = [str(world.inputs[i].path) for i in ids]
        proc = run_cli("records", *params_args(ps), *files)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        sec = sections(proc.stdout)
        assert list(sec) == files  # every file once, in the order given
        got.update(sec)
    return got


def _check(
    world: RecordsWorld, outputs: dict[str, list[str]], ident: str, ps: list[Params]
) -> None:
    inp = world.inputs[ident]
    got = outputs[str(inp.path)]
    assert got == [inp.expected(p) for p in ps]


@pytest.mark.parametrize("ident", CHAIN_IDS)
def test_chain_all_24_combinations(
    world: RecordsWorld, group_outputs: dict[str, list[str]], ident: str
) -> None:
    _check(world, group_outputs, ident, ALL)


@pytest.mark.parametrize("ident", CERT_IDS)
def test_certificate_usage_1_and_3(
    world: RecordsWorld, group_outputs: dict[str, list[str]], ident: str
) -> None:
    _check(world, group_outputs, ident, EE)


@pytest.mark.parametrize("ident", KEY_IDS)
def test_key_and_csr_selector_1(
    world: RecordsWorld, group_outputs: dict[str, list[str]], ident: str
) -> None:
    _check(world, group_outputs, ident, EE_SPKI)


def test_single_file_single_params(world: RecordsWorld) -> None:
    """The plain form: one file, one --params, exactly one line, no '; FILE' header."""
    inp = world.inputs["rsa4096.fullchain"]
    for p in (Params(3, 1, 1), Params(2, 0, 2), Params(3, 0, 0)):
        proc = run_cli("records", "--params", str(p), inp.path)
        assert (proc.returncode, proc.stderr) == (0, "")
        assert proc.stdout == inp.expected(p) + "\n"


def test_defaults_per_kind(world: RecordsWorld) -> None:
    """Without --params: "3 1 1" and "3 0 1" for certificates, "3 1 1" alone for keys."""
    cert, key = world.inputs["ed25519.self.pem"], world.inputs["ed25519.key.pk8"]
    proc = run_cli("records", cert.path)
    assert proc.stdout.splitlines() == [
        cert.expected(Params(3, 1, 1)),
        cert.expected(Params(3, 0, 1)),
    ]
    proc = run_cli("records", key.path)
    assert proc.stdout.splitlines() == [key.expected(Params(3, 1, 1))]


def test_owner_forms_ttl_and_json(world: RecordsWorld) -> None:
    inp = world.inputs["p384.fullchain"]
    want = [inp.expected(p) for p in ALL]

    proc = run_cli("records", *params_args(ALL), "--host", "mx.example.test", inp.path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"_25._tcp.mx.example.test. 3600 IN TLSA {w}" for w in want]

    proc = run_cli("records", *params_args(ALL), "--host", "mx.example.test.", "--port", "465",
                   "--proto", "sctp", "--ttl", "300", inp.path)  # fmt: skip
    lines = proc.stdout.splitlines()
    assert lines == [f"_465._sctp.mx.example.test. 300 IN TLSA {w}" for w in want]
    # the zone-file lines are valid master-file syntax with the right rdata
    for line, p in zip(lines, ALL, strict=True):
        owner, ttl, _, _, *rdata = line.split()
        rrset = dns.rrset.from_text(owner, int(ttl), "IN", "TLSA", " ".join(rdata))
        assert rrset.rdtype == dns.rdatatype.TLSA and rrset.rdclass == dns.rdataclass.IN
        assert records.to_text(next(iter(rrset))) == inp.expected(p)  # type: ignore[arg-type]

    proc = run_cli("records", *params_args(ALL), "--name", "_443._tcp.www.example.test",
                   "--ttl", "60", inp.path)  # fmt: skip
    assert proc.stdout.splitlines() == [f"_443._tcp.www.example.test. 60 IN TLSA {w}" for w in want]

    proc = run_cli("records", *params_args(ALL), "--host", "mx.example.test", "--ttl", "120",
                   "--output", "json", inp.path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    js = validate("records", proc.stdout)["records"]
    assert len(js) == len(ALL)
    for item, p, w in zip(js, ALL, want, strict=True):
        assert item == {
            "file": str(inp.path),
            "owner": "_25._tcp.mx.example.test.",
            "ttl": 120,
            "usage": p.usage,
            "selector": p.selector,
            "mtype": p.mtype,
            "data": w.split()[3],
            "text": w,
        }
    proc = run_cli("records", "--params", "3 1 1", "--output", "json", inp.path)
    assert validate("records", proc.stdout)["records"][0]["owner"] is None


def test_mnemonic_params(world: RecordsWorld) -> None:
    inp = world.inputs["p256.fullchain"]
    proc = run_cli("records", "--params", "DANE-TA Cert SHA2-512", "--params", "dane-ee spki full",
                   inp.path)  # fmt: skip
    assert proc.stdout.splitlines() == [
        inp.expected(Params(2, 0, 2)),
        inp.expected(Params(3, 1, 0)),
    ]


def test_ta_depth(world: RecordsWorld) -> None:
    full = world.inputs["rsa2048.fullchain"]
    usage2 = [p for p in ALL if p.usage in (0, 2)]
    proc = run_cli("records", *params_args(usage2), "--ta-depth", "2", full.path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [full.expected(p, ta_depth=2) for p in usage2]
    # depth 2 really is the root: the same as the root certificate file's own records
    root_cert = cert_der(world.root)
    assert proc.stdout.splitlines()[1] == f"2 0 1 {digest(1, root_cert)}"
    # usage 3 records are unaffected by --ta-depth
    proc = run_cli("records", "--params", "3 1 1", "--ta-depth", "2", full.path)
    assert proc.stdout.strip() == full.expected(Params(3, 1, 1))

    two = world.inputs["rsa2048.chain2"]
    proc = run_cli("records", "--params", "2 1 1", "--ta-depth", "2", two.path)
    assert_one_line_error(proc, str(two.path), "chain position 2", "2 certificate(s)")
    proc = run_cli("records", "--params", "2 1 1", "--ta-depth", "0", full.path)
    assert_one_line_error(proc, "trust-anchor depth 0")


def test_usage_and_selector_errors(world: RecordsWorld) -> None:
    key = world.inputs["p256.key.pk8"].path
    proc = run_cli("records", "--params", "3 0 1", key)
    assert_one_line_error(proc, str(key), "selector 0", "needs a certificate", "private key")
    csr = world.inputs["ed448.csr.der"].path
    proc = run_cli("records", "--params", "3 0 1", csr)
    assert_one_line_error(proc, str(csr), "selector 0", "csr")
    single = world.inputs["p256.self.pem"].path
    proc = run_cli("records", "--params", "2 0 1", single)
    assert_one_line_error(proc, str(single), "usage 2 needs the CA certificate above the leaf")
    proc = run_cli("records", "--params", "0 1 1", key)
    assert_one_line_error(proc, str(key), "usage 0")
    # one bad file among good ones fails the call with the bad file named
    good = world.inputs["p256.fullchain"].path
    proc = run_cli("records", "--params", "3 0 1", good, key)
    assert_one_line_error(proc, str(key))
    for bad in ("3 1 9", "3 1", "4 1 1", "3 SPKY 1"):
        proc = run_cli("records", "--params", bad, good)
        assert_one_line_error(proc, "invalid TLSA parameters", repr(bad))


def test_owner_option_errors(world: RecordsWorld) -> None:
    f = world.inputs["p256.fullchain"].path
    assert_one_line_error(run_cli("records", "--host", "a.test", "--name", "b.test", f), "--name")
    assert_one_line_error(
        run_cli("records", "--host", "mx.test", "--port", "0", f), "--port", "0 out of range"
    )
    assert_one_line_error(run_cli("records", "--ttl", "-1", f), "--ttl", "-1 out of range")


def test_two_hundred_files_one_process(tmp_path: Path, ca: pki.Issued) -> None:
    """200 different inputs, one invocation, the right records under each file's header."""
    inter = pki.make_ca("intermediate", issuer=ca)
    files: list[Path] = []
    expected: dict[str, list[str]] = {}
    spec = [Params(3, 1, 1), Params(3, 0, 1), Params(2, 1, 2)]
    kinds = pki.KEY_TYPES[3:]  # skip the slow RSA sizes; ecdsa and eddsa
    for i in range(200):
        leaf = pki.make_leaf(inter, [f"h{i}.example.test"], kinds[i % len(kinds)])
        f = tmp_path / f"cert{i:03d}.pem"
        f.write_bytes(pki.fullchain_pem(leaf, inter, ca))
        files.append(f)
        leaf_der = leaf.cert.public_bytes(serialization.Encoding.DER)
        spki = leaf.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        ta_spki = inter.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        expected[str(f)] = [
            f"3 1 1 {hashlib.sha256(spki).hexdigest()}",
            f"3 0 1 {hashlib.sha256(leaf_der).hexdigest()}",
            f"2 1 2 {hashlib.sha512(ta_spki).hexdigest()}",
        ]
    proc = run_cli("records", *params_args(spec), *files)
    assert (proc.returncode, proc.stderr) == (0, "")
    got = sections(proc.stdout)
    assert list(got) == [str(f) for f in files]
    assert got == expected
    assert len(set(got[str(files[0])]) & set(got[str(files[1])])) == 1  # same TA, nothing else


def test_records_reads_each_file_once_and_spawns_nothing(
    tmp_path: Path,
    ca: pki.Issued,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Design check behind the benchmark: N files -> N reads, N parses, no subprocess."""
    from tlsarotate import cli

    n = 2000
    leafs = [pki.make_leaf(ca, [f"h{i}.example.test"]) for i in range(4)]
    for i in range(n):
        (tmp_path / f"{i:05d}.pem").write_bytes(pki.fullchain_pem(leafs[i % 4], ca))
    reads: dict[str, int] = {}
    parses: list[str] = []
    real_open, real_parse = os.open, material.parse

    def counting_open(path: Any, flags: int, *a: Any, **k: Any) -> int:
        # every file the user names is read through fsutil.read_file: one open each
        reads[str(path)] = reads.get(str(path), 0) + 1
        return real_open(path, flags, *a, **k)

    def counting_parse(data: bytes, source: object) -> material.Material:
        parses.append(str(source))
        return real_parse(data, source)  # type: ignore[arg-type]

    def no_subprocess(*a: object, **k: object) -> None:
        raise AssertionError("records must not start a subprocess")

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(material, "parse", counting_parse)
    monkeypatch.setattr(subprocess.Popen, "__init__", no_subprocess)
    files = sorted(str(p) for p in tmp_path.iterdir())
    rc = cli.main(["records", "--params", "3 1 1", "--params", "2 0 1", *files])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert reads == dict.fromkeys(files, 1)
    assert sorted(parses) == files
    assert len(out.splitlines()) == 3 * n


# --- matching semantics ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def chain(world: RecordsWorld) -> list[bytes]:
    """[leaf, intermediate, root] DER, as openssl encodes them."""
    inp = world.inputs["p256.fullchain"]
    assert inp.ee_cert is not None
    return [inp.ee_cert, inp.ta_cert[1], inp.ta_cert[2]]


def rec(world: RecordsWorld, ident: str, p: Params, ta_depth: int = 1) -> TLSA:
    return records.from_text(world.inputs[ident].expected(p, ta_depth))


def test_build_roundtrip_matches(world: RecordsWorld, chain: list[bytes]) -> None:
    m = certfiles.load(world.inputs["p256.fullchain"].path)
    assert list(m.chain_der) == chain
    for p in ALL:
        for depth in (1, 2):
            rd = records.build(m, p, depth)
            assert records.matches(rd, chain), (p, depth)
            assert records.to_text(rd) == world.inputs["p256.fullchain"].expected(p, depth)


def test_usage3_matches_leaf_only(world: RecordsWorld, chain: list[bytes]) -> None:
    leaf = rec(world, "p256.fullchain", Params(3, 1, 1))
    assert records.matches(leaf, chain)
    assert not records.matches(leaf, chain[1:])  # the same key one position up is no leaf
    ta_as_ee = records.from_text(f"3 0 1 {digest(1, chain[1])}")
    assert not records.matches(ta_as_ee, chain)
    pkix_ee = rec(world, "p256.fullchain", Params(1, 0, 2))
    assert records.matches(pkix_ee, chain)
    other = rec(world, "p384.fullchain", Params(3, 1, 1))
    assert not records.matches(other, chain)


def test_usage2_any_ca_above_leaf(world: RecordsWorld, chain: list[bytes]) -> None:
    for depth in (1, 2):
        for p in (Params(2, 0, 1), Params(2, 1, 2), Params(0, 1, 0)):
            rd = rec(world, "p256.fullchain", p, depth)
            assert records.matches(rd, chain)
            assert not records.matches(rd, chain[:1])  # leaf alone: no CA to match
    leaf_as_ta = records.from_text(f"2 0 1 {digest(1, chain[0])}")
    assert not records.matches(leaf_as_ta, chain)
    # an intermediate-only record matches a chain that omits the root
    assert records.matches(rec(world, "p256.fullchain", Params(2, 1, 1), 1), chain[:2])
    assert not records.matches(rec(world, "p256.fullchain", Params(2, 1, 1), 2), chain[:2])


def test_accepts_every_combo_must_match(world: RecordsWorld, chain: list[bytes]) -> None:
    good = rec(world, "p256.fullchain", Params(3, 1, 1))
    good2 = rec(world, "p256.fullchain", Params(3, 1, 2))
    bad2 = rec(world, "p384.fullchain", Params(3, 1, 2))  # another key, sha-512
    bad1 = rec(world, "p384.fullchain", Params(3, 1, 1))
    ta = rec(world, "p256.fullchain", Params(2, 0, 1))
    foreign_ta = records.from_text(f"2 0 1 {digest(1, chain[0])}")

    assert records.accepts([good], chain)
    assert records.accepts([good, good2], chain)
    assert not records.accepts([good, bad2], chain)  # {3 1 1 good, 3 1 2 bad}: NOT accepted
    assert records.unmatched_combos([good, bad2], chain) == [Params(3, 1, 2)]
    assert records.accepts([good, bad1], chain)  # same combination: one match is enough
    assert records.unmatched_combos([good, bad1], chain) == []
    assert records.accepts([good, ta], chain)
    assert not records.accepts([good, foreign_ta], chain)
    assert records.unmatched_combos([good, foreign_ta, bad2], chain) == [
        Params(2, 0, 1),
        Params(3, 1, 2),
    ]
    assert not records.accepts([bad1], chain)
    assert records.unmatched_combos([bad1], chain) == [Params(3, 1, 1)]
    assert not records.accepts([good], [])  # nothing served: nothing matches
    # no records: nothing to contradict (vacuously true; callers check for emptiness)
    assert records.accepts([], chain) and records.unmatched_combos([], chain) == []


def test_unknown_parameters_never_match(chain: list[bytes]) -> None:
    sha512 = digest(2, chain[0])
    assert records.matches(records.from_text(f"3 0 2 {sha512}"), chain)
    for text in (f"3 0 3 {sha512}", f"4 0 2 {sha512}", f"3 2 2 {sha512}", f"255 0 2 {sha512}"):
        rd = records.from_text(text)
        assert not records.matches(rd, chain), text
        assert not records.accepts([rd], chain)


def test_matches_tolerates_garbage_chain(chain: list[bytes]) -> None:
    rd = records.from_text(f"2 1 1 {'00' * 32}")
    assert not records.matches(rd, [chain[0], b"\x30\x03garbage"])


def test_matches_material_bare_key(world: RecordsWorld) -> None:
    key = certfiles.load(world.inputs["ed25519.key.pk8"].path)
    assert records.matches_material(rec(world, "ed25519.key.pk8", Params(3, 1, 1)), key)
    assert records.matches_material(rec(world, "ed25519.key.pk8", Params(1, 1, 0)), key)
    assert not records.matches_material(rec(world, "ed448.key.pk8", Params(3, 1, 1)), key)
    cert = certfiles.load(world.inputs["ed25519.fullchain"].path)
    assert records.matches_material(rec(world, "ed25519.key.pk8", Params(3, 1, 2)), cert)


def test_from_text_forms(world: RecordsWorld) -> None:
    t = world.inputs["p256.fullchain"].expected(Params(3, 1, 1))
    h = t.split()[3]
    chunked = f"3 1 1 {h[:20].upper()} {h[20:]}"
    assert records.to_text(records.from_text(chunked)) == t
    with pytest.raises(RecordError, match=r"invalid TLSA record .*3 1 1"):
        records.from_text(f"3 1 1 {h[:-2]}")
    with pytest.raises(RecordError, match="invalid TLSA record"):
        records.from_text("3 1 1 zz")


@pytest.fixture(autouse=True, scope="module")
def _openssl_present() -> Iterator[None]:
    assert OPENSSL is not None, "openssl must be installed: it is the oracle of this module"
    yield


@pytest.mark.parametrize("host", ["a..b.example", "x" * 64 + ".example"])
def test_records_bad_host_is_one_line(tmp_path: Path, host: str) -> None:
    from tests.support.helpers import assert_one_line_error

    ca = pki.make_ca()
    f = tmp_path / "c.pem"
    f.write_bytes(pki.fullchain_pem(pki.make_leaf(ca, ["mx.example.test"]), ca))
    assert_one_line_error(run_cli("records", f, "--host", host), "invalid --host")
