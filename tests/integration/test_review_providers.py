"""Review fixes in the providers, each against a real or faithful backend: the fake Cloudflare API
(tests/support/fake_cloudflare.py), real BIND (tests/support/servers.py), moto_server, real zone
files."""

from __future__ import annotations

import base64
import hashlib
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

from tests.support import fake_cloudflare
from tests.support.fake_cloudflare import FakeCloudflare
from tests.support.servers import BindServers, wait_until
from tlsarotate import records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.cloudflare import CloudflareProvider
from tlsarotate.providers.rfc2136 import RFC2136Provider
from tlsarotate.providers.tsig import parse_key_file

cf_server = fake_cloudflare.cf_server

ZONE = dns.name.from_text("example.test.")
A = records.owner_name("mx.example.test", 25)
B = records.owner_name("mx2.example.test", 25)
TOKEN = "cf-review-token-1123581321"
ENV = "TLSAROTATE_TEST_CF_REVIEW"


def rd(i: int, params: str = "3 1 1") -> Any:
    return records.from_text(f"{params} {hashlib.sha256(str(i).encode()).hexdigest()}")


def one_line(err: BaseException, *needles: str, secrets: tuple[str, ...] = ()) -> str:
    text = str(err)
    assert "\n" not in text and text, repr(text)
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    for s in secrets:
        assert s not in text, f"secret {s!r} in {text!r}"
    return text


# ------------------------------------------------------------------------------- cloudflare


