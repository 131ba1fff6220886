"""The exit codes of ``plan`` (a step to take now vs. only waiting) and ``apply`` (2: still
waiting, which the hooks and units count as success)."""

from __future__ import annotations

import pytest

from tlsarotate import phases, plan_render
from tlsarotate.planner import Plan
from tlsarotate.state import State


def _plan(phase: str, *, install: tuple[str, ...] = (), name: str = "mail") -> Plan:
    return Plan(service=name, phase=phase, summary="", state=State(name), install=install)


IDLE = _plan(phases.IDLE)
NOW = _plan(phases.SWAP, install=("default",))  # a step to take now
WAITING = _plan(phases.WAIT_TTL)
PROPAGATING = _plan(phases.WAIT_PROPAGATION)
BLOCKED = _plan(phases.BLOCKED)


@pytest.mark.parametrize(
    ("plans", "plan_code", "apply_code"),
    [
        ([], 0, 0),
        ([IDLE], 0, 0),
        ([NOW], 2, 2),
        ([WAITING], 4, 2),
        ([PROPAGATING], 4, 2),
        ([IDLE, WAITING], 4, 2),
        ([WAITING, NOW], 2, 2),  # a step now wins over another service's wait
        ([NOW, BLOCKED], 1, 1),  # blocked wins over everything
        ([IDLE, BLOCKED], 1, 1),
    ],
)
def test_exit_codes(plans: list[Plan], plan_code: int, apply_code: int) -> None:
    assert plan_render.plan_exit_code(plans) == plan_code
    assert plan_render.exit_code(plans) == apply_code
