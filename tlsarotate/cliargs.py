"""The ``tlsarotate`` command line's arguments: one parser with a subcommand each, usage errors
one line. Parsing only: no command is imported here."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from tlsarotate import __version__

EXIT_CODES = """exit codes:
  0  ok, nothing to do
  1  error (one line on stderr, nothing half-applied)
  2  changes pending, or a rollover is still waiting (plan, apply)
  check uses the Nagios codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line too, and exit 1 (2 means "changes pending"; for ``check``,
    whose codes are Nagios', an unusable call is UNKNOWN, 3)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(3 if self.prog.endswith(" check") else 1)


def _number(kind: type, lo: float, hi: float, what: str) -> Callable[[str], Any]:
    """An argparse type: a finite number within [lo, hi] (``nan``/``inf`` refused)."""

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not a number") from None
        if not (math.isfinite(v) and lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{what} {text} out of range {lo:g}-{hi:.10g}")
        return v

    return parse


PORT = _number(int, 1, 65535, "port")
TIMEOUT = _number(float, 0.001, 3600, "timeout (seconds)")
TTL = _number(int, 0, 2147483647, "TTL")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tlsarotate",
        description="Keep DANE TLSA records in step with TLS certificates (RFC 6698/7671/7672).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"tlsarotate {__version__}")
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config file (default: $TLSAROTATE_CONFIG or /etc/tlsarotate/config.yaml)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    # -c/-v/-q are accepted after the command too (`tlsarotate validate -c FILE`)
    common = _Parser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="config file (also accepted before the command)",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only errors"
    )

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    r = add("records", "print TLSA records for certificates, chains, keys, CSRs or lineages")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument(
        "--params",
        action="append",
        metavar='"U S M"',
        help='usage selector mtype, repeatable (default: "3 1 1" and "3 0 1")',
    )
    r.add_argument("--host", help="owner host name (with --port and --proto)")
    r.add_argument("--port", type=PORT, default=25, help="port for the owner name (default 25)")
    r.add_argument("--proto", default="tcp", choices=["tcp", "udp", "sctp"])
    r.add_argument("--name", metavar="OWNER", help="full owner name, e.g. _25._tcp.mx.example.com")
    r.add_argument("--ttl", type=TTL, default=3600, help="TTL for zone-file lines (default 3600)")
    r.add_argument(
        "--ta-depth",
        type=int,
        default=1,
        metavar="N",
        help="usage 2: chain position of the trust anchor (1 = the leaf's issuer, default)",
    )
    r.add_argument("--output", choices=["text", "json"], default="text")

    v = add("validate", "check the config and the files it names, without touching DNS")
    v.add_argument("--output", choices=["text", "json"], default="text")

    pl = add("plan", "show what the next rollover step would change, and when; never writes")
    pl.add_argument("--service", metavar="NAME")
    pl.add_argument("--output", choices=["text", "json"], default="text")
    pl.add_argument(
        "--force-cleanup",
        action="store_true",
        help="show what apply --force-cleanup would remove (other writers' records too)",
    )

    a = add("apply", "perform every rollover step that is safe now")
    a.add_argument("--service", metavar="NAME")
    a.add_argument("--wait", action="store_true", help="keep going until every service is idle")
    a.add_argument(
        "--lock-timeout",
        type=_number(float, 0, 86400, "lock timeout (seconds)"),
        metavar="S",
        help="seconds to wait for a service lock held by another run",
    )
    a.add_argument(
        "--lineage",
        metavar="DIR",
        help="only services whose next certificate is this certbot lineage (deploy hooks)",
    )
    a.add_argument("--output", choices=["text", "json"], default="text")
    a.add_argument(
        "--force-cleanup",
        action="store_true",
        help="remove, this once, records this tlsarotate did not publish (other writers'); "
        "see them with plan --force-cleanup first; not with --wait",
    )
    a.add_argument(
        "--force",
        action="store_true",
        help="make, this once, the writes plan says need it (removing more stale records than "
        "max_stale_removals/max_stale_share allow, or an owner's whole RRset); not with --wait",
    )

    s = add("status", "phase, published records, certificates and timestamps per service")
    s.add_argument("--service", metavar="NAME")
    s.add_argument("--output", choices=["text", "json"], default="text")

    c = add("check", "verify DNS and live endpoints against the certificates (Nagios codes)")
    c.add_argument("--service", metavar="NAME")
    c.add_argument("--next", metavar="CERT", help="certificate about to be deployed (CI gate)")
    c.add_argument("--no-live", action="store_true", help="do not connect to the endpoints")
    c.add_argument("--output", choices=["text", "json", "nagios"], default="text")
    c.add_argument("--prometheus", metavar="FILE", help="write a node-exporter textfile")
    c.add_argument("--timeout", type=TIMEOUT, default=10.0, help="per-connection timeout")

    pr = add("probe", "what a TLS endpoint serves, matched against its published TLSA records")
    pr.add_argument("host")
    pr.add_argument("--port", type=PORT, default=25)
    pr.add_argument("--starttls", choices=["smtp", "imap", "pop3", "none", "auto"], default="auto")
    pr.add_argument("--tlsa-from", default="dns", metavar="dns|FILE")
    pr.add_argument("--resolver", metavar="ADDR", help="validating resolver to ask as well")
    pr.add_argument(
        "--nameserver",
        action="append",
        metavar="ADDR[:PORT]",
        help="authoritative server to query instead of the zone's NS set (repeatable)",
    )
    pr.add_argument(
        "--address",
        action="append",
        metavar="ADDR",
        help="probe this address instead of resolving HOST (repeatable)",
    )
    pr.add_argument("--save-chain", metavar="DIR")
    pr.add_argument("--timeout", type=TIMEOUT, default=10.0, help="per-connection timeout")
    pr.add_argument("--output", choices=["text", "json"], default="text")

    ih = add(
        "install-hooks",
        "install the ACME-client hooks, systemd units or cron line with this install's paths",
    )
    for group, what in (
        ("certbot", "certbot's deploy hook (renewal-hooks/deploy/ and /usr/local/lib/tlsarotate)"),
        ("acme", "the acme.sh reload command and the dehydrated hook"),
        ("systemd", "tlsarotate.service and tlsarotate.timer (ReadWritePaths= from the config)"),
        ("cron", "/etc/cron.d/tlsarotate, for hosts without systemd"),
    ):
        ih.add_argument(f"--{group}", action="append_const", const=group, dest="groups", help=what)
    ih.add_argument(
        "--dest", default="/", metavar="DIR", help="install under this root (default /)"
    )
    ih.add_argument(
        "--executable",
        metavar="PATH",
        help="the tlsarotate the files call (default: this install's)",
    )
    ih.add_argument(
        "--force", action="store_true", help="replace files install-hooks did not write"
    )
    ih.add_argument("--dry-run", action="store_true", help="list what would be written")

    d = add("demo", "run a complete local rollover: throwaway CA, zone file, short TTL")
    d.add_argument("--dir", metavar="DIR", help="keep the demo files here (default: temp dir)")
    d.add_argument(
        "--ttl",
        type=_number(int, 1, 60, "demo TTL"),
        default=3,
        help="TTL of the demo records (default 3)",
    )
    return p
