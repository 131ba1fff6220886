"""A config file for the simulated world (tests/support/world.py) with a TLSRPT reports
directory, so ``tlsarotate reports`` and ``check`` run as the CLI against the state history
the world's engine wrote."""

from __future__ import annotations

from pathlib import Path

from tests.support.world import SimWorld


def world_config(
    w: SimWorld, reports: Path | None = None, extra: str = "", service: str = ""
) -> Path:
    """``w``'s service in a config file (zonefile provider; ``check --no-live`` reads DNS from
    the file), with ``tlsrpt.dir: reports`` when given; ``service``: more keys of the service
    (indented by four spaces)."""
    zone = w.tmp / "example.test.zone"
    if not zone.exists():
        texts = "\n".join(
            f"{o.to_text()} 300 IN TLSA {t}" for o, rr in w.current().items() for t in rr.texts()
        )
        zone.write_text(
            "$ORIGIN example.test.\n$TTL 300\n"
            "@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n"
            + texts
            + "\n"
        )
    tlsrpt = f"tlsrpt:\n  dir: {reports}\n{extra}" if reports is not None else ""
    cfg = w.tmp / "config.yaml"
    cfg.write_text(
        f"""\
state_dir: {w.tmp / "state"}
{tlsrpt}
providers:
  dns:
    type: zonefile
    path: {zone}
services:
  - name: mail
    zone: example.test
    provider: dns
    hosts: [mx1.example.test]
    allow_unsigned: true
    observe: provider
    certificate:
      deployed: {{cert: {w.tmp / "deployed/fullchain.pem"}, key: {w.tmp / "deployed/privkey.pem"}}}
{service}"""
    )
    return cfg