@pytest.fixture
def fake(cf_server: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> FakeCloudflare:
    cf_server.reset()
    cf_server.tokens = {TOKEN}
    cf_server.zone_id = cf_server.add_zone("example.test")  # type: ignore[attr-defined]
    monkeypatch.setenv(ENV, TOKEN)
    return cf_server


def cf(fake: FakeCloudflare, **opts: Any) -> CloudflareProvider:
    ctx = ProviderContext(clock=FakeClock())
    return CloudflareProvider("cf", {"api_token_env": ENV, "api_url": fake.url, **opts}, ctx)


def posts(fake: FakeCloudflare) -> int:
    return sum(1 for e in fake.log if e.method == "POST")


@pytest.mark.parametrize(
    "token",
    [
        "cf-inner\nnewline-token",  # requests: InvalidHeader quoting the header value
        "cf-inner space-token",
        "cf-tökén-€-token",  # http.client: UnicodeEncodeError (latin-1)
    ],
)
def test_cloudflare_bad_token_is_refused_by_name_never_shown(
    fake: FakeCloudflare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    tok = tmp_path / "cf.token"
    tok.write_text(token + "\n", encoding="utf-8")
    parts = tuple(p for p in token.replace("\n", " ").split() if len(p) > 3)
    with pytest.raises(ConfigError) as ei:
        CloudflareProvider.check_files("cf", {"api_token_file": str(tok)})
    assert str(ei.value).startswith(f"api_token_file: {tok}: ")
    one_line(ei.value, "printable ASCII", secrets=parts)
    prov = CloudflareProvider(
        "cf", {"api_token_file": str(tok), "api_url": fake.url}, ProviderContext()
    )
    with pytest.raises(ProviderError) as pe:
        prov.read(ZONE, [A])
    one_line(pe.value, "'cf'", "api_token_file", str(tok), secrets=parts)
    assert posts(fake) == 0 and not fake.log  # nothing was sent with it

    monkeypatch.setenv(ENV, token)
    with pytest.raises(ConfigError) as ei:
        CloudflareProvider.check_files("cf", {"api_token_env": ENV})
    assert str(ei.value).startswith(f"api_token_env: environment variable {ENV}: ")
    one_line(ei.value, secrets=parts)
    with pytest.raises(ProviderError) as pe:
        cf(fake).read(ZONE, [A])
    one_line(pe.value, "api_token_env", secrets=parts)


def test_cloudflare_token_scrubbed_from_exception_text(fake: FakeCloudflare) -> None:
    """Whatever a transport error says, the token is cut out of it."""
    prov = cf(fake)

    class Leaky:
        def request(self, method: str, url: str, **kw: Any) -> Any:
            import requests

            raise requests.ConnectionError(f"refused header {kw['headers']['Authorization']!r}")

    prov.session = Leaky()
    with pytest.raises(ProviderError) as ei:
        prov.read(ZONE, [A])
    one_line(ei.value, "ConnectionError", "<token hidden>", secrets=(TOKEN,))
    assert TOKEN not in repr(prov.__dict__)


def test_cloudflare_batch_committed_then_502_is_success_not_resent(fake: FakeCloudflare) -> None:
    prov = cf(fake)
    fake.fail_batches(1, status=502, commit=True)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert posts(fake) == 1  # the batch was not sent a second time
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    assert len(fake.list_records(fake.zone_id)) == 1  # type: ignore[attr-defined]


def test_cloudflare_batch_502_not_applied_is_sent_once_more(fake: FakeCloudflare) -> None:
    prov = cf(fake)
    fake.fail_batches(1, status=503, commit=False)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert posts(fake) == 2
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    # failing twice without being applied: one line, no third attempt
    fake.fail_batches(2, status=502, commit=False)
    before = posts(fake)
    with pytest.raises(ProviderError) as ei:
        prov.apply(
            ZoneChange(ZONE, (OwnerChange(A, TlsaRRset.of(300, [rd(1)]), None),)),
        )
    assert not isinstance(ei.value, ConcurrentChangeError)
    one_line(ei.value, "HTTP 502", "twice", "not applied")
    assert posts(fake) - before == 2


def test_cloudflare_batch_502_with_a_concurrent_change_does_not_claim_nothing_written(
    fake: FakeCloudflare,
) -> None:
    prov = cf(fake)
    inner = prov.session

    class Racing:
        def request(self, method: str, url: str, **kw: Any) -> Any:
            resp = inner.request(method, url, **kw)
            if method == "POST":  # another writer lands right after our lost batch
                fake.put_record(
                    fake.zone_id,  # type: ignore[attr-defined]
                    {
                        "type": "TLSA",
                        "name": "_25._tcp.mx.example.test",
                        "ttl": 300,
                        "data": {
                            "usage": 3,
                            "selector": 1,
                            "matching_type": 1,
                            "certificate": rd(9).cert.hex(),
                        },
                    },
                )
            return resp

    prov.session = Racing()
    fake.fail_batches(1, status=502, commit=True)
    with pytest.raises(ConcurrentChangeError) as ei:
        prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    text = one_line(ei.value, "HTTP 502", str(A), "re-run")
    assert "nothing was written" not in text
    assert posts(fake) == 1


def test_cloudflare_automatic_ttl_reads_as_1_served_as_300(fake: FakeCloudflare) -> None:
    """TTL 1 ("automatic") reads back as the 1 a service configures (read as 300, the planner
    re-wrote it for ever); the waits count the 300 s Cloudflare serves it with."""
    fake.put_record(
        fake.zone_id,  # type: ignore[attr-defined]
        {
            "type": "TLSA",
            "name": "_25._tcp.mx.example.test",
            "ttl": 1,
            "data": {
                "usage": 3,
                "selector": 1,
                "matching_type": 1,
                "certificate": rd(1).cert.hex(),
            },
        },
    )
    prov = cf(fake)
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(1, [rd(1)])}
    assert prov.served_ttl(1) == 300 and prov.served_ttl(600) == 600
    # an RRset already at 1 (automatic) needs no TTL patch
    prov.apply(
        ZoneChange(ZONE, (OwnerChange(A, TlsaRRset.of(1, [rd(1)]), TlsaRRset.of(1, [rd(1)])),))
    )
    assert posts(fake) == 0


# ------------------------------------------------------------- option errors name their key


def write_config(tmp_path: Path, provider_yaml: str) -> Path:
    """A config whose only problem can be the provider block (validated before certificates)."""
    cfg = tmp_path / "tlsarotate.yaml"
    cfg.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "providers:\n"
        "  p:\n"
        f"{provider_yaml}"
        "services:\n"
        "  - name: mx\n"
        "    zone: example.test\n"
        "    provider: p\n"
        "    hosts: [mx.example.test]\n"
        '    records: ["3 1 1"]\n'
        "    certificate: {deployed: {cert: /nonexistent.crt, key: /nonexistent.key}}\n"
    )
    return cfg


