"""Route 53 client options: a bad profile, region or endpoint fails validate naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.provider_configs import line_of, validate_error, write_config
from tlsarotate.errors import ConfigError


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
