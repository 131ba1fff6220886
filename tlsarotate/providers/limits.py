"""What a DNS backend accepts, declared by its provider class (:attr:`Provider.limits
<tlsarotate.providers.base.Provider.limits>`): the TTLs it takes and how many writes a minute.

``validate`` refuses a service whose ``ttl`` the backend would refuse (one line naming the
service and the provider); :meth:`~tlsarotate.providers.base.Provider.apply` spaces the writes
of one provider at least ``60 / writes_per_minute`` seconds apart on the context's clock (each
part of a split write is one write), so no minute ever holds more than ``writes_per_minute``
of them, across the ``apply`` calls of one run. Examples: deSEC ``Limits(min_ttl=3600,
writes_per_minute=15)``; Cloudflare ``Limits(min_ttl=60, max_ttl=86400, ttl_values={1:
"automatic"})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """A backend's declared limits; None: no limit."""

    min_ttl: int | None = None
    max_ttl: int | None = None
    # TTLs accepted besides min_ttl..max_ttl, each with what it means ("automatic"; "": nothing)
    ttl_values: Mapping[int, str] = field(default_factory=dict)
    writes_per_minute: float | None = None

    def ttl_problem(self, ttl: int) -> str | None:
        """What the backend accepts, in words (``accepts 1 (automatic) or 60-86400 seconds``),
        when it would refuse ``ttl``; None when it takes it."""
        lo, hi = self.min_ttl, self.max_ttl
        if ttl in self.ttl_values or ((lo is None or ttl >= lo) and (hi is None or ttl <= hi)):
            return None
        if lo is not None and hi is not None:
            span = f"{lo}-{hi} seconds"
        elif lo is not None:
            span = f"at least {lo} seconds"
        else:
            span = f"at most {hi} seconds"
        values = [f"{v} ({w})" if w else str(v) for v, w in sorted(self.ttl_values.items())]
        return "accepts " + " or ".join([*values, span])

    @property
    def write_interval(self) -> float:
        """The least number of seconds between two writes (0: no rate limit)."""
        return 60.0 / self.writes_per_minute if self.writes_per_minute else 0.0


__all__ = ["Limits"]
