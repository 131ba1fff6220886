"""The observer of one configured service: the one factory every command uses (``apply``,
``plan``, ``status`` through the engine, ``check`` directly) to learn what the service's
authoritative servers serve. Tests pass their own :data:`ObserverFactory`.

``observe: provider`` (a zone file, the demo: no servers to ask) trusts the provider's own read,
with the TTLs its servers hand out; otherwise the DNS observer asks the zone's NS set, or the
configured nameservers (instead of it, or with ``nameservers_mode: add`` besides it), one query
per owner, or with ``observe_read: axfr`` one zone transfer per server
(:class:`~tlsarotate.zonetransfer.TransferObserver`, signed with the provider's TSIG key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dns.name

from tlsarotate.authoritative import DnsObserver
from tlsarotate.change import TlsaRRset
from tlsarotate.config import Service
from tlsarotate.observation import Observer, ProviderObserver
from tlsarotate.providers.base import Provider
from tlsarotate.zonetransfer import TransferObserver

ObserverFactory = Callable[[Service, Callable[[], Provider], float], Observer]
"""(service, its provider (made only when needed), timeout per query in seconds) -> observer."""


class AsServed:
    """A provider's read with the TTLs its servers hand out (Cloudflare's "automatic" 1 is
    served as 300): what ``observe: provider`` must wait for."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        got = self.provider.read(zone, owners)
        return {
            o: TlsaRRset.of(self.provider.served_ttl(rr.ttl), rr.records) for o, rr in got.items()
        }


def observer_for(service: Service, provider: Callable[[], Provider], timeout: float) -> Observer:
    """The observer of ``service`` (see the module docstring)."""
    if service.observe == "provider":
        prov = provider()
        return ProviderObserver(AsServed(prov), prov.name)
    servers = tuple(service.nameservers) or None
    replace = service.nameservers_mode == "replace"
    if service.observe_read == "axfr":
        key = provider().transfer_key()
        return TransferObserver(servers, timeout=timeout, replace=replace, key=key)
    return DnsObserver(servers, timeout=timeout, replace=replace)
