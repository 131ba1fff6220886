"""The rfc2136 provider against a real BIND primary (TSIG, inline DNSSEC signing)."""

# ruff: noqa: F811
from __future__ import annotations

import base64
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.update
import pytest

from tests.support.helpers import rrset
from tests.support.servers import (  # noqa: F401
    BindServers,
    bind,
    bind_servers,
    free_port,
    query,
    wait_until,
)
from tlsarotate import config, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers import ProviderContext, get_class
from tlsarotate.providers.rfc2136 import RFC2136Provider

ZONE = dns.name.from_text("example.test.")
MX = dns.name.from_text("_25._tcp.mx.example.test.")
MX2 = dns.name.from_text("_465._tcp.mx.example.test.")
MX3 = dns.name.from_text("_25._tcp.mx3.example.test.")


BIND_SETTINGS = {"with_secondary": False}  # the provider talks to the primary only


def rec(tag: int) -> Any:
    return records.from_text(f"3 1 1 {tag:064x}")


def provider(bind: BindServers, **overrides: Any) -> RFC2136Provider:
    p = RFC2136Provider("bind", bind.provider_options(**overrides), ProviderContext())
    p.context.clock = FakeClock()
    return p


def apply(p: RFC2136Provider, zone: dns.name.Name, *changes: OwnerChange) -> None:
    res = p.apply(ZoneChange(zone, changes))
    wait_until(lambda: p.is_live(zone, res.tokens), 5, "the primary to serve the update")


def served(bind: BindServers, owner: dns.name.Name) -> set[str]:
    """What the primary answers to a plain (untrusted-by-the-provider) query."""
    r = query(*bind.primary, owner, "TLSA", dnssec=False)
    return {records.to_text(rd) for rr in r.answer if rr.rdtype == dns.rdatatype.TLSA for rd in rr}


def texts(rr: TlsaRRset) -> set[str]:
    return set(rr.texts())


def test_registered_and_empty_read(bind: BindServers) -> None:
    assert get_class("rfc2136") is RFC2136Provider
    p = provider(bind)
    assert p.read(ZONE, [MX, MX2]) == {}
    assert p.sent["QUERY"] == 2


def test_add_beside_delete_replace_delete_all(bind: BindServers) -> None:
    p = provider(bind)
    apply(p, ZONE, OwnerChange(MX, None, rrset(1)))
    assert p.read(ZONE, [MX]) == {MX: rrset(1)}
    assert served(bind, MX) == texts(rrset(1))

    apply(p, ZONE, OwnerChange(MX, rrset(1), rrset(1, 2)))  # add beside
    assert p.read(ZONE, [MX]) == {MX: rrset(1, 2)}

    apply(p, ZONE, OwnerChange(MX, rrset(1, 2), rrset(2)))  # delete one of two
    assert p.read(ZONE, [MX]) == {MX: rrset(2)}
    assert served(bind, MX) == texts(rrset(2))

    apply(p, ZONE, OwnerChange(MX, rrset(2), rrset(3, ttl=60)))  # replace, new TTL
    got = p.read(ZONE, [MX])[MX]
    assert got == rrset(3, ttl=60)

    apply(p, ZONE, OwnerChange(MX, rrset(3, ttl=60), rrset(3, 4, ttl=60)))
    apply(p, ZONE, OwnerChange(MX, rrset(3, 4, ttl=60), None))  # delete all
    assert p.read(ZONE, [MX]) == {}
    assert served(bind, MX) == set()
    assert p.sent["UPDATE"] == 6


def test_read_axfr_matches_query(bind: BindServers) -> None:
    p = provider(bind)
    apply(p, ZONE, OwnerChange(MX, None, rrset(1, 2)), OwnerChange(MX2, None, rrset(5)))
    q = p.read(ZONE, [MX, MX2, MX3])
    a = provider(bind, read="axfr").read(ZONE, [MX, MX2, MX3])
    assert q == a == {MX: rrset(1, 2), MX2: rrset(5)}


def test_idempotent_reapply(bind: BindServers) -> None:
    p = provider(bind)
    apply(p, ZONE, OwnerChange(MX, None, rrset(1)))
    serial = bind.serial(bind.primary, ZONE)
    # old == current == new: the prerequisite holds, nothing changes
    apply(p, ZONE, OwnerChange(MX, rrset(1), rrset(1)))
    assert p.read(ZONE, [MX]) == {MX: rrset(1)}
    assert bind.serial(bind.primary, ZONE) == serial


