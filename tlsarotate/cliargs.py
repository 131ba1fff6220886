"""The ``tlsarotate`` command line's arguments: one parser with a subcommand each, usage errors
one line. Parsing only: no command is imported here."""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from tlsarotate import __version__

#: the exit codes, as (code, meaning) rows: the --help epilog and the man page's EXIT STATUS
EXIT_STATUS: tuple[tuple[str, str], ...] = (
    ("0", "ok, nothing to do"),
    ("1", "error (one line on stderr, nothing half-applied), or a service is blocked"),
    ("2", "plan: changes to make now (apply would write or swap); "
     "apply: a rollover is still waiting (run it again later, or use --wait)"),
    ("4", "plan: nothing to do now, only waiting (propagation, TTL) until a later time"),
    ("0-3", "check uses the Nagios codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"),
    ("0-3", "probe: 0 every address authenticated, 1 something could not be checked, "
     "2 DANE fails, 3 no DANE"),
    ("0-2", "reports: 0 no failed sessions, 2 failed sessions reported, 1 an input was skipped"),
)  # fmt: skip

EXIT_CODES = "exit codes:\n" + "".join(
    textwrap.fill(m, 79, initial_indent=f"  {c:<3}  ", subsequent_indent=" " * 7) + "\n"
    for c, m in EXIT_STATUS
)

#: the log destinations of --log-to (and $TLSAROTATE_LOG); see tlsarotate.clilog
LOG_DESTINATIONS = ("stderr", "syslog", "journald")