def validate_error(cfg_path: Path) -> str:
    from tlsarotate import config

    with pytest.raises(ConfigError) as ei:  # option ranges are checked at load already
        config.check_files(config.load(cfg_path))
    return one_line(ei.value)


def line_of(cfg_path: Path, key: str) -> int:
    lines = cfg_path.read_text().splitlines()
    return next(i + 1 for i, ln in enumerate(lines) if ln.strip().startswith(f"{key}:"))


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("endpoint_url", "not a url", "not an http(s):// URL"),
        ("endpoint_url", "ftp://example.test", "not an http(s):// URL"),
        ("endpoint_url", "http://127.0.0.1:99999", "not an http(s):// URL"),
        ("region", "us east 1", "us east 1"),
        ("profile", "tlsarotate-no-such-profile", "not found"),
    ],
)
def test_route53_bad_client_options_fail_validate_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: str, needle: str
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    from tlsarotate.providers.route53 import Route53Provider

    with pytest.raises(ConfigError) as ei:
        Route53Provider.check_files("aws", {key: value})
    assert str(ei.value).startswith(f"{key}: ")
    cfg = write_config(tmp_path, f"    type: route53\n    {key}: {value}\n")
    msg = validate_error(cfg)
    assert msg.startswith(f"{cfg}:{line_of(cfg, key)}: providers.p.{key}: "), msg
    assert needle in msg
    Route53Provider.check_files("aws", {})  # the defaults are fine


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


# ------------------------------------------------------------------------------- rfc2136

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

    p._send = lossy  # type: ignore[method-assign]
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


# ------------------------------------------------------------------------------- zonefile

ZONE_TEXT = """$TTL 300
$ORIGIN example.test.
@   IN SOA ns1 hostmaster ( 2026010100 3600 600 86400 300 )
    IN NS ns1
ns1 IN A 127.0.0.1
"""


def zone_file(tmp_path: Path, text: str = ZONE_TEXT) -> Path:
    path = tmp_path / "db.example.test"
    path.write_bytes(text.encode())
    return path


def zf(path: Path, runner: Any = None, **opts: Any) -> Any:
    from tlsarotate.providers.zonefile import ZoneFileProvider

    ctx = ProviderContext(base_dir=path.parent)
    if runner is not None:
        ctx.runner = runner
    return ZoneFileProvider("zf", {"path": str(path), **opts}, ctx)


def add_a(prov: Any, *tags: int) -> None:
    old = prov.read(ZONE, [A]).get(A)
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, old, TlsaRRset.of(300, [rd(t) for t in tags])),)))


def failing_runner(argv: Any) -> Any:
    import subprocess

    return subprocess.CompletedProcess(list(argv), 1, "", "rndc: connect failed\n")


def test_zonefile_write_and_restore_keep_owner_group_and_mode(tmp_path: Path) -> None:
    path = zone_file(tmp_path)
    os_ids = (65534, 65534)  # nobody:nogroup, as BIND's own user would own it
    import os

    os.chown(path, *os_ids)
    os.chmod(path, 0o640)
    add_a(zf(path), 1)
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*os_ids, 0o640)
    assert zf(path).read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1)])}
    before = path.read_bytes()
    with pytest.raises(ProviderError) as ei:
        add_a(zf(path, failing_runner, reload=["rndc", "reload"]), 1, 2)
    one_line(ei.value, "rndc: connect failed", "previous zone file was restored")
    st = path.stat()
    assert path.read_bytes() == before
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (*os_ids, 0o640)


