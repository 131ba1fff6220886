#!/usr/bin/env python3
"""Inputs for the scale benchmarks: N owners in Z zones across S services, real certificates.

    python bench/gen.py DIR --owners 10000 --zones 100 --services 100 [--validate]

writes into DIR:

* ``config.yaml`` -- S services ``s0 .. s{S-1}``, spread evenly over the Z zones ``z0.test.``
  ...; service ``sJ`` in zone ``zK.test.`` has the hosts ``hI.sJ.zK.test`` (N/S of them, port 25),
  records ``3 1 1`` and ``3 0 1`` (``--records``), ``observe: provider``, ``safety_margin: 0``;
* ``zones/zK.test.zone`` -- a master file per zone (zonefile provider) holding SOA, NS and the
  records of every owner's deployed certificate: the state right after a renewal, so ``plan``
  shows, and ``apply`` performs, a publish of the next certificate's records at every owner;
* ``certs/sJ/deployed.{pem,key}`` and ``certs/sJ/next.{pem,key}`` -- each service's deployed
  and next pair (full chain + key, ecdsa-p256), leaves naming ``*.sJ.zK.test`` (so no name
  notes); ``--distinct`` keys (default 200) are reused across the leaves;
* ``state/`` (0700), empty.

With ``target="rfc2136"`` (from Python, see bench/bind_bench.py) the zone files are not written:
the zones' lines go to a BIND the benchmark starts, and the config names an ``rfc2136`` provider
(TSIG) and that BIND's servers as ``nameservers`` (``observe: dns``).
Not a test; nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tlsarotate import certfiles, material, pki, records  # noqa: E402

SOA = "$ORIGIN {zone}\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\n"
SOA += "ns1 IN A 192.0.2.53\n"


@dataclass
class Service:
    name: str
    zone: str
    hosts: list[str]
    deployed: int  # index into Layout.mats
    next: int

    @property
    def owners(self) -> list[str]:
        return [records.owner_name(h, 25) for h in self.hosts]


@dataclass
class Layout:
    """What :func:`generate` made: the directory, the services and each zone's TLSA lines."""

    dir: Path
    services: list[Service]
    params: tuple[str, ...]
    ttl: int
    zone_lines: dict[str, list[str]] = field(default_factory=dict)
    mats: list[material.Material] = field(default_factory=list)  # 2 per service

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def zones(self) -> list[str]:
        return list(self.zone_lines)

    @property
    def owner_count(self) -> int:
        return sum(len(s.hosts) for s in self.services)

    def lines_for(self, svc: Service, which: str) -> list[str]:
        """The zone lines of ``svc``'s ``deployed`` or ``next`` certificate, every owner."""
        m = self.mats[svc.deployed if which == "deployed" else svc.next]
        built = [records.build(m, records.parse_params(p)) for p in self.params]
        return [records.zone_line(o, self.ttl, r) for o in svc.owners for r in built]


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)


def generate(
    d: Path,
    owners: int,
    zones: int,
    services: int,
    *,
    distinct: int = 200,
    params: Sequence[str] = ("3 1 1", "3 0 1"),
    ttl: int = 300,
    target: str = "zonefile",
) -> Layout:
    """Write the certificates (and, for ``zonefile``, the zone files and the config) into ``d``."""
    if services % zones or owners % services:
        raise SystemExit("--services must be a multiple of --zones and --owners of --services")
    d.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca("tlsarotate bench CA")
    keys = [pki.new_key() for _ in range(min(distinct, 2 * services))]
    lay = Layout(d, [], tuple(params), ttl)
    per_zone, per_service = services // zones, owners // services
    for j in range(services):
        zone = f"z{j // per_zone}.test."
        domain = f"s{j}.{zone.rstrip('.')}"
        hosts = [f"h{i}.{domain}" for i in range(per_service)]
        svc = Service(f"s{j}", zone, hosts, 2 * j, 2 * j + 1)
        lay.services.append(svc)
        for which in ("deployed", "next"):
            key = keys[len(lay.mats) % len(keys)]
            leaf = pki.make_leaf(ca, [f"*.{domain}"], key=key)
            cert, keyf = d / f"certs/{svc.name}/{which}.pem", d / f"certs/{svc.name}/{which}.key"
            _write(cert, pki.fullchain_pem(leaf, ca))
            _write(keyf, leaf.key_pem, 0o600)
            lay.mats.append(certfiles.load_pair(cert, keyf))
        lay.zone_lines.setdefault(zone, []).extend(lay.lines_for(svc, "deployed"))
    (d / "state").mkdir(mode=0o700, exist_ok=True)
    if target == "zonefile":
        for zone, lines in lay.zone_lines.items():
            _write(d / f"zones/{zone}zone", SOA.format(zone=zone) + "\n".join(lines) + "\n")
        write_config(lay)
    return lay


