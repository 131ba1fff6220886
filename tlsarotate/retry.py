"""Retries with capped, jittered exponential backoff, on a given clock and random source.

One helper for every network client (the providers, the observer): :func:`retrying` calls a
function until it returns, an error it must not retry is raised, or the attempts run out; it
sleeps :func:`backoff_delay` (or a delay the error asks for, such as HTTP ``Retry-After``)
between attempts, on the :class:`~tlsarotate.clock.Clock` it is handed, so tests run it on a
fake clock with a seeded :class:`random.Random`. Imports nothing that does I/O.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TypeVar

from tlsarotate.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """The jittered, capped exponential backoff before retry number ``attempt`` + 1 (0: the
    first retry): a delay between ``d/2`` and ``d``, where ``d = min(cap, base * 2**attempt)``."""
    d = min(cap, base * 2 ** max(0, attempt))
    return float(d / 2 + rng.uniform(0, d / 2))


def retrying(
    what: str,
    fn: Callable[[], T],
    *,
    attempts: int,
    retry_on: tuple[type[BaseException], ...],
    clock: Clock,
    rng: random.Random,
    base: float,
    cap: float,
    delay: Callable[[BaseException], float | None] | None = None,
) -> T:
    """``fn()``, called up to ``attempts`` times (at least once) while it raises one of
    ``retry_on``. Between attempts it sleeps ``delay(error)`` when that gives a number, else
    :func:`backoff_delay` of the attempt. When the last attempt fails too, its error is raised
    as it is: the caller words the final failure (it knows how many attempts it asked for).
    Errors not in ``retry_on`` are raised at once."""
    for attempt in range(max(1, attempts)):
        try:
            return fn()
        except retry_on as e:
            if attempt + 1 >= attempts:
                raise
            wait = delay(e) if delay is not None else None
            if wait is None:
                wait = backoff_delay(attempt, base, cap, rng)
            log.debug("%s: attempt %d failed (%s); retrying in %.2fs", what, attempt + 1, e, wait)
            clock.sleep(max(0.0, wait))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
