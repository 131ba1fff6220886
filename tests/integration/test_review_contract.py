# ruff: noqa: F811
"""Contract additions from the review, run against every provider of the contract suite
(tests/integration/test_provider_contract.py builds them on their real or faithful backends)."""

from __future__ import annotations

import pytest

from tests.integration.test_provider_contract import (  # noqa: F401  (fixtures and their dependencies)
    Case,
    apply_to,
    assert_one_line,
    bind,
    bind_servers,
    case,
    cf_server,
    change_to,
    moto_url,
    owner,
    plugin_dir,
    plugin_installed,
    rd,
    route53_env,
    rr,
)
from tlsarotate.errors import ConcurrentChangeError

A, B = owner("keep1"), owner("move1")


def test_concurrent_change_at_a_kept_owner_is_detected(case: Case) -> None:
    """Every owner of a change is a prerequisite, also one the change keeps as it is: when it
    moved since the read, the change is refused and nothing is written."""
    apply_to(case, {A: rr(300, rd(1)), B: rr(300, rd(5))})
    change = change_to(case, {A: rr(300, rd(1)), B: rr(300, rd(6))})  # A stays as it is
    assert change.changes[0].old == change.changes[0].new
    case.helpers.second_writer(A, rr(300, rd(9)))
    state = case.provider.read(case.zone, [A, B])
    before = case.helpers.writes()
    with pytest.raises(ConcurrentChangeError) as ei:
        case.provider.apply(change)
    assert_one_line(ei.value, str(A))
    assert case.helpers.writes() == before
    assert case.provider.read(case.zone, [A, B]) == state


def test_change_keeping_every_owner_writes_nothing(case: Case) -> None:
    """No change, no write: a change that keeps every owner sends nothing."""
    apply_to(case, {A: rr(300, rd(1))})
    change = change_to(case, {A: rr(300, rd(1))})
    before = case.helpers.writes()
    case.provider.apply(change)
    assert case.helpers.writes() == before