def write_config(
    lay: Layout,
    rfc2136: Mapping[str, Any] | None = None,
    nameservers: Sequence[str] = (),
    observe_read: str | None = None,
) -> Path:
    """The config for ``lay``: zonefile providers (one per zone), or one ``rfc2136`` provider
    with ``rfc2136`` as its options and ``observe: dns`` against ``nameservers`` (with
    ``observe_read`` when given)."""
    out = ["# written by bench/gen.py", "state_dir: state", "safety_margin: 0", "providers:"]
    if rfc2136 is None:
        for k, zone in enumerate(lay.zones):
            out += [f"  p{k}:", "    type: zonefile", f"    path: zones/{zone}zone"]
    else:
        out += ["  bind:", "    type: rfc2136"]
        out += [f"    {k}: {v}" for k, v in rfc2136.items()]
    out.append("services:")
    prov = {z: f"p{k}" for k, z in enumerate(lay.zones)}
    recs = ", ".join(f'"{p}"' for p in lay.params)
    for s in lay.services:
        out += [
            f"  - name: {s.name}",
            f"    zone: {s.zone}",
            f"    provider: {prov[s.zone] if rfc2136 is None else 'bind'}",
            f"    hosts: [{', '.join(s.hosts)}]",
            "    ports: [25]",
            f"    ttl: {lay.ttl}",
            f"    records: [{recs}]",
        ]
        if rfc2136 is None:
            out.append("    observe: provider")
        else:
            out.append(f"    nameservers: [{', '.join(repr(n) for n in nameservers)}]")
            if observe_read:
                out.append(f"    observe_read: {observe_read}")
        c = f"certs/{s.name}"
        out += [
            "    certificate:",
            f"      deployed: {{cert: {c}/deployed.pem, key: {c}/deployed.key}}",
            f"      next: {{cert: {c}/next.pem, key: {c}/next.key}}",
            '      reload: ["true"]',
        ]
    _write(lay.config, "\n".join(out) + "\n")
    return lay.config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--owners", type=int, default=10000)
    ap.add_argument("--zones", type=int, default=100)
    ap.add_argument("--services", type=int, default=None, help="default: one per zone")
    ap.add_argument("--distinct", type=int, default=200, help="distinct keys (default 200)")
    ap.add_argument("--records", nargs="+", default=["3 1 1", "3 0 1"])
    ap.add_argument("--validate", action="store_true", help="run `tlsarotate validate` on it")
    a = ap.parse_args(argv)
    t = time.monotonic()
    lay = generate(
        a.dir, a.owners, a.zones, a.services or a.zones, distinct=a.distinct, params=a.records
    )
    print(
        f"{lay.owner_count} owners, {len(lay.zones)} zones, {len(lay.services)} services "
        f"in {a.dir} ({time.monotonic() - t:.1f}s); config {lay.config}"
    )
    if a.validate:
        cmd = [sys.executable, "-m", "tlsarotate", "-c", str(lay.config), "validate"]
        return subprocess.run(cmd, check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
