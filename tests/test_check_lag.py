"""check --next sees a secondary that has not caught up. Its own module (own BIND pair): it
stops the secondary, and a restarted secondary of the shared fixture can take longer than
the fixture's sync timeout to refresh (reported to the fixture's owner)."""

# ruff: noqa: F811
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.servers import BindServers, bind, bind_servers  # noqa: F401
from tests.test_check import BIND_ZONES, World, rec, spki  # noqa: F401
from tests.tls_servers import Chain, ServerPool, chains, publish, servers  # noqa: F401


@pytest.fixture
def world(bind: BindServers, tmp_path: Path) -> Iterator[World]:
    yield World(bind, 2525, tmp_path)


def test_next_gate_sees_a_lagging_secondary(world: World, chains: Callable[..., Chain]) -> None:
    cur, nxt = chains("cur"), chains("next")
    w = world
    w.port = 2525
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    w.bind.stop_secondary()
    w.bind.update("example.test.", build=lambda m: m.add(w.owner, 300, "TLSA", rec(nxt)))
    proc = run_cli(
        "-c", w.config(cur), "check", "--next", nxt.fullchain, "--no-live", "--timeout", "1"
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"is not published on [::1]:{w.bind.port}" in proc.stdout
