"""README's worked example of a minimal provider is real code: the ``python`` block under "A new
provider" is taken from README.md as it stands and run as a provider on the base class's one
``apply`` workflow (files in tmp_path only)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import dns.name
import pytest

from tests.support.helpers import ROOT, rrset
from tlsarotate.change import OwnerChange, ZoneChange
from tlsarotate.errors import ConcurrentChangeError
from tlsarotate.providers import Provider, ProviderContext

ZONE = dns.name.from_text("example.test.")
A = dns.name.from_text("_25._tcp.mx1.example.test.")
B = dns.name.from_text("_25._tcp.mx2.example.test.")


def readme_provider() -> type[Provider]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### A new provider") :]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "README has no python block under 'A new provider'"
    ns: dict[str, Any] = {}
    exec(compile(m.group(1), "README.md", "exec"), ns)
    cls = ns["JsonProvider"]
    assert isinstance(cls, type) and issubclass(cls, Provider)
    return cls


@pytest.fixture
def prov(tmp_path: Path) -> Provider:
    f = tmp_path / "tlsa.json"
    f.write_text("{}")
    return readme_provider()("j", {"path": "tlsa.json"}, ProviderContext(base_dir=tmp_path))


def change(*owner_changes: OwnerChange) -> ZoneChange:
    return ZoneChange(ZONE, owner_changes)


def test_reads_what_it_wrote(prov: Provider, tmp_path: Path) -> None:
    assert prov.opts["path"] == tmp_path / "tlsa.json"  # resolved against the config's dir
    assert prov.read(ZONE, [A, B]) == {}
    prov.apply(change(OwnerChange(A, None, rrset(1, 2)), OwnerChange(B, None, rrset(3))))
    assert prov.read(ZONE, [A, B]) == {A: rrset(1, 2), B: rrset(3)}
    prov.apply(
        change(OwnerChange(A, rrset(1, 2), rrset(2, 4, ttl=60)), OwnerChange(B, rrset(3), None))
    )
    assert prov.read(ZONE, [A, B]) == {A: rrset(2, 4, ttl=60)}


def test_a_stale_write_is_refused_and_nothing_is_written(prov: Provider, tmp_path: Path) -> None:
    prov.apply(change(OwnerChange(A, None, rrset(1))))
    before = (tmp_path / "tlsa.json").read_bytes()
    # planned against an RRset that is no longer there (another writer changed it)
    with pytest.raises(ConcurrentChangeError) as e:
        prov.apply(change(OwnerChange(A, rrset(9), rrset(2)), OwnerChange(B, None, rrset(3))))
    assert "provider 'j' (json)" in str(e.value) and "\n" not in str(e.value)
    assert (tmp_path / "tlsa.json").read_bytes() == before


def test_a_change_keeping_every_owner_writes_nothing(prov: Provider, tmp_path: Path) -> None:
    prov.apply(change(OwnerChange(A, None, rrset(1))))
    f = tmp_path / "tlsa.json"
    f.write_text(json.dumps(json.loads(f.read_text()), indent=1))  # a marker layout
    marked = f.read_bytes()
    prov.apply(change(OwnerChange(A, rrset(1), rrset(1))))
    assert f.read_bytes() == marked
