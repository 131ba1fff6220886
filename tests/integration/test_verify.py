"""After the swap's reload, the live service is probed (``verify:``); a service that serves
anything else than the installed certificate -- or stops offering STARTTLS, as Postfix does with
a mismatched key -- makes the swap roll back. Real aiosmtpd servers with STARTTLS; the
"stops offering STARTTLS" service is a tests/support/tls_servers.py ScriptedServer
("smtp-nostarttls")."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.servers import free_port
from tests.support.tls_servers import Chain, ScriptedServer, SmtpdServer
from tests.support.world import SimWorld
from tlsarotate import config, phases, planner
from tlsarotate.engine import Engine
from tlsarotate.errors import SwapError
from tlsarotate.postswap import verify_live


class LiveWorld:
    """A SimWorld whose service is a real SMTP server that serves the deployed files."""

    def __init__(self, tmp: Path, behaviour: str) -> None:
        self.w = SimWorld(tmp)
        self.port = free_port()
        self.behaviour = behaviour  # "good" | "stale" (reload does nothing) | "nostarttls"
        slot = dataclasses.replace(
            self.w.service.certificates[0],
            verify=config.Verify(starttls="smtp", host="127.0.0.1", port=self.port, timeout=5),
        )
        self.w.service = dataclasses.replace(self.w.service, certificates=(slot,))
        self.w.cfg = dataclasses.replace(self.w.cfg, services=(self.w.service,))
        self.server: SmtpdServer | ScriptedServer | None = None
        self._serve()
        inner: Callable[[Sequence[str]], subprocess.CompletedProcess[str]] = self.w.runner

        def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
            proc = inner(argv)
            if self.behaviour != "stale":
                self._serve(broken=self.behaviour == "nostarttls" and self._is_next())
            return proc

        self.runner = runner

    def _is_next(self) -> bool:
        return self.w.deployed().same_as(self.w.next())

    def _chain(self) -> Chain:
        d = self.w.tmp / "deployed"
        return Chain(None, (), d / "fullchain.pem", d / "privkey.pem")  # type: ignore[arg-type]

    def _serve(self, broken: bool = False) -> None:
        if self.server is not None:
            self.server.stop()
        if broken:
            self.server = ScriptedServer(
                "127.0.0.1", self._chain(), "smtp-nostarttls", port=self.port
            ).start()
        else:
            self.server = SmtpdServer("127.0.0.1", self._chain(), self.port).start()

    def engine(self) -> Engine:
        e = self.w.engine()
        e.runner = self.runner
        e.verify = lambda svc, slot, m: verify_live(svc, slot, m, clock=self.w.clock)
        return e

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveWorld]:
    lw = LiveWorld(tmp_path, request.param)
    try:
        yield lw
    finally:
        lw.stop()


def roll(lw: LiveWorld) -> list[planner.Plan]:
    lw.w.new_next()
    lw.engine().run([lw.w.service], wait=False)
    lw.w.clock.advance(400)
    return lw.engine().run([lw.w.service], wait=False)


@pytest.mark.parametrize("live", ["good"], indirect=True)
def test_verified_swap_completes(live: LiveWorld) -> None:
    plans = roll(live)
    assert [p.phase for p in plans] == [phases.IDLE]
    assert live.w.deployed().same_as(live.w.next())


@pytest.mark.parametrize(
    ("live", "error"),
    [
        ("stale", r"still serves another certificate.*restored"),  # reload did nothing
        ("nostarttls", r"STARTTLS not offered.*restored"),  # as Postfix with a mismatched key
    ],
    indirect=["live"],
)
def test_failed_verification_rolls_back(live: LiveWorld, error: str) -> None:
    old = live.w.deployed()
    with pytest.raises(SwapError, match=error):
        roll(live)
    assert live.w.deployed().same_as(old)
    # nothing retired: the old certificate's records are still published
    assert len(live.w.published_texts()) == 4
