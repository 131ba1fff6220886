"""Route 53 client options: a bad profile, region or endpoint fails validate naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsarotate.errors import ConfigError


def one_line(err: BaseException, *needles: str, secrets: tuple[str, ...] = ()) -> str:
    text = str(err)
    assert "\n" not in text and text, repr(text)
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    for s in secrets:
        assert s not in text, f"secret {s!r} in {text!r}"
    return text


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