def test_one_update_per_zone_change(bind: BindServers) -> None:
    p = provider(bind)
    apply(p, ZONE, OwnerChange(MX, None, rrset(1)), OwnerChange(MX2, None, rrset(2)))
    seen: list[dns.message.Message] = []
    real = p._send

    def spy(m: dns.message.Message) -> dns.message.Message:
        seen.append(m)
        return real(m)

    p._send = spy  # type: ignore[method-assign,assignment]
    p.apply(
        ZoneChange(
            ZONE,
            (
                OwnerChange(MX, rrset(1), rrset(1, 7)),
                OwnerChange(MX2, rrset(2), None),
                OwnerChange(MX3, None, rrset(9)),
            ),
        )
    )
    updates = [m for m in seen if m.opcode() == dns.opcode.UPDATE]
    assert len(updates) == 1
    upd = updates[0]
    assert isinstance(upd, dns.update.UpdateMessage)
    # 3 prerequisites (2 value-dependent RRsets + 1 "does not exist"), deletes and adds
    assert {rr.name for rr in upd.prerequisite} == {MX, MX2, MX3}
    assert upd.had_tsig
    wait_until(
        lambda: p.read(ZONE, [MX, MX2, MX3]) == {MX: rrset(1, 7), MX3: rrset(9)},
        5,
        "the change to be served",
    )


def test_concurrent_change_is_detected_and_nothing_written(bind: BindServers) -> None:
    p = provider(bind)
    apply(p, ZONE, OwnerChange(MX, None, rrset(1)))
    old = p.read(ZONE, [MX, MX2])  # {MX: 1}, MX2 absent
    # another client changes MX between our read and our write
    r = bind.update(ZONE, build=lambda m: m.add(MX, 300, "TLSA", records.to_text(rec(66))))
    assert r.rcode() == dns.rcode.NOERROR
    serial = bind.serial(bind.primary, ZONE)
    change = ZoneChange(
        ZONE,
        (
            OwnerChange(MX2, old.get(MX2), rrset(2)),  # would be fine on its own
            OwnerChange(MX, old.get(MX), rrset(1, 2)),
        ),
    )
    with pytest.raises(ConcurrentChangeError) as ei:
        p.apply(change)
    msg = str(ei.value)
    assert "_25._tcp.mx.example.test" in msg and "re-run" in msg and "\n" not in msg
    assert "_465" not in msg  # the owner that did not move is not blamed
    # all-or-nothing: MX2 was not written either
    assert p.read(ZONE, [MX, MX2]) == {MX: rrset(1, 66)}
    assert bind.serial(bind.primary, ZONE) == serial


def test_owner_added_concurrently_where_we_read_none(bind: BindServers) -> None:
    p = provider(bind)
    bind.update(ZONE, build=lambda m: m.add(MX, 300, "TLSA", records.to_text(rec(5))))
    with pytest.raises(ConcurrentChangeError, match=r"_25\._tcp\.mx\.example\.test"):
        p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))
    assert p.read(ZONE, [MX]) == {MX: rrset(5)}


def _write_key(path: Path, name: str, secret: str, alg: str = "hmac-sha256") -> Path:
    path.write_text(f'key "{name}" {{\n\talgorithm {alg};\n\tsecret "{secret}";\n}};\n')
    return path


def test_wrong_secret_is_badsig_naming_the_key(
    bind: BindServers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="
    kf = _write_key(tmp_path / "wrong.key", bind.key_name, wrong)
    p = provider(bind, tsig_key_file=kf)
    with pytest.raises(ProviderError) as ei:
        p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))
    msg = str(ei.value)
    assert "BADSIG" in msg and bind.key_name in msg and "\n" not in msg
    with pytest.raises(ProviderError, match="BADSIG"):
        p.read(ZONE, [MX])
    for text in (msg, caplog.text, repr(p), repr(p.key), str(p.__dict__)):
        assert wrong not in text
    assert provider(bind).read(ZONE, [MX]) == {}


