"""check --next sees a secondary that has not caught up: the test stops the secondary and
writes on the primary only (the ``bind`` fixture's next reset restarts the secondary, empty,
so it transfers the zones at once)."""

# ruff: noqa: F811
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.checkworld import CHECK_ZONES, CheckWorld, rec, spki  # noqa: F401
from tests.support.helpers import run_cli
from tests.support.servers import BindServers, bind, bind_servers  # noqa: F401
from tests.support.tls_servers import Chain, ServerPool, chains, publish, servers  # noqa: F401

BIND_ZONES = CHECK_ZONES


@pytest.fixture
def world(bind: BindServers, tmp_path: Path) -> Iterator[CheckWorld]:
    yield CheckWorld(bind, 2525, tmp_path)  # --no-live: the port only names the TLSA owner


def test_next_gate_sees_a_lagging_secondary(
    world: CheckWorld, chains: Callable[..., Chain]
) -> None:
    cur, nxt = chains("cur"), chains("next")
    w = world
    publish(w.bind, "example.test.", w.owner, [rec(cur)])
    w.bind.stop_secondary()
    w.bind.update("example.test.", build=lambda m: m.add(w.owner, 300, "TLSA", rec(nxt)))
    proc = run_cli(
        "-c", w.config(cur), "check", "--next", nxt.fullchain, "--no-live", "--timeout", "1"
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"is not published on [::1]:{w.bind.port}" in proc.stdout