def test_zonefile_owner_not_keepable_is_one_line_nothing_written() -> None:
    """A non-root run cannot give the new file root's ownership: one line, old file intact."""
    import os
    import shutil

    d = Path(tempfile.mkdtemp(prefix="tlsarotate-zf-"))
    try:
        os.chmod(d, 0o777)
        path = zone_file(d)
        os.chmod(path, 0o666)  # root-owned, writable by anyone: only the chown can fail
        before = path.read_bytes()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 3
            try:
                os.close(r)
                os.setgid(65534)
                os.setuid(65534)
                try:
                    add_a(zf(path), 1)
                    os.write(w, b"OK no error")
                except ProviderError as e:
                    os.write(w, f"PE {e}".encode())
                except BaseException as e:
                    os.write(w, f"XX {type(e).__name__}: {e}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            out = fh.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert out.startswith("PE "), out
        text = out[3:]
        assert "\n" not in text and str(path) in text and "owner 0:0" in text, text
        assert "nothing was written" in text
        assert path.read_bytes() == before
        assert path.stat().st_uid == 0
    finally:
        shutil.rmtree(d)


def test_zonefile_restore_failure_is_one_line(tmp_path: Path) -> None:
    import os
    import subprocess

    d = tmp_path / "zones"
    d.mkdir()
    path = zone_file(d)
    moved = tmp_path / "zones-moved"

    def runner(argv: Any) -> Any:  # the reload fails, and the directory goes away meanwhile
        os.rename(d, moved)
        return subprocess.CompletedProcess(list(argv), 1, "", "reload failed\n")

    with pytest.raises(ProviderError) as ei:
        add_a(zf(path, runner, reload=["rndc", "reload"]), 1)
    one_line(ei.value, str(path), "reload failed", "NEW file stays")


def test_zonefile_not_utf8_or_not_a_file_is_one_line(tmp_path: Path) -> None:
    from tlsarotate.providers.zonefile import ZoneFileProvider

    path = zone_file(tmp_path)
    path.write_bytes(ZONE_TEXT.encode() + b"; caf\xe9 in latin-1\n")
    with pytest.raises(ProviderError) as ei:
        zf(path).read(ZONE, [A])
    one_line(ei.value, str(path), "not UTF-8")
    with pytest.raises(ConfigError) as ce:
        ZoneFileProvider.check_files("zf", {"path": path})
    assert str(ce.value).startswith(f"path: zone file {path} is not UTF-8")
    d = tmp_path / "a-directory"
    d.mkdir()
    with pytest.raises(ConfigError) as ce:
        ZoneFileProvider.check_files("zf", {"path": d})
    assert one_line(ce.value) == f"path: {d} is not a regular file"


def test_zonefile_parse_error_names_file_and_line(tmp_path: Path) -> None:
    path = zone_file(tmp_path, ZONE_TEXT + "bad IN A 1.2.3\n")
    with pytest.raises(ProviderError) as ei:
        zf(path).read(ZONE, [A])
    import re

    assert re.search(rf"{re.escape(str(path))}:\d+: ", one_line(ei.value)), str(ei.value)


def test_zonefile_crlf_file_gets_crlf_lines(tmp_path: Path) -> None:
    path = zone_file(tmp_path, ZONE_TEXT.replace("\n", "\r\n"))
    prov = zf(path)
    add_a(prov, 1, 2)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") and data.endswith(b"\r\n")
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(1), rd(2)])}
    add_a(prov, 2)
    data = path.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert prov.read(ZONE, [A]) == {A: TlsaRRset.of(300, [rd(2)])}


def test_zonefile_verify_tells_rrsigs_of_different_types_apart(tmp_path: Path) -> None:
    """RRSIGs over A and over NS at one name are different RRsets: a change to either is
    refused (keyed by type alone, the later one hid the earlier)."""
    import dns.zone

    sig = "{t} 13 2 300 20300101000000 20260101000000 12345 example.test. {b}"
    base = ZONE_TEXT + (
        "ns1 RRSIG " + sig.format(t="A", b="AAAA") + "\n"
        "ns1 RRSIG " + sig.format(t="NS", b="BBBB") + "\n"
    )
    changed = base.replace("AAAA", "CCCC")
    from tlsarotate.providers import zonetext

    def parse(text: str) -> dns.zone.Zone:
        return dns.zone.from_text(text, origin=ZONE, relativize=False)

    with pytest.raises(ProviderError, match="would change other records"):
        zonetext.verify(parse(base), parse(changed), ZoneChange(ZONE, ()), 2026010100, "zone file")
    zonetext.verify(parse(base), parse(base), ZoneChange(ZONE, ()), 2026010100, "zone file")


def test_zonefile_reload_timeout_is_gone(tmp_path: Path) -> None:
    from tlsarotate import config

    path = zone_file(tmp_path)
    cfg = write_config(tmp_path, f"    type: zonefile\n    path: {path}\n    reload_timeout: 60\n")
    with pytest.raises(ConfigError) as ei:
        config.load(cfg)
    one_line(ei.value, "reload_timeout")