def test_unknown_key_is_badkey(bind: BindServers, tmp_path: Path) -> None:
    kf = _write_key(tmp_path / "other.key", "nobody-knows-me", bind.key_secret)
    with pytest.raises(ProviderError, match=r"BADKEY.*nobody-knows-me"):
        provider(bind, tsig_key_file=kf).apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))


def test_clock_skew_is_badtime(bind: BindServers, monkeypatch: pytest.MonkeyPatch) -> None:
    class Skewed:
        @staticmethod
        def time() -> float:
            return time.time() - 7200

    monkeypatch.setattr(dns.message, "time", Skewed)
    with pytest.raises(ProviderError, match=r"BADTIME.*clock skew") as ei:
        provider(bind).apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))
    assert bind.key_name in str(ei.value)


def test_no_key_is_refused_with_hint(bind: BindServers) -> None:
    opts = bind.provider_options()
    del opts["tsig_key_file"]
    p = RFC2136Provider("bind", opts, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))
    msg = str(ei.value)
    assert "REFUSED" in msg and "tsig_key_file" in msg and "allow-update" in msg


def test_update_policy_refuses_name(bind: BindServers) -> None:
    pz = dns.name.from_text("policy.test.")
    denied = dns.name.from_text("_25._tcp.denied.policy.test.")
    allowed = dns.name.from_text("_25._tcp.mx.policy.test.")
    p = provider(bind)
    with pytest.raises(ProviderError) as ei:
        p.apply(ZoneChange(pz, (OwnerChange(denied, None, rrset(1)),)))
    msg = str(ei.value)
    assert "REFUSED" in msg and "update-policy" in msg and bind.key_name in msg
    assert not isinstance(ei.value, ConcurrentChangeError)
    apply(p, pz, OwnerChange(allowed, None, rrset(1)))
    assert p.read(pz, [allowed, denied]) == {allowed: rrset(1)}


def test_owner_outside_zone_is_rejected_before_sending(bind: BindServers) -> None:
    p = provider(bind)
    with pytest.raises(ProviderError, match=r"not in zone example\.test"):
        p.apply(
            ZoneChange(
                ZONE, (OwnerChange(dns.name.from_text("_25._tcp.mx.other."), None, rrset(1)),)
            )
        )
    assert p.sent["UPDATE"] == 0


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    try:
        yield int(s.getsockname()[1])
    finally:
        s.close()


def test_timeouts_are_retried_with_backoff_then_reported(silent_server: int) -> None:
    clock = FakeClock()
    p = RFC2136Provider(
        "bind",
        {"server": "127.0.0.1", "port": silent_server, "timeout": 0.2, "retries": 4},
        ProviderContext(),
    )
    p.context.clock = clock
    t0 = clock.now()
    with pytest.raises(ProviderError) as ei:
        p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))
    msg = str(ei.value)
    assert f"127.0.0.1:{silent_server}" in msg and "4 attempt" in msg and "timeout" in msg
    assert p.sent["UPDATE"] == 4
    slept = clock.now() - t0
    assert 0.5 * (0.5 + 1 + 2) <= slept <= 0.5 + 1 + 2  # jittered, capped exponential


def test_stopped_server_is_reported_after_retries(bind: BindServers) -> None:
    # a port where nothing listens any more (a stopped server)
    port = free_port()
    p = provider(bind, port=port, retries=3)
    with pytest.raises(ProviderError, match=rf"127.0.0.1:{port}.*3 attempt.*refused"):
        p.read(ZONE, [MX])
    assert p.sent["QUERY"] == 3


