"""The design that keeps zone-file commands fast (issue #16): a zone file's text is parsed once,
however many services share the file and however many times one command reads it (the
observer's read for ``observe: provider`` and the engine's), and again only when the text
changed -- by anyone -- since. Counts parses (and calls to ``dns.zone.from_text``); never a
time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.zone
import pytest

from tlsarotate import cli, pki, records
from tlsarotate.providers import zonetext

ZONE = "example.test."
SERVICES = ("a", "b", "c")
SOA = (
    "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n"
    "@ IN NS ns1\nns1 IN A 192.0.2.53\n"
)


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


def _setup(d: Path) -> tuple[Path, Path]:
    """Three services, two hosts each, in one zone file of one zonefile provider."""
    ca = pki.make_ca("parse-count CA")
    zone = d / "example.test.zone"
    cfg = ["state_dir: state", "safety_margin: 0", "providers:", "  z:", "    type: zonefile"]
    cfg += [f"    path: {zone}", "services:"]
    for s in SERVICES:
        for which in ("deployed", "next"):
            leaf = pki.make_leaf(ca, [f"*.{s}.example.test"])
            _write(d / f"certs/{s}/{which}.pem", pki.fullchain_pem(leaf, ca))
            _write(d / f"certs/{s}/{which}.key", leaf.key_pem, 0o600)
        cfg += [
            f"  - name: {s}",
            f"    zone: {ZONE}",
            "    provider: z",
            f"    hosts: [h1.{s}.example.test, h2.{s}.example.test]",
            "    ports: [25]",
            '    records: ["3 1 1"]',
            "    observe: provider",
            "    certificate:",
            f"      deployed: {{cert: certs/{s}/deployed.pem, key: certs/{s}/deployed.key}}",
            f"      next: {{cert: certs/{s}/next.pem, key: certs/{s}/next.key}}",
            '      reload: ["true"]',
        ]
    _write(zone, SOA)
    _write(d / "config.yaml", "\n".join(cfg) + "\n")
    (d / "state").mkdir(mode=0o700)
    return d / "config.yaml", zone


class Parses(list[str]):
    """The whole texts zonetext parsed (each with one ``dns.zone.from_text`` call, counted in
    ``dnspython``: the file's head, its final block of plain TLSA lines being read apart)."""

    dnspython = 0

    def __len__(self) -> int:
        assert self.dnspython == super().__len__(), "a parse without dns.zone.from_text or two"
        return super().__len__()

    def clear(self) -> None:
        super().clear()
        self.dnspython = 0


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    """Every text parsed from now on (and an empty parse cache)."""
    seen = Parses()
    real: Callable[..., Any] = dns.zone.from_text
    split: Callable[..., Any] = zonetext._split_tail

    def counting(text: str, *a: Any, **kw: Any) -> Any:
        seen.dnspython += 1
        return real(text, *a, **kw)

    def splitting(text: str, *a: Any, **kw: Any) -> Any:
        seen.append(text)
        return split(text, *a, **kw)

    monkeypatch.setattr(dns.zone, "from_text", counting)
    monkeypatch.setattr(zonetext, "_split_tail", splitting)
    monkeypatch.setattr(zonetext, "_PARSED", OrderedDict())
    return seen


def test_a_zone_file_is_parsed_once_per_text(
    tmp_path: Path, parses: Parses, capsys: pytest.CaptureFixture[str]
) -> None:
    config, zone = _setup(tmp_path)
    # validate: every service's check reads the shared file: one parse
    assert cli.main(["-c", str(config), "validate"]) == 0
    assert len(parses) == 1
    parses.clear()
    zonetext._PARSED.clear()  # a new command run starts with nothing parsed
    # plan: three services, each read twice (provider + observer): still one parse
    assert cli.main(["-c", str(config), "plan"]) == 2
    assert len(parses) == 1
    # someone else edits the file: the next run parses the new text, once
    with open(zone, "a") as f:
        f.write("; edited by hand\n")
    assert cli.main(["-c", str(config), "plan"]) == 2
    assert len(parses) == 2 and parses[1].endswith("; edited by hand\n")
    # apply: the text read, then the text written (parsed to verify the edit); reading the
    # file back after our own write parses nothing more
    assert cli.main(["-c", str(config), "apply"]) in (0, 2)
    assert len(parses) == 3
    assert parses[2] == zone.read_text()
    assert records.owner_name("h1.a.example.test", 25).to_text() in parses[2]
    capsys.readouterr()
