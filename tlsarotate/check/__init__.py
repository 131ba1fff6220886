"""``tlsarotate check``: DNS and live endpoints against the configured certificates (Nagios).

Three steps: :mod:`~tlsarotate.check.gather` does the I/O (zones observed, endpoints probed
concurrently, certificate files and rollover state read) into typed facts
(:mod:`~tlsarotate.check.facts`); :mod:`~tlsarotate.check.judge` turns them, without I/O, into
a typed :class:`~tlsarotate.check.report.CheckReport`; one module per output format renders
it: ``render_text``, ``render_json``, ``render_nagios``, ``render_prometheus`` (the
``--prometheus`` textfile, written atomically).

Exit codes are Nagios': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (DNS or endpoint unreachable,
errors). CRITICAL wins over UNKNOWN, UNKNOWN over WARNING. ``--next CERT --no-live`` is the CI
gate: CRITICAL (exit 2) when deploying CERT now would break DANE.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from tlsarotate import config
from tlsarotate.check import (
    gather,
    judge,
    render_json,
    render_nagios,
    render_prometheus,
    render_text,
)
from tlsarotate.check.report import UNKNOWN, CheckReport
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.config import Config
from tlsarotate.errors import TlsarotateError
from tlsarotate.fsutil import atomic_write
from tlsarotate.handshake import fetch_chain
from tlsarotate.service_observer import ObserverFactory, observer_for

log = logging.getLogger(__name__)


def run_check(
    cfg: Config,
    service_name: str | None = None,
    next_cert: str | None = None,
    live: bool = True,
    timeout: float = 10.0,
    clock: Clock | None = None,
    observer_for: ObserverFactory = observer_for,
    fetch: gather.Fetch = fetch_chain,
) -> CheckReport:
    """Gather (I/O), then judge (pure)."""
    now = (clock or SystemClock()).now()
    facts = gather.gather(cfg, now, service_name, next_cert, live, timeout, observer_for, fetch)
    return judge.judge(facts)


def cmd_check(args: argparse.Namespace) -> int:
    """Run the check and print it in the chosen format. An error that stops the check (a
    config error, an unwritable --prometheus file, even a bug) is UNKNOWN (exit 3) in every
    format: text and json print their UNKNOWN report on stdout (and the one-line error on
    stderr), nagios its status line, and the --prometheus file gets status 3."""
    try:
        if args.timeout <= 0:
            raise TlsarotateError(f"--timeout {args.timeout:g} must be positive")
        if args.prometheus:
            parent = Path(args.prometheus).absolute().parent
            if not parent.is_dir():
                raise TlsarotateError(
                    f"--prometheus {args.prometheus}: directory {parent} not found"
                )
        cfg = config.load(args.config)
        rep = run_check(
            cfg,
            service_name=args.service,
            next_cert=args.next,
            live=not args.no_live,
            timeout=args.timeout,
        )
        if args.output == "json":
            out = render_json.render(rep)
        elif args.output == "nagios":
            out = render_nagios.render(rep)
        else:
            out = render_text.render(rep)
        if args.prometheus:
            _write_textfile(args.prometheus, render_prometheus.render(rep))
    except TlsarotateError as e:
        return _unknown(args, str(e))
    except Exception as e:  # a bug must not read as WARNING (exit 1) to the monitoring
        log.debug("check failed", exc_info=True)
        return _unknown(args, f"internal error: {type(e).__name__}: {e}")
    sys.stdout.write(out)
    return rep.exit_code


def _unknown(args: argparse.Namespace, reason: str) -> int:
    """The check could not run: report UNKNOWN in the chosen output format."""
    msg = " ".join(reason.split())  # one line
    now = SystemClock().now()
    if args.prometheus:
        # never leave node-exporter serving the last OK: the check itself is UNKNOWN now
        with contextlib.suppress(TlsarotateError):
            _write_textfile(args.prometheus, render_prometheus.render_unknown(now))
    if args.output == "nagios":
        sys.stdout.write(render_nagios.render_unknown(msg))
        return UNKNOWN
    if args.output == "json":
        sys.stdout.write(render_json.render_error(msg, now))
    else:
        sys.stdout.write(render_nagios.render_unknown(msg))
    sys.stderr.write(f"tlsarotate: error: {msg}\n")
    return UNKNOWN


def _write_textfile(path: str, text: str) -> None:
    try:
        atomic_write(path, text.encode())
    except OSError as e:
        raise TlsarotateError(f"--prometheus {path}: cannot write: {e.strerror}") from None
