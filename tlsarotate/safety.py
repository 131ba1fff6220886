"""Safety thresholds on a planned write, after octoDNS's Plan safety checks (its update/delete
percentage thresholds and ``--force``). Pure: a judgement on one service's :class:`ZoneChange`
and the reasons the planner gave for each record it removes; no I/O.

Two rules, per owner the write touches:

- **stale removals**: records the write removes that nobody accounts for (the planner's
  :data:`~tlsarotate.ownership.STALE`: no certificate of the service matches them, and they are
  not a replaced certificate's, nor the deployed one's with retired parameters, nor another
  writer's that ``--force-cleanup`` asked to remove) are allowed up to ``max_stale_removals``
  records and ``max_stale_share`` of the owner's RRset; more needs ``apply --force``;
- **whole RRset**: a write that deletes an owner's whole RRset needs ``apply --force``,
  whatever the reason.

The defaults (2 records, 40%) let a renewal that arrives mid-rollover through (the superseded
next certificate's 2 records of 6) and hold back a deployed certificate replaced behind our back
(the served one's 2 records of 4: maybe ``deployed:`` names the wrong file).

The planner attaches the judgement to its Plan (:attr:`Plan.unsafe`); ``plan`` shows it
("needs --force: ..."), the engine refuses such a write without ``--force``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate.change import ZoneChange
from tlsarotate.ownership import (
    FORCED,
    OLD_CA,
    OLD_CERTIFICATE,
    OLD_PARAMETERS,
    ClassifiedRecord,
)

DEFAULT_MAX_STALE_REMOVALS = 2
DEFAULT_MAX_STALE_SHARE = 0.4

#: why a record may go without --force: someone accounts for it
ACCOUNTED = frozenset({OLD_CERTIFICATE, OLD_PARAMETERS, FORCED, OLD_CA})


@dataclass(frozen=True)
class Limits:
    """A service's thresholds (config ``max_stale_removals``, ``max_stale_share``)."""

    max_stale_removals: int = DEFAULT_MAX_STALE_REMOVALS
    max_stale_share: float = DEFAULT_MAX_STALE_SHARE


@dataclass(frozen=True)
class Unsafe:
    """One owner's part of a write that needs ``--force``."""

    owner: dns.name.Name
    stale: int  # records removed there that nobody accounts for
    size: int  # records in the owner's RRset before the write
    whole: bool  # the write deletes the owner's whole RRset
    limits: Limits

    @property
    def reason(self) -> str:
        if self.whole:
            return (
                f"{self.owner}: deletes the whole TLSA RRset ({_n(self.size)}); "
                "an owner's RRset is never deleted without --force"
            )
        lim = self.limits
        over = []
        if self.stale > lim.max_stale_removals:
            over.append(f"more than max_stale_removals {lim.max_stale_removals}")
        if self.stale / self.size > lim.max_stale_share:
            over.append(
                f"{self.stale / self.size:.0%} of the RRset, more than max_stale_share "
                f"{lim.max_stale_share:.0%}"
            )
        return (
            f"{self.owner}: removes {self.stale} of {_n(self.size)} that no certificate "
            f"accounts for (stale; {' and '.join(over)})"
        )

    def to_json(self) -> dict[str, object]:
        """The ``needs_force`` entry of ``plan --output json``."""
        return {
            "owner": self.owner.to_text(),
            "stale": self.stale,
            "size": self.size,
            "whole": self.whole,
            "reason": self.reason,
        }


def _n(count: int) -> str:
    return f"{count} record" if count == 1 else f"{count} records"


def over(stale: int, size: int, limits: Limits) -> bool:
    """Do ``stale`` removals from an RRset of ``size`` records pass a threshold?"""
    if stale <= 0 or size <= 0:
        return False
    return stale > limits.max_stale_removals or stale / size > limits.max_stale_share


def judge(
    change: ZoneChange | None, removals: Iterable[ClassifiedRecord], limits: Limits
) -> tuple[Unsafe, ...]:
    """The owners where ``change`` needs ``--force`` (empty: it is safe as planned).
    ``removals`` says why each removed record goes; a removed record it does not name counts
    as stale."""
    if not change:
        return ()
    why: dict[tuple[dns.name.Name, TLSA], str] = {(m.owner, m.record): m.why for m in removals}
    out: list[Unsafe] = []
    for ch in change.changes:
        size = len(ch.old.records) if ch.old else 0
        if size == 0:
            continue
        whole = ch.new is None or not ch.new.records
        stale = sum(1 for rd in ch.removed if why.get((ch.owner, rd)) not in ACCOUNTED)
        if whole or over(stale, size, limits):
            out.append(Unsafe(ch.owner, stale, size, whole, limits))
    return tuple(out)


def refusal(service: str, unsafe: Iterable[Unsafe]) -> str:
    """The one line ``apply`` refuses with (without ``--force``)."""
    parts = [u.reason for u in unsafe]
    return (
        f"service {service!r}: refusing to write without --force: {'; '.join(parts)}; "
        "see `tlsarotate plan`, then run `tlsarotate apply --force` to write it anyway"
    )
