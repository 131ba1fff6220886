"""Shared helpers and fixtures (run_cli, one-line error checks, TLSA test data, a CA).

Real-server fixtures live in their own modules: tests/servers.py (BIND primary + secondary,
unbound; free_port, stop_process), tests/moto_server.py (Route 53 on moto_server),
tests/fake_cloudflare.py (the fake Cloudflare API), tests/tls_servers.py (aiosmtpd and scripted
TLS servers, the openssl DANE oracle), tests/acme_servers.py (pebble, certbot, Postfix)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import pki, records
from tlsarotate.change import TlsaRRset

ROOT = Path(__file__).resolve().parent.parent


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tlsarotate ARGS`` from this checkout as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tlsarotate", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        input=input,
        timeout=timeout,
        cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Bad input: non-zero exit, exactly one line on stderr, no traceback, naming the culprit."""
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


def assert_one_line(err: BaseException, *needles: str, secrets: Sequence[str] = ()) -> str:
    """An expected error's text: one non-empty line without surrounding blanks, naming every
    needle, showing no secret. Returns the text."""
    text = str(err)
    assert "\n" not in text and text.strip() == text and text, repr(text)
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    for s in secrets:
        assert s not in text, f"secret leaked in {text!r}"
    return text


def rd(i: int, params: str = "3 1 1") -> TLSA:
    """A distinct TLSA rdata per ``i`` (its data: SHA-256 of ``str(i)``)."""
    return records.from_text(f"{params} {hashlib.sha256(str(i).encode()).hexdigest()}")


def rrset(*tags: int, ttl: int = 300) -> TlsaRRset:
    """A TLSA RRset of ``3 1 1 <tag as 64 hex digits>`` records."""
    return TlsaRRset.of(ttl, [records.from_text(f"3 1 1 {t:064x}") for t in tags])


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
