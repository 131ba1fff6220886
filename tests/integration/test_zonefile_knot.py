"""The zone-file provider on a real knotd (tests/support/knot.py) loading the file it edits:
``reload: [knotc, zone-reload, ZONE]`` and no ``sign`` (Knot signs what it loads itself). What
is served is checked through the DNS observer, RRSIGs validated."""

# ruff: noqa: F811
from __future__ import annotations

from pathlib import Path

import dns.name
import pytest

from tests.support.helpers import assert_one_line, rd
from tests.support.knot import KnotServer, knot, knot_server  # noqa: F401
from tests.support.servers import wait_until
from tlsarotate.authoritative import DnsObserver
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.errors import ProviderError
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.zonefile import ZoneFileProvider

ZONE = dns.name.from_text("example.test.")
A = dns.name.from_text("_25._tcp.mx.example.test.")


def serves_signed(srv: KnotServer, want: TlsaRRset | None) -> bool:
    obs = DnsObserver(srv.nameservers, timeout=2).observe(ZONE, [A])
    return obs.lagging({A: want}, require_signed=True) == [] and bool(obs.servers[0].signed[A])


def test_knot_serves_the_reloaded_file_signed(knot: KnotServer, tmp_path: Path) -> None:
    path = knot.zone_file(ZONE)
    opts = {"path": str(path), "reload": knot.reload_argv(ZONE)}
    prov = ZoneFileProvider("knot", opts, ProviderContext(base_dir=tmp_path))
    new = TlsaRRset.of(300, [rd(1), rd(2)])
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, new),)))
    wait_until(lambda: serves_signed(knot, new), 10, "knotd to serve the file's TLSA signed")
    prov.apply(ZoneChange(ZONE, (OwnerChange(A, new, None),)))
    wait_until(lambda: serves_signed(knot, None), 10, "knotd to serve its absence signed")


def test_a_failing_knotc_restores_the_file(knot: KnotServer, tmp_path: Path) -> None:
    path = knot.zone_file(ZONE)
    before = path.read_text()
    bad = knot.reload_argv("missing.test.")  # a zone knotd does not serve
    prov = ZoneFileProvider("knot", {"path": str(path), "reload": bad}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        prov.apply(ZoneChange(ZONE, (OwnerChange(A, None, TlsaRRset.of(300, [rd(1)])),)))
    assert_one_line(
        ei.value, "reload command", "zone-reload", "the previous zone file was restored"
    )
    assert path.read_text() == before
    assert serves_signed(knot, None)