def test_secret_never_shown(
    bind: BindServers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = bind.key_secret
    p = provider(bind)
    apply(p, ZONE, OwnerChange(MX, None, rrset(1)))
    texts_seen = [repr(p), str(p), repr(p.key), repr(p.__dict__)]
    for bad in (
        {"tsig_key_file": _write_key(tmp_path / "md5.key", "k", secret, "hmac-md5")},
        {"tsig_key_file": tmp_path / "missing.key"},
        {"tsig_name": "k", "tsig_secret_env": "NOT_SET_ANYWHERE_XYZ"},
    ):
        with pytest.raises(ConfigError) as ei:
            RFC2136Provider("bind", bind.provider_options(**bad), ProviderContext())
        texts_seen.append(str(ei.value))
    with pytest.raises(ConcurrentChangeError) as ce:
        p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(2)),)))
    texts_seen += [str(ce.value), caplog.text]
    for t in texts_seen:
        assert secret not in t


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "file not found"),
        ("", "no key found"),
        ('key "k" { algorithm hmac-md5; secret "c2VjcmV0"; };', "hmac-md5"),
        ('key "k" { algorithm hmac-sha256; secret "not base64!!"; };', "not valid base64"),
        ('key "k" { secret "c2VjcmV0"; };', "no algorithm"),
        (
            'key "a" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n'
            'key "b" { algorithm hmac-sha256; secret "c2VjcmV0"; };',
            "set tsig_name",
        ),
    ],
)
def test_check_files_bad_key_file(tmp_path: Path, content: str | None, needle: str) -> None:
    kf = tmp_path / "bad.key"
    if content is not None:
        kf.write_text(content)
    with pytest.raises(ConfigError) as ei:
        RFC2136Provider.check_files("bind", {"server": "127.0.0.1", "tsig_key_file": kf})
    msg = str(ei.value)
    assert needle in msg and str(kf) in msg and "\n" not in msg
    assert "not base64!!" not in msg and "c2VjcmV0" not in msg


def test_key_file_secret_containing_double_slash(tmp_path: Path) -> None:
    """A real tsig-keygen secret with "//" in it (base64 may hold any "/" run): BIND reads
    such a file, so must tlsarotate."""
    from tlsarotate.providers.tsig import parse_key_file

    secret = "Dps2sSfB3Js2WfS7swkHUil1sKfm2//C1+zTwHXBxsg="
    kf = tmp_path / "k.key"
    kf.write_text(f'key "k" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n')
    key = parse_key_file(kf)
    assert key.secret.reveal() == base64.b64decode(secret)


def test_check_files_accepts_tsig_keygen_output_and_secret_sources(
    bind: BindServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    RFC2136Provider.check_files("bind", bind.provider_options())
    sf = tmp_path / "secret"
    sf.write_text(bind.key_secret + "\n")
    base = {"server": "127.0.0.1", "tsig_name": bind.key_name}
    with pytest.raises(ConfigError, match=r"tsig_secret_file: .* is not private.*mode 644"):
        RFC2136Provider.check_files("bind", {**base, "tsig_secret_file": sf})
    sf.chmod(0o600)
    RFC2136Provider.check_files("bind", {**base, "tsig_secret_file": sf})
    with pytest.raises(ConfigError, match="TSIG_TEST_SECRET"):
        RFC2136Provider.check_files("bind", {**base, "tsig_secret_env": "TSIG_TEST_SECRET"})
    monkeypatch.setenv("TSIG_TEST_SECRET", bind.key_secret)
    RFC2136Provider.check_files("bind", {**base, "tsig_secret_env": "TSIG_TEST_SECRET"})
    with pytest.raises(ConfigError, match="not an IP address"):
        RFC2136Provider.check_files("bind", {"server": "ns1.example.test"})
    # the env-secret provider really signs updates the server accepts
    p = RFC2136Provider(
        "bind",
        {
            **bind.provider_options(tsig_key_file=None),
            **base,
            "tsig_secret_env": "TSIG_TEST_SECRET",
        },
        ProviderContext(),
    )
    apply(p, ZONE, OwnerChange(MX, None, rrset(1)))


def test_config_resolves_key_file_relative_to_config(bind: BindServers, tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "tsig.key").write_text(bind.key_file.read_text())
    (tmp_path / "keys" / "tsig.key").chmod(0o600)  # validate refuses a key others may read
    cfg_path = tmp_path / "tlsarotate.yaml"
    cfg_path.write_text(
        f"""
state_dir: {tmp_path / "state"}
providers:
  bind:
    type: rfc2136
    server: 127.0.0.1
    port: {bind.port}
    tsig_key_file: keys/tsig.key
    timeout: 2
services:
  - name: mx
    zone: example.test
    provider: bind
    hosts: [mx.example.test]
    records: ["3 1 1"]
    certificate: {{deployed: {{cert: /nonexistent.crt, key: /nonexistent.key}}}}
"""
    )
    cfg = config.load(cfg_path)
    pc = cfg.providers["bind"]
    assert Path(pc.options["tsig_key_file"]) == tmp_path / "keys" / "tsig.key"
    RFC2136Provider.check_files("bind", pc.options)
    p = RFC2136Provider("bind", pc.options, ProviderContext(base_dir=tmp_path))
    assert p.read(ZONE, [MX]) == {}


def test_lost_answer_then_retry_counts_as_applied(bind: BindServers) -> None:
    """The first UPDATE reaches the server but its answer is lost; the retry fails its
    prerequisite, and the provider sees the change is already served."""
    p = provider(bind)
    real = p._send
    calls = {"n": 0}

    def lossy(m: dns.message.Message) -> dns.message.Message:
        r = real(m)
        if m.opcode() == dns.opcode.UPDATE and calls["n"] == 0:
            calls["n"] += 1
            wait_until(lambda: p.read(ZONE, [MX]) == {MX: rrset(1)}, 5, "inline signing")
            raise dns.exception.Timeout
        return r

    p._send = lossy  # type: ignore[method-assign,assignment]
    res = p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(1)),)))
    assert p.is_live(ZONE, res.tokens)
    assert p.sent["UPDATE"] == 2


