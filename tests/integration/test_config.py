"""``tlsarotate validate``: every broken config is ONE line naming file, line and key path.

The matrix runs ``tlsarotate.cli.main`` in-process (capsys) so that a test-only provider type
can be registered with monkeypatch: the config tests must not depend on which real providers
exist in this build. The stand-in declares the options the matrix needs (a required path and
a list), exactly like a real provider class does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tlsarotate import cli, config, pki, records
from tlsarotate.config import schema
from tlsarotate.errors import ConfigError
from tlsarotate.providers import BUILTIN, Option, Provider, WriteResult, get_class
from tlsarotate.providers import base as provider_base

ROOT = Path(__file__).resolve().parents[2]
STANDIN = "t-zonefile"


class StandInZoneFile(Provider):
    """Options only; never reads or writes DNS."""

    type_name = STANDIN
    options: ClassVar[Mapping[str, Option]] = {
        "path": Option(str, required=True, path=True, help="zone file"),
        "reload": Option(list, help="command to run after a write"),
        "serial": Option(str, default="unixtime", choices=("unixtime", "increment")),
        "timeout": Option((int, float), default=10.0),
    }

    @classmethod
    def check_files(cls, name: str, options: Mapping[str, Any]) -> None:
        if not Path(options["path"]).is_file():
            raise ConfigError(f"zone file {options['path']} not found", key="path")

    def read(self, zone: Any, owners: Any) -> Any:  # pragma: no cover - never called
        raise AssertionError

    def apply(self, change: Any) -> WriteResult:  # pragma: no cover - never called
        raise AssertionError


@pytest.fixture(autouse=True)
def standin_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUILTIN, STANDIN, f"{__name__}:StandInZoneFile")


BASE = """\
# tlsarotate test config
state_dir: state
safety_margin: 60
providers:
  primary:
    type: t-zonefile
    path: zones/example.test.zone
    reload: [rndc, reload, example.test]
services:
  - name: mail
    zone: example.test
    provider: primary
    hosts:
      - mx.example.test
    ports:
      - 25
      - 465
    ttl: 300
    records:
      - "3 1 1"
      - "2 0 1"
    certificate:
      deployed:
        cert: certs/mail.crt
        key: certs/mail.key
      next:
        cert: certs/mail-next.crt
        key: certs/mail-next.key
  - name: web
    zone: example.test
    provider: primary
    hosts: [www.example.test]
    ports: [443]
    certificates:
      - name: ecdsa
        deployed:
          combined: certs/web.pem
