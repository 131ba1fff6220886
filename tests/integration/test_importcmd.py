# ruff: noqa: F811
"""``tlsarotate import`` end to end, the CLI as a subprocess: records published on a real BIND
(RFC 2136, the owners listed by AXFR) and in a zone file; the printed services, merged beside
the providers: section, pass ``validate`` and give an idle ``plan`` (exit 0) when the deployed
certificate matches; records no certificate accounts for are comments and a warning line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dns.name
import dns.update
import pytest
import yaml

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.schemas import validate
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tlsarotate import certfiles, material, pki, records
from tlsarotate.material import Material

ZONE = "example.test."
CA = pki.make_ca()


def pair(d: Path, *hosts: str) -> Material:
    """A certificate for ``hosts`` written to d/fullchain.pem + d/privkey.pem."""
    leaf = pki.make_leaf(CA, list(hosts))
    d.mkdir(parents=True, exist_ok=True)
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, CA))
    (d / "privkey.pem").write_bytes(leaf.key_pem)
    return certfiles.load_pair(d / "fullchain.pem", d / "privkey.pem")


def texts(m: Material, *params: str) -> list[str]:
    return [records.to_text(records.build(m, records.parse_params(p))) for p in params]


def deployed(host: str, d: Path) -> list[str]:
    return ["--deployed", f"{host}={d / 'fullchain.pem'},{d / 'privkey.pem'}"]


def ok(p: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert p.returncode == 0, p.stderr + p.stdout
    return p


def merged(tmp: Path, providers: str, services: str) -> Path:
    """The config an operator writes: state, the providers: section and the import's output."""
    cfg = tmp / "config.yaml"
    cfg.write_text(f"state_dir: {tmp / 'state'}\nsafety_margin: 0\n{providers}{services}")
    return cfg


def assert_idle(cfg: Path) -> None:
    v = ok(run_cli("validate", "-c", cfg))
    assert "ok" in v.stdout
    p = run_cli("plan", "-c", cfg, "--output", "json")
    assert p.returncode == 0, p.stderr + p.stdout
    plans = json.loads(p.stdout)["services"]
    assert plans and all(s["phase"] == "idle" and not s["changes"] for s in plans), plans


# ---- a real BIND: rfc2136, owners listed by AXFR --------------------------------------------


def bind_providers(bind: BindServers, read: str) -> str:
    return (
        "providers:\n  bind:\n    type: rfc2136\n    server: 127.0.0.1\n"
        f"    port: {bind.port}\n    tsig_key_file: {bind.key_file}\n    read: {read}\n"
    )


def publish(bind: BindServers, rrsets: dict[str, tuple[int, list[str]]]) -> None:
    def build(msg: dns.update.UpdateMessage) -> None:
        for owner, (ttl, rds) in rrsets.items():
            for t in rds:
                msg.add(dns.name.from_text(owner), ttl, "TLSA", t)

    bind.update(ZONE, build=build)
    bind.wait_synced(ZONE)


def nameservers(bind: BindServers) -> list[str]:
    return [a for ns in bind.nameservers for a in ("--nameserver", str(ns))]


@pytest.mark.parametrize("read", ["query", "axfr"])
def test_bind_import_validates_and_plans_idle(bind: BindServers, tmp_path: Path, read: str) -> None:
    mx = pair(tmp_path / "mx", "mx1.example.test", "mx2.example.test")
    other = pair(tmp_path / "other", "other.example.test")
    theirs = texts(other, "3 1 1")[0]
    publish(
        bind,
        {
            "_25._tcp.mx1.example.test.": (300, [*texts(mx, "3 1 1", "3 0 1"), theirs]),
            "_25._tcp.mx2.example.test.": (300, texts(mx, "3 1 1", "3 0 1")),
            "_443._tcp.www.example.test.": (600, texts(other, "3 1 1")),
        },
    )
    providers = bind_providers(bind, read)
    (tmp_path / "providers.yaml").write_text(providers)
    imp = ok(
        run_cli(
            "import",
            "-c",
            tmp_path / "providers.yaml",
            "--zone",
            "example.test",
            *deployed("mx1.example.test", tmp_path / "mx"),
            *deployed("mx2.example.test", tmp_path / "mx"),
            *deployed("www.example.test", tmp_path / "other"),
            *nameservers(bind),
        )
    )
    services = yaml.safe_load(imp.stdout)["services"]
    by_name = {s["name"]: s for s in services}
    assert set(by_name) == {"mx1.example.test", "www.example.test"}
    mail = by_name["mx1.example.test"]
    assert mail["hosts"] == ["mx1.example.test", "mx2.example.test"]
    assert (mail["ports"], mail["protocol"], mail["ttl"]) == ([25], "tcp", 300)
    assert mail["records"] == ["3 1 1", "3 0 1"]
    assert (mail["zone"], mail["provider"]) == (ZONE, "bind")
    assert mail["certificate"]["deployed"] == {
        "cert": str(tmp_path / "mx" / "fullchain.pem"),
        "key": str(tmp_path / "mx" / "privkey.pem"),
    }
    www = by_name["www.example.test"]
    assert (www["ports"], www["ttl"]) == ([443], 600)
    # the record nobody accounts for: a comment, and one warning line
    assert [ln.lstrip()[:15] for ln in imp.stdout.splitlines() if theirs in ln] == [
        "# unaccounted: "
    ]
    warnings = imp.stderr.strip().splitlines()
    assert any("1 published record(s) at 1 owner(s)" in w for w in warnings), imp.stderr
    assert all(w.startswith("tlsarotate: warning: ") for w in warnings), imp.stderr
    assert_idle(merged(tmp_path, providers, imp.stdout))


