"""The rfc2136 provider's options and TSIG keys against real BIND: errors name their key, a key
file secret holding //, every spelling of an algorithm, a retried UPDATE polled through the
signing lag."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.tsigkeyring
import pytest

from tests.support.helpers import rd
from tests.support.provider_configs import line_of, validate_error, write_config
from tests.support.servers import BindServers, wait_until
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.rfc2136 import RFC2136Provider
from tlsarotate.providers.tsig import parse_key_file

ZONE = dns.name.from_text("example.test.")


A = records.owner_name("mx.example.test", 25)


@pytest.mark.parametrize(
    ("yaml_lines", "key"),
    [
        ("    server: ns1.example.test\n", "server"),
        ("    server: 127.0.0.1\n    port: 70000\n", "port"),
        ("    server: 127.0.0.1\n    retries: 0\n", "retries"),
        ("    server: 127.0.0.1\n    timeout: 0\n", "timeout"),
        ("    server: 127.0.0.1\n    tsig_key_file: missing.key\n", "tsig_key_file"),
        (
            "    server: 127.0.0.1\n    tsig_name: k\n    tsig_secret_file: missing.secret\n",
            "tsig_secret_file",
        ),
        (
            "    server: 127.0.0.1\n    tsig_name: k\n    tsig_secret_env: TLSAROTATE_NOPE_XYZ\n",
            "tsig_secret_env",
        ),
        (
            "    server: 127.0.0.1\n    tsig_name: k\n    tsig_algorithm: hmac-md5\n",
            "tsig_algorithm",
        ),
    ],
)
def test_rfc2136_option_errors_name_their_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yaml_lines: str, key: str
) -> None:
    monkeypatch.delenv("TLSAROTATE_NOPE_XYZ", raising=False)
    cfg = write_config(tmp_path, "    type: rfc2136\n" + yaml_lines)
    msg = validate_error(cfg)
    assert msg.startswith(f"{cfg}:{line_of(cfg, key)}: providers.p.{key}: "), msg


# 32 bytes whose base64 holds "//" (as 1-2% of tsig-keygen's keys do)
SLASHED_SECRET = base64.b64encode(b"\xff\xff\xfe" + bytes(range(100, 129))).decode()


@pytest.fixture(scope="module")
def bind_slashes() -> Iterator[BindServers]:
    """A real BIND primary whose TSIG key's secret contains "//", in a key file with every
    comment style BIND accepts."""
    assert "//" in SLASHED_SECRET
    with tempfile.TemporaryDirectory(prefix="tlsarotate-bind-") as d:
        servers = BindServers(d, with_secondary=False)
        servers.key_file.write_text(
            "// written by hand, not by tsig-keygen\n"
            f'key "{servers.key_name}" {{\n'
            "\talgorithm hmac-sha256; # the default\n"
            f'\tsecret "{SLASHED_SECRET}"; /* 32 bytes */\n'
            "};\n"
        )
        servers.key_secret = SLASHED_SECRET
        servers.keyring = dns.tsigkeyring.from_text(
            {servers.key_name: ("hmac-sha256", SLASHED_SECRET)}
        )
        try:
            servers.start()
            yield servers
        finally:
            servers.stop()


@pytest.fixture
def bind(bind_slashes: BindServers) -> BindServers:
    bind_slashes.reset()
    return bind_slashes


def rfc(bind: BindServers, **overrides: Any) -> RFC2136Provider:
    return RFC2136Provider(
        "bind", bind.provider_options(**overrides), ProviderContext(clock=FakeClock())
    )


def test_rfc2136_key_file_secret_with_double_slash(bind: BindServers) -> None:
    key = parse_key_file(bind.key_file)
    assert key.secret.reveal() == base64.b64decode(SLASHED_SECRET)
    RFC2136Provider.check_files("bind", bind.provider_options())
    p = rfc(bind)
    res = p.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    wait_until(lambda: p.is_live(ZONE, res.tokens), 5, "the primary to serve the update")
    assert p.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    assert SLASHED_SECRET not in repr(p) + repr(p.key) + repr(vars(p))


def test_rfc2136_retried_update_polls_through_the_signing_lag(bind: BindServers) -> None:
    """The first UPDATE applies but its answer is lost; the retry fails its prerequisite; the
    signed zone serves the change a moment later (simulated: the first read after the retry
    still sees the old zone). That is our own write, not a concurrent change."""
    p = rfc(bind)
    new = TlsaRRset.of(300, [rd(1)])
    send, read = p._send, p.read
    lost = {"done": False}
    lag = {"reads": 1}

    def lossy(m: dns.message.Message) -> dns.message.Message:
        r = send(m)
        if m.opcode() == dns.opcode.UPDATE and not lost["done"]:
            lost["done"] = True
            wait_until(lambda: read(ZONE, [A]) == {A: new}, 5, "inline signing")
            raise dns.exception.Timeout
        return r

    def lagging(zone: dns.name.Name, owners: Any) -> Any:
        if p.sent["UPDATE"] >= 2 and lag["reads"]:
            lag["reads"] -= 1
            return {}
        return read(zone, owners)

    p._send = lossy  # type: ignore[method-assign,assignment]
    p.read = lagging  # type: ignore[method-assign]
    res = p.apply(ZoneChange(ZONE, (OwnerChange(A, None, new),)))
    assert p.sent["UPDATE"] == 2 and lag["reads"] == 0
    assert p.is_live(ZONE, res.tokens)


def test_rfc2136_tsig_algorithm_spellings_are_accepted(tmp_path: Path) -> None:
    from tlsarotate import config

    sf = tmp_path / "tsig.secret"
    sf.write_text(SLASHED_SECRET + "\n")
    cfg = write_config(
        tmp_path,
        "    type: rfc2136\n    server: 127.0.0.1\n    tsig_name: k\n"
        "    tsig_algorithm: HMAC-SHA256.\n    tsig_secret_file: tsig.secret\n",
    )
    loaded = config.load(cfg)
    p = RFC2136Provider("p", loaded.providers["p"].options, ProviderContext(base_dir=tmp_path))
    assert p.key is not None and p.key.algorithm == "hmac-sha256"