"""


@pytest.fixture
def confdir(tmp_path: Path, ca: pki.Issued) -> Path:
    """A directory with every file BASE names: a valid, complete setup."""
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "example.test.zone").write_text("; zone\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("mail", "mail-next"):
        leaf = pki.make_leaf(ca, ["mx.example.test"])
        (certs / f"{name}.crt").write_bytes(pki.fullchain_pem(leaf, ca))
        (certs / f"{name}.key").write_bytes(leaf.key_pem)
    web = pki.make_leaf(ca, ["www.example.test"])
    (certs / "web.pem").write_bytes(web.key_pem + pki.fullchain_pem(web, ca))
    return tmp_path


def run_validate(
    capsys: pytest.CaptureFixture[str], cfg: Path, *extra: str
) -> tuple[int, str, str]:
    rc = cli.main(["-c", str(cfg), "validate", *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_config_error(rc: int, err: str, *needles: str) -> str:
    assert rc == 1, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """1-based number of the nth line containing ``marker``."""
    hits = [i + 1 for i, ln in enumerate(text.splitlines()) if marker in ln]
    assert len(hits) >= nth, f"{marker!r} not in config text"
    return hits[nth - 1]


def replace(old: str, new: str, nth: int = 1) -> Callable[[str], str]:
    def f(text: str) -> str:
        parts = text.split(old)
        assert len(parts) > nth, f"{old!r} occurs fewer than {nth} times"
        return old.join(parts[:nth]) + new + old.join(parts[nth:])

    return f


def insert_after(anchor: str, new: str) -> Callable[[str], str]:
    return replace(anchor, anchor + new)


Marker = str | tuple[str, int] | None
# (id, mutation, key path, marker of the line the error must point at (None: no line), needles)
CASES: list[tuple[str, Callable[[str], str], str, Marker, tuple[str, ...]]] = [
    (
        "unknown-top-level-key",
        insert_after("safety_margin: 60\n", "colour: blue\n"),
        "colour",
        "colour: blue",
        ("unknown key", "allowed: "),
    ),
    (
        "unknown-service-key-typo",
        replace("    hosts:\n", "    hostz:\n"),
        "services[0].hostz",
        "hostz:",
        ("did you mean 'hosts'?",),
    ),
    (
        "unknown-provider-option-typo",
        replace("    reload: [rndc", "    relaod: [rndc"),
        "providers.primary.relaod",
        "relaod:",
        ("did you mean 'reload'?",),
    ),
    (
        "missing-required-service-key",
        replace("    zone: example.test\n", ""),
        "services[0].zone",
        "- name: mail",
        ("required key is missing",),
    ),
    (
        "missing-required-provider-option",
        replace("    path: zones/example.test.zone\n", ""),
        "providers.primary.path",
        "type: t-zonefile",
        ("required key is missing",),
    ),
    (
        "port-0",
        replace("      - 465\n", "      - 0\n"),
        "services[0].ports[1]",
        "- 0",
        ("port 0 out of range 1-65535",),
    ),
    (
        "port-70000",
        replace("      - 465\n", "      - 70000\n"),
        "services[0].ports[1]",
        "- 70000",
        ("port 70000 out of range",),
    ),
    (
        "port-abc",
        replace("      - 465\n", "      - abc\n"),
        "services[0].ports[1]",
        "- abc",
        ("expected a whole number", "'abc'"),
    ),
    (
        "host-outside-zone",
        replace("      - mx.example.test\n", "      - mx.example.org\n"),
        "services[0].hosts[0]",
        "mx.example.org",
        ("not inside zone example.test.",),
    ),
    (
        "invalid-dns-name-empty-label",
        replace("      - mx.example.test\n", "      - mx..example.test\n"),
        "services[0].hosts[0]",
        "mx..example.test",
        ("invalid DNS name",),
    ),
    (
        "invalid-dns-name-space",
        replace("      - mx.example.test\n", "      - mail server.example.test\n"),
        "services[0].hosts[0]",
        "mail server",
        ("invalid DNS name", "'mail server'"),
    ),
    (
        "invalid-zone-name-leading-hyphen",
        replace("    zone: example.test\n", "    zone: -example.test\n"),
        "services[0].zone",
        "zone: -example.test",
        ("invalid DNS name",),
    ),
    (
        "params-3-1-9",
        replace('      - "3 1 1"\n', '      - "3 1 9"\n'),
        "services[0].records[0]",
        '"3 1 9"',
        ("matching type must be one of 0, 1, 2",),
    ),
    (
        "params-3-1",
        replace('      - "3 1 1"\n', '      - "3 1"\n'),
        "services[0].records[0]",
        '"3 1"',
        ("expected 'usage selector mtype'",),
    ),
    (
        "params-usage-7",
        replace('      - "3 1 1"\n', '      - "7 1 1"\n'),
        "services[0].records[0]",
        '"7 1 1"',
        ("usage must be one of 0, 1, 2, 3",),
    ),
    (
        "duplicate-params",
        replace('      - "2 0 1"\n', '      - "DANE-EE SPKI SHA2-256"\n'),
        "services[0].records[1]",
        "DANE-EE SPKI",
        ("duplicate 3 1 1",),
    ),
    (
        "unknown-provider-reference",
        replace("    provider: primary\n", "    provider: secondary\n"),
        "services[0].provider",
        "provider: secondary",
        ("unknown provider 'secondary'", "providers: primary"),
    ),
    (
        "unknown-provider-type",
        replace("    type: t-zonefile\n", "    type: bind-magic\n"),
        "providers.primary.type",
        "type: bind-magic",
        ("unknown provider type 'bind-magic'", "available:", "rfc2136", "route53", STANDIN),
    ),
    (
        "inline-secret",
        insert_after("    reload: [rndc, reload, example.test]\n", "    tsig_secret: hunter2\n"),
        "providers.primary.tsig_secret",
        "tsig_secret",
        ("secrets are never written inline", "tsig_secret_file", "tsig_secret_env"),
    ),
    (
        "inline-api-token",
        insert_after("    reload: [rndc, reload, example.test]\n", "    api_token: hunter2\n"),
        "providers.primary.api_token",
        "api_token",
        ("secrets are never written inline",),
    ),
    (
        "provider-option-wrong-type",
        replace("    reload: [rndc, reload, example.test]\n", "    reload: rndc reload\n"),
        "providers.primary.reload",
        "reload: rndc reload",
        ("expected a list",),
    ),
    (
        "provider-option-bad-choice",
        insert_after("    reload: [rndc, reload, example.test]\n", "    serial: date\n"),
        "providers.primary.serial",
        "serial: date",
        ("must be one of unixtime, increment",),
    ),
    (
        "provider-option-list-item-not-scalar",
        replace("    reload: [rndc, reload, example.test]\n", "    reload: [rndc, [reload]]\n"),
        "providers.primary.reload[1]",
        "reload: [rndc, [reload]]",
        ("expected a single value, got a list",),
    ),
    (
        "ttl-negative",
        replace("    ttl: 300\n", "    ttl: -5\n"),
        "services[0].ttl",
        "ttl: -5",
        ("ttl -5 out of range",),
    ),
    (
        "protocol-bogus",
        insert_after("      - 465\n", "    protocol: quic\n"),
        "services[0].protocol",
        "protocol: quic",
        ("must be tcp, udp or sctp",),
    ),
    (
        "same-owner-two-services",
        replace(
            "    hosts: [www.example.test]\n    ports: [443]\n", "    hosts: [mx.example.test]\n"
        ),
        "services[1]",
        "- name: web",
        ("_25._tcp.mx.example.test.", "already managed by service 'mail'"),
    ),
    (
        "same-owner-listed-twice",
        replace("      - 465\n", "      - 25\n"),
        "services[0]",
        "- name: mail",
        ("listed twice",),
    ),
    (
        "duplicate-service-name",
        replace("  - name: web\n", "  - name: mail\n"),
        "services[1].name",
        ("- name: mail", 2),  # the second one
        ("'mail' is already used by services[0]",),
    ),
    (
        "certificate-and-certificates",
        insert_after(
            "    ports: [443]\n",
            "    certificate:\n      deployed: {combined: certs/web.pem}\n",
        ),
        "services[1]",
        "- name: web",
        ("exactly one of certificate", "certificates"),
    ),
    (
        "no-certificate",
        replace(
            "    certificates:\n      - name: ecdsa\n        deployed:\n"
            "          combined: certs/web.pem\n",
            "",
        ),
        "services[1]",
        "- name: web",
        ("exactly one of certificate",),
    ),
    (
        "deployed-lineage",
        replace("          combined: certs/web.pem\n", "          lineage: /etc/le/live/web\n"),
        "services[1].certificates[0].deployed.lineage",
        "lineage:",
        ("only allowed for next",),
    ),
    (
        "cert-without-key",
        replace("        key: certs/mail.key\n", ""),
        "services[0].certificate.deployed.key",
        "cert: certs/mail.crt",  # a block mapping starts at its first key
        ("required with cert",),
    ),
    (
        "cert-and-combined",
        insert_after("        key: certs/mail.key\n", "        combined: certs/web.pem\n"),
        "services[0].certificate.deployed",
        "cert: certs/mail.crt",
        ("exactly one of: cert + key, combined",),
    ),
    (
        "empty-hosts",
        replace("    hosts:\n      - mx.example.test\n", "    hosts: []\n"),
        "services[0].hosts",
        "hosts: []",
        ("must not be empty",),
    ),
    (
        "hosts-empty-value",
        replace("    hosts:\n      - mx.example.test\n", "    hosts:\n"),
        "services[0].hosts",
        "    hosts:",
        ("expected a list, got nothing",),
    ),
    (
        "nameserver-not-ip",
        insert_after("    ttl: 300\n", "    nameservers: [192.0.2.1, ns1.example.test]\n"),
        "services[0].nameservers[1]",
        "nameservers:",
        ("'ns1.example.test' is not an IP address",),
    ),
    (
        "nameserver-port-out-of-range",
        insert_after("    ttl: 300\n", "    nameservers: ['[2001:db8::1]:99999']\n"),
        "services[0].nameservers[0]",
        "nameservers:",
        ("port 99999 out of range",),
    ),
    (
        "services-not-a-list",
        lambda t: t[: t.index("services:")] + "services:\n  mail: {}\n",
        "services",
        "  mail: {}",
        ("expected a list, got a mapping",),
    ),
    (
        "state-s3-without-bucket",
        insert_after("safety_margin: 60\n", "state:\n  backend: s3\n"),
        "state.bucket",
        "backend: s3",
        ("required when backend is s3",),
    ),
    (
        "state-bucket-with-file-backend",
        insert_after("safety_margin: 60\n", "state:\n  backend: file\n  bucket: b\n"),
        "state.bucket",
        "  bucket: b",
        ("only used with backend: s3",),
    ),
    (
        "observe-bogus",
        insert_after("    ttl: 300\n", "    observe: telepathy\n"),
        "services[0].observe",
        "observe: telepathy",
        ("must be dns or provider",),
    ),
    (
        "observe-read-bogus",
        insert_after("    ttl: 300\n", "    observe_read: ixfr\n"),
        "services[0].observe_read",
        "observe_read: ixfr",
        ("must be query or axfr",),
    ),
    (
        "observe-read-without-dns",
        insert_after("    ttl: 300\n", "    observe: provider\n    observe_read: axfr\n"),
        "services[0].observe_read",
        "observe_read: axfr",
        ("only meaningful with observe: dns",),
    ),
    (
        "nameservers-mode-bogus",
        insert_after(
            "    ttl: 300\n", "    nameservers: [192.0.2.1]\n    nameservers_mode: merge\n"
        ),
        "services[0].nameservers_mode",
        "nameservers_mode: merge",
        ("must be replace or add",),
    ),
    (
        "nameservers-mode-without-nameservers",
        insert_after("    ttl: 300\n", "    nameservers_mode: add\n"),
        "services[0].nameservers_mode",
        "nameservers_mode: add",
        ("only meaningful together with nameservers",),
    ),
    (
        "next-key-is-the-keep-ahead-file-itself",
        insert_after(
            "        key: certs/mail-next.key\n",
            "      next_key: {path: certs/mail-next.key}\n",
        ),
        "services[0].certificate.next.key",
        "key: certs/mail-next.key",
        ("must be a copy of the next key",),
    ),
    (
        "next-key-type-bogus",
        insert_after(
            "        key: certs/mail-next.key\n",
            "      next_key:\n        path: keys/next.key\n        type: dsa1024\n",
        ),
        "services[0].certificate.next_key.type",
        "type: dsa1024",
        ("must be one of", "ecdsa-p256", "ed25519"),
    ),
    (
        "next-key-without-path",
        insert_after(
            "        key: certs/mail-next.key\n", "      next_key:\n        type: rsa2048\n"
        ),
        "services[0].certificate.next_key.path",
        "        type: rsa2048",
        ("required key is missing",),
    ),
    (
        "verify-starttls-bogus",
        insert_after("        key: certs/mail-next.key\n", "      verify: {starttls: ftp}\n"),
        "services[0].certificate.verify.starttls",
        "verify: {starttls: ftp}",
        ("must be one of smtp, imap, pop3, none, auto",),
    ),
    (
        "verify-timeout-not-a-number",
        insert_after("        key: certs/mail-next.key\n", "      verify: {timeout: soon}\n"),
        "services[0].certificate.verify.timeout",
        "verify: {timeout: soon}",
        ("expected a number of seconds", "'soon'"),
    ),
    (
        "lock-timeout-negative",
        insert_after("safety_margin: 60\n", "lock_timeout: -1\n"),
        "lock_timeout",
        "lock_timeout: -1",
        ("lock_timeout -1 out of range 0-86400",),
    ),
    (
        "allow-unsigned-not-bool",
        insert_after("    ttl: 300\n", "    allow_unsigned: maybe\n"),
        "services[0].allow_unsigned",
        "allow_unsigned: maybe",
        ("expected true or false",),
    ),
    (
        "safety-margin-negative",
        replace("safety_margin: 60\n", "safety_margin: -1\n"),
        "safety_margin",
        "safety_margin: -1",
        ("out of range",),
    ),
    (
        "duplicate-key",
        insert_after("    ttl: 300\n", "    ttl: 600\n"),
        "services[0].ttl",
        "ttl: 600",
        ("duplicate key",),
    ),
    (
        "duplicate-certificate-names",
        insert_after(
            "          combined: certs/web.pem\n",
            "      - name: ecdsa\n        deployed: {combined: certs/web.pem}\n",
        ),
        "services[1].certificates",
        "      - name: ecdsa",
        ("certificate names must be unique",),
    ),
    (
        "service-name-bad-characters",
        replace("  - name: web\n", "  - name: web/../x\n"),
        "services[1].name",
        "name: web/../x",
        ("letters, digits",),
    ),
    (
        "yaml-python-tag",
        replace("    ttl: 300\n", "    ttl: !!python/name:os.system\n"),
        "services[0].ttl",
        "ttl: !!python",
        ("cannot read the value",),
    ),
    (
        "yaml-python-tag-on-list",
        replace("    ttl: 300\n", "    ttl: !!python/object/apply:os.system [true]\n"),
        "services[0].ttl",
        "ttl: !!python",
        ("expected a single value, got a list",),
    ),
    (
        "yaml-bad-int-tag",
        replace("    ttl: 300\n", "    ttl: !!int abc\n"),
        "services[0].ttl",
        "ttl: !!int",
        ("cannot read the value",),
    ),
    (
        "invalid-yaml-tab",
        replace("    ttl: 300\n", "\tttl: 300\n"),
        "",
        "\tttl: 300",
        ("not valid YAML",),
    ),
    (
        "invalid-yaml-unclosed-bracket",
        replace("    ports: [443]\n", "    ports: [443\n"),
        "",
        "    certificates:",  # the parser notices at the next key
        ("not valid YAML",),
    ),
    (
        "top-level-not-a-mapping",
        lambda t: "- just\n- a list\n",
        "",
        "- just",
        ("expected a mapping, got a list",),
    ),
    (
        "deployed-file-shared-by-two-slots",
        replace("          combined: certs/web.pem\n", "          combined: certs/mail.key\n"),
        "services[1].deployed.combined",
        "  - name: web",
        (
            "certificate 'ecdsa'",
            "already deployed by service 'mail' certificate",
            "files of its own",
        ),
    ),
    ("empty-file", lambda t: "", "", None, ("the config file is empty",)),
    ("comments-only-file", lambda t: "# nothing\n\n", "", None, ("the config file is empty",)),
]


@pytest.mark.parametrize(
    ("mutate", "keypath", "marker", "needles"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_validate_rejects(
    capsys: pytest.CaptureFixture[str],
    confdir: Path,
    mutate: Callable[[str], str],
    keypath: str,
    marker: Marker,
    needles: tuple[str, ...],
) -> None:
    text = mutate(BASE)
    assert text != BASE
    cfg = confdir / "config.yaml"
    cfg.write_text(text)
    rc, out, err = run_validate(capsys, cfg)
    assert out == ""
    if marker is None:
        where = f"{cfg}: "
    else:
        m, nth = (marker, 1) if isinstance(marker, str) else marker
        where = f"{cfg}:{line_of(text, m, nth)}: "
    line = assert_config_error(rc, err, where + (f"{keypath}: " if keypath else ""), *needles)
    assert "hunter2" not in line  # a secret value is never echoed


def test_rejection_cases_are_distinct() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


def test_base_config_is_valid(capsys: pytest.CaptureFixture[str], confdir: Path) -> None:
    cfg = confdir / "config.yaml"
    cfg.write_text(BASE)
    rc, out, err = run_validate(capsys, cfg)
    assert (rc, err) == (0, "")
    assert f"{cfg}: ok (2 service(s), 1 provider(s))" in out
    assert "mail/default: deployed" in out and "web/ecdsa: deployed" in out

    c = config.load(cfg)
    mail = c.service("mail")
    assert [o.to_text() for o in mail.owners] == [
        "_25._tcp.mx.example.test.",
        "_465._tcp.mx.example.test.",
    ]
    assert [str(p) for p in mail.params] == ["3 1 1", "2 0 1"]
    assert mail.ttl == 300
    assert mail.certificates[0].deployed.cert == confdir / "certs" / "mail.crt"
    # provider options: defaults filled in, paths resolved against the config's directory
    prov = c.providers["primary"]
    assert prov.options["path"] == confdir / "zones" / "example.test.zone"
    assert prov.options["reload"] == ["rndc", "reload", "example.test"]
    assert prov.options["serial"] == "unixtime"
    assert prov.lines["reload"] == line_of(BASE, "reload: [rndc")
    web = c.service("web")
    assert [str(p) for p in web.params] == ["3 1 1", "3 0 1"]
    assert web.certificates[0].deployed.combined == confdir / "certs" / "web.pem"

    rc, out, err = run_validate(capsys, cfg, "--output", "json")
    assert rc == 0 and '"ok": true' in out


def test_ok_variants(capsys: pytest.CaptureFixture[str], confdir: Path) -> None:
    """Forms that are valid and must stay valid."""
    slot_extra = (
        "      next_key: {path: keys/next.key, type: ed25519}\n"
        "      verify: {starttls: smtp, timeout: 2.5}\n"
        "      reload: [postfix reload]\n"
    )
    text = (
        BASE.replace(
            "    ttl: 300\n",
            "    ttl: 300\n    nameservers: ['127.0.0.1:5353', '::1', '[::1]:53']\n"
            "    observe: provider\n    protocol: tcp\n",
        )
        .replace("safety_margin: 60\n", "safety_margin: 60\nstate: {backend: s3, bucket: b}\n")
        .replace(
            "        key: certs/mail-next.key\n", "        key: certs/mail-next.key\n" + slot_extra
        )
        .replace("    reload: [rndc, reload, example.test]\n", "    timeout: 3\n")
        .replace("      - mx.example.test\n", "      - MX.Example.Test.\n")
    )
    cfg = confdir / "config.yaml"
    cfg.write_text(text)
    rc, _, err = run_validate(capsys, cfg)
    assert (rc, err) == (0, ""), err
    c = config.load(cfg)
    s = c.service("mail")
    assert [str(n) for n in s.nameservers] == ["127.0.0.1:5353", "[::1]:53", "[::1]:53"]
    assert s.owners[0] == records.owner_name("mx.example.test", 25)  # names compare caselessly
    slot = s.certificates[0]
    assert slot.next_key is not None and slot.next_key.type == "ed25519"
    assert slot.next_key.path == confdir / "keys" / "next.key"
    assert slot.verify is not None and slot.verify.starttls == "smtp"
    assert slot.verify.timeout == 2.5
    assert slot.reload == ("postfix reload",)
    assert c.state.backend == "s3" and c.state.bucket == "b"
    assert c.providers["primary"].options["timeout"] == 3.0
    assert "reload" not in c.providers["primary"].options


# --- validate loads the files the config names ------------------------------------------


def test_missing_deployed_cert(capsys: pytest.CaptureFixture[str], confdir: Path) -> None:
    cfg = confdir / "config.yaml"
    cfg.write_text(BASE)
    (confdir / "certs" / "mail.crt").unlink()
    rc, _, err = run_validate(capsys, cfg)
    assert_config_error(rc, err, "service 'mail'", str(confdir / "certs" / "mail.crt"), "not found")


def test_next_key_does_not_match_next_cert(
    capsys: pytest.CaptureFixture[str], confdir: Path
) -> None:
    cfg = confdir / "config.yaml"
    cfg.write_text(BASE)
    (confdir / "certs" / "mail-next.key").write_bytes(pki.key_pem(pki.new_key()))
    rc, _, err = run_validate(capsys, cfg)
    assert_config_error(
        rc, err, "service 'mail'", "mail-next.key", "does not belong", "mail-next.crt"
    )


def test_combined_file_key_mismatch(capsys: pytest.CaptureFixture[str], confdir: Path) -> None:
    cfg = confdir / "config.yaml"
    cfg.write_text(BASE)
    web = confdir / "certs" / "web.pem"
    chain_only = web.read_bytes().split(b"-----END PRIVATE KEY-----\n", 1)[1]
    web.write_bytes(pki.key_pem(pki.new_key()) + chain_only)
    rc, _, err = run_validate(capsys, cfg)
    assert_config_error(rc, err, "service 'web' certificate 'ecdsa'", str(web), "does not belong")


def test_usage2_needs_chain(
    capsys: pytest.CaptureFixture[str], confdir: Path, ca: pki.Issued
) -> None:
    """records: "2 0 1" needs the issuer in the deployed chain file."""
    cfg = confdir / "config.yaml"
    cfg.write_text(BASE)
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    (confdir / "certs" / "mail.crt").write_bytes(leaf.cert_pem)
    (confdir / "certs" / "mail.key").write_bytes(leaf.key_pem)
    rc, _, err = run_validate(capsys, cfg)
    assert_config_error(rc, err, "service 'mail'", "usage 2 needs the CA certificate above")


def test_next_key_file_must_be_private_key(
    capsys: pytest.CaptureFixture[str], confdir: Path
) -> None:
    text = BASE.replace(
        "        key: certs/mail-next.key\n",
        "        key: certs/mail-next.key\n      next_key: {path: certs/mail.crt}\n",
    )
    cfg = confdir / "config.yaml"
    cfg.write_text(text)
    rc, _, err = run_validate(capsys, cfg)
    assert_config_error(rc, err, "service 'mail'", "next_key must be a private key")


def test_provider_file_error_names_option_and_line(
    capsys: pytest.CaptureFixture[str], confdir: Path
) -> None:
    cfg = confdir / "config.yaml"
    cfg.write_text(BASE)
    (confdir / "zones" / "example.test.zone").unlink()
    rc, _, err = run_validate(capsys, cfg)
    assert_config_error(
        rc,
        err,
        f"{cfg}:{line_of(BASE, 'path: zones/')}: providers.primary.path: ",
        "example.test.zone not found",
    )


def test_config_file_problems(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run_validate(capsys, tmp_path / "nope.yaml")
    assert_config_error(rc, err, str(tmp_path / "nope.yaml"), "config file not found")
    rc, _, err = run_validate(capsys, tmp_path)
    assert_config_error(rc, err, str(tmp_path), "is a directory")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"services: [\xe9]\n")
    rc, _, err = run_validate(capsys, bad)
    assert_config_error(rc, err, str(bad), "not a UTF-8 text file")


def test_validate_subprocess_one_line(tmp_path: Path) -> None:
    """The real CLI process, too: one line, no traceback (no stand-in needed to fail here)."""
    from tests.support.helpers import assert_one_line_error, run_cli

    cfg = tmp_path / "config.yaml"
    cfg.write_text("providers: {}\nservices:\n  - name: x\n    zone: example.test\n    port: 25\n")
    proc = run_cli("-c", cfg, "validate")
    assert_one_line_error(proc, f"{cfg}:5: services[0].port: unknown key")


# --- config.example.yaml documents every key ----------------------------------------------


def _schema_keys() -> dict[str, set[str]]:
    keys = {
        "top level": set(schema.TOP_KEYS),
        "service": set(schema.SERVICE_KEYS),
        "certificate slot": set(schema.SLOT_KEYS),
        "certificate paths": set(schema.CERT_PATH_KEYS),
        "verify": set(schema.VERIFY_KEYS),
        "next_key": set(schema.NEXT_KEY_KEYS),
        "state": set(schema.STATE_KEYS),
        "tlsrpt": set(schema.TLSRPT_KEYS),
        "tlsrpt_record": set(schema.TLSRPT_RECORD_KEYS),
    }
    for ptype in sorted(set(BUILTIN) - {STANDIN}):
        cls = get_class(ptype)  # a built-in that cannot be imported fails this test
        keys[f"provider type {ptype}"] = {"type", *cls.options}
    return keys


def test_example_config_documents_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    example = ROOT / "config.example.yaml"
    assert example.is_file(), f"{example} is missing: the lead writes it (every key documented)"
    text = example.read_text()
    missing = []
    for where, keys in _schema_keys().items():
        for k in sorted(keys):
            # as a key (possibly commented out, as in "# tsig_secret_file: ...")
            if not re.search(rf"(^|[\s{{,#-]){re.escape(k)}:", text, re.M):
                missing.append(f"{where}: {k}")
    assert not missing, "config.example.yaml does not mention: " + ", ".join(missing)
    # and it is itself a valid config (file existence is not checked by parse)
    cfg = config.parse(text, example)
    assert cfg.services
    for pc in cfg.providers.values():
        assert pc.type in BUILTIN


def test_option_dataclass_unchanged() -> None:
    """The stand-in relies on these Option fields; fail loudly if the interface moves."""
    assert {"kind", "required", "default", "help", "choices", "path"} <= set(
        provider_base.Option.__dataclass_fields__
    )
