"""An octoDNS provider class that cannot hold TLSA records (its ``SUPPORTS`` lacks it), for the
``octodns`` provider's refusal at ``validate``: ``class: tests.support.octodns_notlsa.NoTlsa``."""

from __future__ import annotations

from typing import Any

from octodns.provider.base import BaseProvider


class NoTlsa(BaseProvider):  # type: ignore[misc]
    SUPPORTS_GEO = False
    SUPPORTS = frozenset({"A", "AAAA", "CNAME", "MX", "TXT"})

    def populate(self, zone: Any, target: bool = False, lenient: bool = False) -> bool:
        return True

    def _apply(self, plan: Any) -> None:
        raise AssertionError("never written")
