"""``tlsarotate demo``: a complete rollover on the local machine, no servers, no network.

It makes a throwaway CA and two leaf certificates (the deployed one and the next one, laid out
like a certbot lineage), a zone file holding the deployed certificate's records with a short
TTL, and a config using the zone-file backend. Then it runs the real commands: ``plan``,
``apply --wait`` through publish -> wait -> swap -> retire, and ``status``, and checks the end
result: the deployed files hold the next certificate and the zone only its records.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tlsarotate import certfiles, pki, records
from tlsarotate.clirun import run
from tlsarotate.commands import cmd_apply, cmd_plan, cmd_status
from tlsarotate.filecommands import cmd_validate

ZONE = "example.test."
HOST = "mx.example.test."

ZONE_TEMPLATE = """$TTL 300
$ORIGIN example.test.
@       IN SOA ns1 hostmaster (
                2026010100 ; serial
                3600 600 86400 300 )
        IN NS   ns1
ns1     IN A    192.0.2.53
mx      IN A    192.0.2.25
        IN MX   10 mx
"""

CONFIG_TEMPLATE = """# written by `tlsarotate demo`
state_dir: state
safety_margin: 0
providers:
  local:
    type: zonefile
    path: example.test.zone
services:
  - name: mail
    zone: example.test.
    provider: local
    hosts: [mx.example.test]
    ports: [25]
    ttl: {ttl}
    records: ["3 1 1", "3 0 1"]
    observe: provider        # no name servers in the demo: the written file is what is served
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{lineage: live/mx.example.test}}
      reload: ["true"]       # e.g. [postfix, reload]
"""


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def setup(d: Path, ttl: int) -> Path:
    """Lay out the demo files in ``d``; returns the config path."""
    ca = pki.make_ca("tlsarotate demo CA")
    old = pki.make_leaf(ca, [HOST.rstrip(".")])
    new = pki.make_leaf(ca, [HOST.rstrip(".")])
    _write(d / "ca.pem", ca.cert_pem)
    _write(d / "deployed/fullchain.pem", pki.fullchain_pem(old, ca))
    _write(d / "deployed/privkey.pem", old.key_pem, 0o600)
    _write(d / "live/mx.example.test/fullchain.pem", pki.fullchain_pem(new, ca))
    _write(d / "live/mx.example.test/privkey.pem", new.key_pem, 0o600)
    owner = records.owner_name(HOST, 25)
    deployed = certfiles.load_pair(d / "deployed/fullchain.pem", d / "deployed/privkey.pem")
    lines = [
        records.zone_line(owner, ttl, records.build(deployed, records.parse_params(p)))
        for p in ("3 1 1", "3 0 1")
    ]
    _write(d / "example.test.zone", (ZONE_TEMPLATE + "\n".join(lines) + "\n").encode())
    cfg = d / "config.yaml"
    _write(cfg, CONFIG_TEMPLATE.format(ttl=ttl).encode())
    return cfg


def _tlsa_lines(zone_file: Path) -> list[str]:
    return [
        ln
        for ln in zone_file.read_text().splitlines()
        if " TLSA " in ln and not ln.lstrip().startswith(";")
    ]


def _run(argv: list[str]) -> int:
    """One ``tlsarotate`` command line of those the demo shows, as the CLI runs it."""
    handlers = {
        "validate": cmd_validate,
        "plan": cmd_plan,
        "apply": cmd_apply,
        "status": cmd_status,
    }
    return run(argv, handlers)


def cmd_demo(args: argparse.Namespace) -> int:
    tmp = None
    if args.dir:
        d = Path(args.dir)
        d.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tlsarotate-demo-")
        d = Path(tmp.name)
    started = time.monotonic()
    try:
        cfg = setup(d, args.ttl)
        print(f"== demo files in {d}; config {cfg.name}:")
        print(f"== zone {d / 'example.test.zone'} holds the deployed certificate's records:")
        for ln in _tlsa_lines(d / "example.test.zone"):
            print(f"   {ln}")
        print("== a renewed certificate arrives in live/mx.example.test (like certbot's)")
        print("\n$ tlsarotate -c config.yaml validate")
        _run(["-c", str(cfg), "validate"])
        print("\n$ tlsarotate -c config.yaml plan")
        _run(["-c", str(cfg), "plan"])
        print("\n$ tlsarotate -c config.yaml apply --wait")
        rc = _run(["-c", str(cfg), "apply", "--wait"])
        if rc != 0:
            print(f"demo: apply exited {rc}")
            return 1
        print("\n$ tlsarotate -c config.yaml status")
        _run(["-c", str(cfg), "status"])
        # the end result, checked independently of the engine
        nxt = certfiles.load_lineage(d / "live/mx.example.test")
        now = certfiles.load_pair(d / "deployed/fullchain.pem", d / "deployed/privkey.pem")
        owner = records.owner_name(HOST, 25)
        want = sorted(
            records.zone_line(owner, args.ttl, records.build(nxt, records.parse_params(p)))
            for p in ("3 1 1", "3 0 1")
        )
        got = sorted(_tlsa_lines(d / "example.test.zone"))
        if not now.same_as(nxt) or got != want:
            print("demo: FAILED - the end state is not the expected one")
            return 1
        print(
            f"\n== demo complete in {time.monotonic() - started:.1f}s: the next certificate is "
            "deployed and the zone holds only its records"
        )
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()
