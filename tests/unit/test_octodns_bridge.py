"""tlsarotate.providers.octodns_bridge and the octodns provider's construction: class loading
and its one-line refusals (no octodns package, no such module or class, a source only, no
TLSA), option resolution (``env/VAR`` as octoDNS's manager does it, ``KEY_env``/``KEY_file``,
inline secrets refused), TLSA conversion both ways, one-line errors without secrets, and the
capabilities declared per octoDNS class. No server: octoDNS classes are only constructed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.helpers import assert_one_line, rrset
from tlsarotate.errors import ConfigError
from tlsarotate.providers import ProviderContext, get_class
from tlsarotate.providers import octodns_bridge as bridge


def test_missing_octodns_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "octodns", None)  # import octodns -> ImportError
    with pytest.raises(ConfigError) as ei:
        bridge.load_class("octodns_powerdns.PowerDnsProvider")
    assert_one_line(ei.value, "tlsarotate[octodns]", "not installed")


@pytest.mark.parametrize(
    ("path", "needles"),
    [
        ("octodns_nosuch.Provider", ["cannot import module 'octodns_nosuch'"]),
        ("octodns_powerdns.Nope", ["module 'octodns_powerdns' has no class 'Nope'"]),
        ("PowerDnsProvider", ["not a class path"]),
        ("octodns_bind.AxfrSource", ["octodns_bind.AxfrSource", "not an octoDNS provider"]),
        ("octodns.provider.base.BaseProvider", ["does not support TLSA"]),
        ("tests.support.octodns_notlsa.NoTlsa", ["NoTlsa does not support TLSA", "SUPPORTS: A,"]),
    ],
)
def test_load_class_refuses_in_one_line(path: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as ei:
        bridge.load_class(path)
    assert ei.value.key == "class"
    assert_one_line(ei.value, *needles)


def test_known_classes_load() -> None:
    for path in ("octodns_powerdns.PowerDnsProvider", "octodns_bind.Rfc2136Provider"):
        assert "TLSA" in getattr(bridge.load_class(path), "SUPPORTS", ())


def test_env_values_resolve_as_octodns_does(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = bridge.load_class("octodns_powerdns.PowerDnsProvider")
    env = {"PDNS_KEY": "k3y-value-123", "PDNS_PORT": "8082"}
    kwargs, secrets = bridge.resolve_options(
        cls,
        {"api_key": "env/PDNS_KEY", "port": "env/PDNS_PORT", "host": "env/UNSET/127.0.0.1"},
        environ=env,
    )
    assert kwargs == {"api_key": "k3y-value-123", "port": 8082, "host": "127.0.0.1"}
    assert "k3y-value-123" in secrets
    with pytest.raises(ConfigError) as ei:
        bridge.resolve_options(cls, {"api_key": "env/NOPE"}, environ={})
    assert ei.value.key == "options.api_key"
    assert_one_line(ei.value, "NOPE", "not set")


def test_env_and_file_options(tmp_path: Path) -> None:
    cls = bridge.load_class("octodns_powerdns.PowerDnsProvider")
    key = tmp_path / "pdns.key"
    key.write_text("  file-secret-456\n")
    key.chmod(0o600)
    kwargs, secrets = bridge.resolve_options(cls, {"api_key_file": str(key)}, check_files=True)
    assert kwargs == {"api_key": "file-secret-456"} and secrets == ["file-secret-456"]
    kwargs, _ = bridge.resolve_options(cls, {"api_key_env": "K"}, environ={"K": "env-secret-789"})
    assert kwargs == {"api_key": "env-secret-789"}
    key.chmod(0o644)
    with pytest.raises(ConfigError) as ei:
        bridge.resolve_options(cls, {"api_key_file": str(key)}, check_files=True)
    assert_one_line(ei.value, "not private", secrets=["file-secret-456"])
    with pytest.raises(ConfigError) as ei:
        bridge.resolve_options(cls, {"api_key_env": "K", "api_key": "env/K"}, environ={"K": "x"})
    assert_one_line(ei.value, "give api_key once")


def test_a_parameter_named_like_our_suffix_is_passed_through() -> None:
    class Takes:  # an octoDNS class with its own ``credentials_file`` (a path, not a secret)
        def __init__(self, id: str, credentials_file: str | None = None) -> None:
            pass

    kwargs, _ = bridge.resolve_options(Takes, {"credentials_file": "/etc/gcp.json"})
    assert kwargs == {"credentials_file": "/etc/gcp.json"}


@pytest.mark.parametrize("key", ["api_key", "key_secret", "token", "password"])
def test_inline_secrets_are_refused(key: str) -> None:
    cls = bridge.load_class("octodns_powerdns.PowerDnsProvider")
    with pytest.raises(ConfigError) as ei:
        bridge.resolve_options(cls, {key: "inline-secret-0"})
    assert ei.value.key == f"options.{key}"
    assert_one_line(ei.value, "never written inline", f"{key}_env", secrets=["inline-secret-0"])


def test_tlsa_round_trip() -> None:
    from octodns.record import Record
    from octodns.zone import Zone

    from tlsarotate.providers.octodns import _configure_validators

    _configure_validators()
    want = rrset(1, 2, ttl=600)
    z = Zone("example.test.", [])
    rec = Record.new(z, "_25._tcp.mx", bridge.tlsa_data(want))
    assert bridge.tlsa_rrset(rec) == want
    assert str(bridge.owner_of(rec)) == "_25._tcp.mx.example.test."


def test_failure_is_one_line_without_secrets() -> None:
    class Response:
        status_code = 401

    e = RuntimeError("boom\nwith k3y-value-123 in it")
    assert bridge.failure(e, ["k3y-value-123"]) == "RuntimeError: boom with <secret hidden> in it"
    http = RuntimeError("401 Client Error")
    http.response = Response()  # type: ignore[attr-defined]
    assert "authentication failed" in bridge.failure(http, [])


def test_capabilities_follow_the_octodns_class() -> None:
    cls = get_class("octodns")
    ctx = ProviderContext()
    pdns = cls(
        "p",
        {
            "class": "octodns_powerdns.PowerDnsProvider",
            "options": {"host": "127.0.0.1", "api_key_env": "HOME"},
        },
        ctx,
    )
    assert pdns.capabilities.atomic and pdns.capabilities.max_changes_per_write is None
    assert not pdns.capabilities.prerequisites
    bind = cls(
        "b",
        {
            "class": "octodns_bind.Rfc2136Provider",
            "options": {"host": "127.0.0.1", "update_batch_size": 50},
        },
        ctx,
    )
    assert bind.capabilities.max_changes_per_write == 50 and bind.capabilities.atomic
    with pytest.raises(ConfigError) as ei:
        cls(
            "x",
            {"class": "octodns_bind.Rfc2136Provider", "options": {"host": "127.0.0.1", "nope": 1}},
            ctx,
        )
    assert_one_line(ei.value, "provider x", "refused its options", "nope")