#: the shells `tlsarotate completion` writes a script for
COMPLETION_SHELLS = ("bash", "zsh", "tcsh")


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line too, and exit 1 (2 and 4 are plan's "changes to make" and
    "waiting"; for ``check``, whose codes are Nagios', an unusable call is UNKNOWN, 3)."""

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

OUTPUT = ("--output",)
OUTPUT_HELP = "output format (default text; json documents are described by schemas/)"
SERVICE_HELP = "only this service (default: every service in the config)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tlsarotate",
        description="Keep DANE TLSA records in step with TLS certificates (RFC 6698/7671/7672).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"tlsarotate {__version__}",
        help="print the version and exit",
    )
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config file (default: $TLSAROTATE_CONFIG or /etc/tlsarotate/config.yaml)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors")
    p.add_argument(
        "--log-to",
        choices=LOG_DESTINATIONS,
        metavar="|".join(LOG_DESTINATIONS),
        help="where log lines go (default: $TLSAROTATE_LOG or stderr); syslog and journald "
        "write to the local socket, for timer runs",
    )
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
    common.add_argument(
        "--log-to",
        choices=LOG_DESTINATIONS,
        metavar="|".join(LOG_DESTINATIONS),
        default=argparse.SUPPRESS,
        help="where log lines go (also accepted before the command)",
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
    r.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="certificate, chain, private or public key, CSR file, or certbot lineage directory",
    )
    r.add_argument(
        "--params",
        action="append",
        metavar='"U S M"',
        help='usage selector mtype, repeatable (default: "3 1 1" and "3 0 1")',
    )
    r.add_argument("--host", help="owner host name (with --port and --proto)")
    r.add_argument("--port", type=PORT, default=25, help="port for the owner name (default 25)")
    r.add_argument(
        "--proto",
        default="tcp",
        choices=["tcp", "udp", "sctp"],
        help="protocol for the owner name (default tcp)",
    )
    r.add_argument("--name", metavar="OWNER", help="full owner name, e.g. _25._tcp.mx.example.com")
    r.add_argument("--ttl", type=TTL, default=3600, help="TTL for zone-file lines (default 3600)")
    r.add_argument(
        "--ta-depth",
        type=int,
        default=1,
        metavar="N",
        help="usage 2: chain position of the trust anchor (1 = the leaf's issuer, default)",
    )
    r.add_argument(*OUTPUT, choices=["text", "json"], default="text", help=OUTPUT_HELP)

    v = add("validate", "check the config and the files it names, without touching DNS")
    v.add_argument(*OUTPUT, choices=["text", "json"], default="text", help=OUTPUT_HELP)

    pl = add("plan", "show what the next rollover step would change, and when; never writes")
    pl.add_argument("--service", metavar="NAME", help=SERVICE_HELP)
    pl.add_argument(*OUTPUT, choices=["text", "json"], default="text", help=OUTPUT_HELP)
    pl.add_argument(
        "--force-cleanup",
        action="store_true",
        help="show what apply --force-cleanup would remove (other writers' records too)",
    )

    a = add("apply", "perform every rollover step that is safe now")
    a.add_argument("--service", metavar="NAME", help=SERVICE_HELP)
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
    a.add_argument(*OUTPUT, choices=["text", "json"], default="text", help=OUTPUT_HELP)
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
    s.add_argument("--service", metavar="NAME", help=SERVICE_HELP)
    s.add_argument(*OUTPUT, choices=["text", "json"], default="text", help=OUTPUT_HELP)

    c = add("check", "verify DNS and live endpoints against the certificates (Nagios codes)")
    c.add_argument("--service", metavar="NAME", help=SERVICE_HELP)
    c.add_argument("--next", metavar="CERT", help="certificate about to be deployed (CI gate)")
    c.add_argument("--no-live", action="store_true", help="do not connect to the endpoints")
    c.add_argument(*OUTPUT, choices=["text", "json", "nagios"], default="text", help=OUTPUT_HELP)
    c.add_argument("--prometheus", metavar="FILE", help="write a node-exporter textfile")
    c.add_argument("--timeout", type=TIMEOUT, default=10.0, help="per-connection timeout")

    pr = add("probe", "what a TLS endpoint serves, matched against its published TLSA records")
    pr.add_argument(
        "host", help="the endpoint: a host name (TLSA owner _PORT._tcp.HOST) or an address"
    )
    pr.add_argument("--port", type=PORT, default=25, help="TCP port (default 25)")
    pr.add_argument(
        "--starttls",
        choices=["smtp", "imap", "pop3", "none", "auto"],
        default="auto",
        help="STARTTLS dialect, or none for TLS at once (default auto: by port)",
    )
    pr.add_argument(
        "--tlsa-from",
        default="dns",
        metavar="dns|FILE",
        help="where the TLSA records come from: DNS (default) or a file of records",
    )
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
    pr.add_argument(
        "--key-type",
        choices=["all", "rsa", "ecdsa"],
        default="all",
        help="offer only this certificate key type; all (default): one result per key type "
        "the server serves (RSA and ECDSA side by side)",
    )
    pr.add_argument("--save-chain", metavar="DIR", help="write each served chain here as PEM")
    pr.add_argument("--timeout", type=TIMEOUT, default=10.0, help="per-connection timeout")
    pr.add_argument(*OUTPUT, choices=["text", "json"], default="text", help=OUTPUT_HELP)

    im = add(
        "import",
        "print the services: config that manages a zone's published TLSA records as they are",
    )
    im.add_argument("--zone", required=True, help="the zone to read, e.g. example.com")
    im.add_argument(
        "--provider",
        metavar="NAME",
        help="the configured provider to read it through (default: the only one configured)",
    )
    im.add_argument(
        "--owner",
        action="append",
        metavar="OWNER",
        help="read this owner, e.g. _25._tcp.mx.example.com (repeatable; default: every TLSA "
        "owner the provider lists)",
    )
    im.add_argument(
        "--deployed",
        action="append",
        metavar="HOST=CERT,KEY",
        help="the certificate and key files HOST serves (or HOST=COMBINED, one key+chain "
        "file): the service's certificate.deployed; its records are confirmed against it "
        "(repeatable)",
    )
    im.add_argument(
        "--cert",
        action="append",
        metavar="HOST=FILE",
        help="a certificate HOST serves, only to confirm which records are its own (e.g. saved "
        "by probe --save-chain; repeatable)",
    )
    im.add_argument(
        "--nameserver",
        action="append",
        metavar="ADDR[:PORT]",
        help="put nameservers: [ADDR[:PORT], ...] in every service (repeatable)",
    )
    im.add_argument(
        "--observe",
        choices=["dns", "provider"],
        help="put observe: dns|provider in every service (default: leave it out, dns)",
    )
    im.add_argument(
        "--output",
        choices=["yaml", "json"],
        default="yaml",
        help="yaml: the services: section with comments (default); json: for programs",
    )

    rp = add(
        "reports",
        "read TLSRPT (RFC 8460) reports and match each failure with the rollover history",
    )
    rp.add_argument(
        "source",
        nargs="?",
        metavar="-",
        help="read one report, gzip report or mail message from stdin",
    )
    rp.add_argument(
        "--dir",
        metavar="DIR",
        help="read every *.json and *.json.gz file in DIR (default: the config's tlsrpt.dir)",
    )
    rp.add_argument(
        "--maildir",
        metavar="DIR",
        help="read the application/tlsrpt+gzip or +json attachments of a Maildir's messages",
    )
    rp.add_argument(
        "--mbox", metavar="FILE", help="read the report attachments of an mbox file's messages"
    )
    rp.add_argument(
        "--output",
        choices=["text", "json"],
        default="text",
        help="text for people (default) or one JSON document",
    )

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

    co = add(
        "completion",
        "print the shell completion script (e.g. source <(tlsarotate completion bash))",
    )
    co.add_argument(
        "shell",
        choices=COMPLETION_SHELLS,
        metavar="|".join(COMPLETION_SHELLS),
        help="the shell the script is for",
    )
    add("man", "print the manual page tlsarotate(1), generated from these arguments (roff)")
    return p
