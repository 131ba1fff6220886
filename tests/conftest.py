"""Shared fixtures (a CA, certificate/key pairs on disk). Plain helpers (run_cli, one-line error
checks, TLSA test data) are in tests/support/helpers.py; real-server fixtures in their own modules
under tests/support/: servers.py (BIND primary + secondary, unbound; free_port, stop_process),
moto_server.py (Route 53 on moto_server), fake_cloudflare.py (the fake Cloudflare API),
tls_servers.py (aiosmtpd and scripted TLS servers, the openssl DANE oracle), acme_servers.py
(pebble, certbot, Postfix).

Tests under tests/unit/ are marked ``unit`` (no server, no subprocess, no network: a fast run is
``pytest -m unit``); those under tests/integration/ are marked ``integration``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tlsarotate import pki


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        part = Path(str(item.fspath)).resolve().relative_to(here).parts[0]
        if part in ("unit", "integration"):
            item.add_marker(part)


@pytest.fixture(scope="session")
def ca() -> pki.Issued:
    return pki.make_ca()


@pytest.fixture
def write_pair(tmp_path: Path, ca: pki.Issued) -> Callable[..., tuple[Path, Path, pki.Issued]]:
    """write_pair(name, kind=...) -> (fullchain path, key path, Issued)."""

    def make(
        name: str = "leaf",
        kind: str = "ecdsa-p256",
        host: str = "mx.example.test",
        key: pki.PrivateKey | None = None,
    ) -> tuple[Path, Path, pki.Issued]:
        leaf = pki.make_leaf(ca, [host], kind, key=key)
        c, k = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        c.write_bytes(pki.fullchain_pem(leaf, ca))
        k.write_bytes(leaf.key_pem)
        k.chmod(0o600)
        return c, k, leaf

    return make