def test_bind_named_owners_and_a_certificate_that_does_not_match(
    bind: BindServers, tmp_path: Path
) -> None:
    mx = pair(tmp_path / "mx", "mx1.example.test")
    wrong = pair(tmp_path / "wrong", "mx1.example.test")
    publish(bind, {"_25._tcp.mx1.example.test.": (300, texts(mx, "3 1 1"))})
    (tmp_path / "providers.yaml").write_text(bind_providers(bind, "query"))
    imp = ok(
        run_cli(
            "import",
            "-c",
            tmp_path / "providers.yaml",
            "--zone",
            "example.test",
            "--owner",
            "_25._tcp.mx1.example.test",
            "--cert",
            f"mx1.example.test={tmp_path / 'wrong' / 'fullchain.pem'}",
            "--output",
            "json",
        )
    )
    doc = validate("import", imp.stdout)
    assert doc["services"] == []
    assert [u["record"] for u in doc["unaccounted"]] == texts(mx, "3 1 1")
    assert (
        "does not match the certificate given for mx1.example.test"
        in (doc["unaccounted"][0]["reason"])
    )
    assert "matches none of its 1 record(s)" in imp.stderr
    assert wrong.fingerprint != mx.fingerprint


# ---- a zone file ----------------------------------------------------------------------------

ZONE_HEAD = "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n"
ZONE_HEAD += "@ NS ns1\nns1 A 127.0.0.1\nmx A 127.0.0.1\n"


def zonefile(tmp: Path, lines: list[str]) -> str:
    (tmp / "example.test.zone").write_text(ZONE_HEAD + "\n".join(lines) + "\n")
    return f"providers:\n  zf:\n    type: zonefile\n    path: {tmp / 'example.test.zone'}\n"


def test_zonefile_import_validates_and_plans_idle(tmp_path: Path) -> None:
    mx = pair(tmp_path / "mx", "mx.example.test")
    lines = [f"_25._tcp.mx 3600 IN TLSA {t}" for t in texts(mx, "3 1 1", "3 1 2")]
    lines += [f"_465._tcp.mx 3600 IN TLSA {t}" for t in texts(mx, "3 1 1", "3 1 2")]
    lines += [f"www 300 IN TLSA 3 1 1 {'ab' * 32}"]
    providers = zonefile(tmp_path, lines)
    (tmp_path / "providers.yaml").write_text(providers)
    imp = ok(
        run_cli(
            "import",
            "-c",
            tmp_path / "providers.yaml",
            "--zone",
            "example.test.",
            *deployed("mx.example.test", tmp_path / "mx"),
            "--observe",
            "provider",
        )
    )
    (svc,) = yaml.safe_load(imp.stdout)["services"]
    assert (svc["hosts"], svc["ports"], svc["ttl"]) == (["mx.example.test"], [25, 465], 3600)
    assert (svc["records"], svc["observe"]) == (["3 1 1", "3 1 2"], "provider")
    assert "#   www.example.test. 300 IN TLSA 3 1 1 abab" in imp.stdout
    assert "not a _PORT._PROTO.HOST name" in imp.stdout
    assert "1 published record(s) at 1 owner(s)" in imp.stderr
    assert_idle(merged(tmp_path, providers, imp.stdout))


def test_zonefile_without_certificates_says_what_to_fill_in(tmp_path: Path) -> None:
    m = material.parse(pki.fullchain_pem(pki.make_leaf(CA, ["mx.example.test"]), CA), "x")
    providers = zonefile(tmp_path, [f"_25._tcp.mx 300 IN TLSA {t}" for t in texts(m, "3 1 1")])
    (tmp_path / "providers.yaml").write_text(providers)
    imp = ok(run_cli("import", "-c", tmp_path / "providers.yaml", "--zone", "example.test"))
    (svc,) = yaml.safe_load(imp.stdout)["services"]
    assert svc["certificate"]["deployed"]["cert"].startswith("/CHANGE-ME/mx.example.test/")
    assert "adopted unconfirmed" in imp.stderr
    assert "deployed certificate paths unknown" in imp.stderr
    v = run_cli("validate", "-c", merged(tmp_path, providers, imp.stdout))
    assert v.returncode == 1 and "/CHANGE-ME/" in v.stderr + v.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--provider", "nope"], ["--provider", "nope", "zf"]),
        (["--deployed", "mx.example.test"], ["--deployed", "HOST=FILE"]),
        (["--deployed", "mx.other.test=a,b"], ["not inside zone example.test."]),
        (["--cert", "mx.example.test=/nonexistent.pem"], ["/nonexistent.pem"]),
        (["--owner", "_25._tcp.mx.other.test"], ["not inside zone"]),
        (["--nameserver", "not an address"], ["--nameserver"]),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    (tmp_path / "providers.yaml").write_text(zonefile(tmp_path, []))
    p = run_cli("import", "-c", tmp_path / "providers.yaml", "--zone", "example.test", *args)
    assert_one_line_error(p, *needles)
    assert p.returncode == 1 and p.stdout == ""


def test_the_root_as_zone_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text(zonefile(tmp_path, []))
    p = run_cli("import", "-c", tmp_path / "providers.yaml", "--zone", ".")
    assert_one_line_error(p, "--zone", "invalid DNS name '.'")
    assert p.returncode == 1 and p.stdout == ""