def test_many_owners_in_one_update(bind: BindServers) -> None:
    """700 owners fit in one UPDATE message (about 53 KB); 1,000 do not fit in any DNS
    message (65,535 bytes over TCP), so that change goes out as two UPDATEs, each within
    the limit."""
    owners = [dns.name.from_text(f"_25._tcp.h{i}.example.test.") for i in range(1000)]
    p = provider(bind, timeout=30.0)
    first = ZoneChange(
        ZONE, tuple(OwnerChange(o, None, rrset(i + 1)) for i, o in enumerate(owners[:700]))
    )
    res = p.apply(first)
    assert p.sent["UPDATE"] == 1
    wait_until(lambda: p.is_live(ZONE, res.tokens), 20, "700 owners to be served")
    cur = provider(bind, read="axfr").read(ZONE, owners)
    assert len(cur) == 700 and cur[owners[699]] == rrset(700)
    # all 1,000 changed at once: split into the fewest UPDATEs that fit
    big = ZoneChange(
        ZONE, tuple(OwnerChange(o, cur.get(o), rrset(i + 5000)) for i, o in enumerate(owners))
    )
    res = p.apply(big)
    parts = p.sent["UPDATE"] - 1
    wire = [len(p.build_update(part).to_wire()) for part in p.parts(big)]
    assert parts == len(wire) and parts >= 2  # it cannot fit in one
    assert all(size <= 65535 for size in wire)
    # greedy packing: no two neighbouring parts would have fitted together
    assert all(a + b > 65535 - 512 for a, b in itertools.pairwise(wire))
    wait_until(lambda: p.is_live(ZONE, res.tokens), 30, "1000 owners to be served")
    got = provider(bind, read="axfr").read(ZONE, owners)
    assert len(got) == 1000 and got[owners[999]] == rrset(5999)


def test_concurrent_writers_one_wins(bind: BindServers) -> None:
    """Two providers plan from the same read and write at once: exactly one succeeds."""
    p1, p2 = provider(bind), provider(bind)
    results: list[str] = []

    def go(p: RFC2136Provider, tag: int) -> None:
        try:
            p.apply(ZoneChange(ZONE, (OwnerChange(MX, None, rrset(tag)),)))
            results.append("ok")
        except ConcurrentChangeError:
            results.append("conflict")

    ts = [threading.Thread(target=go, args=(p, t)) for p, t in ((p1, 1), (p2, 2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(results) == ["conflict", "ok"]
    got = wait_until(lambda: p1.read(ZONE, [MX]), 5, "the winner to be served")
    assert got[MX] in (rrset(1), rrset(2))


def test_env_var_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_SECRET", "c2VjcmV0LXZhbHVlLWhlcmU=")
    p = RFC2136Provider(
        "x", {"server": "::1", "tsig_name": "k", "tsig_secret_env": "T_SECRET"}, ProviderContext()
    )
    assert "c2VjcmV0LXZhbHVlLWhlcmU=" not in repr(p) + repr(p.key)
    assert "[::1]:53" in repr(p) and os.environ["T_SECRET"] not in str(vars(p))
