"""Times and durations as people read them, the same in every command's output."""

from __future__ import annotations

import datetime as dt


def iso(ts: float | None) -> str | None:
    """``2026-11-28T21:00:00Z`` (UTC, whole seconds), or None."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """``3d4h``, ``1h12m``, ``4m05s``, ``7s`` (rounded up: a wait is never shown shorter)."""
    s = max(0, int(abs(seconds) + 0.999))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"
