"""``tlsarotate reports``: read TLSRPT reports, check them, and say what each failure means
for the rollover (I/O shell over :mod:`.ingest`, :mod:`.summary` and :mod:`.render`).

Where from: ``--dir D``, ``--maildir M``, ``--mbox F``, ``-`` (stdin), else the config's
``tlsrpt.dir``. Each input or policy skipped is one line on stderr. Exit 0: every input read
and no failed session; 2: failed sessions reported; 1: an input or policy was skipped (or an
error stopped the command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tlsarotate import config
from tlsarotate.errors import TlsarotateError
from tlsarotate.state import State
from tlsarotate.stores import make_store
from tlsarotate.tlsrpt import ingest, render
from tlsarotate.tlsrpt.summary import analyse


def _ingest(args: argparse.Namespace, cfg: config.Config) -> ingest.Ingested:
    chosen = [x for x in (args.dir, args.maildir, args.mbox, args.source) if x is not None]
    if len(chosen) > 1:
        raise TlsarotateError("name one source: --dir, --maildir, --mbox or - (stdin)")
    if args.maildir is not None:
        return ingest.read_maildir(Path(args.maildir))
    if args.mbox is not None:
        return ingest.read_mbox(Path(args.mbox))
    if args.source == "-":
        return ingest.read_stream(sys.stdin.buffer)
    if args.source is not None:
        raise TlsarotateError(f"unknown source {args.source!r}: use - for stdin, or --dir DIR")
    if args.dir is not None:
        return ingest.read_dir(Path(args.dir))
    if cfg.tlsrpt is not None:
        return ingest.read_dir(cfg.tlsrpt.dir)
    raise TlsarotateError(
        f"no reports to read: give --dir, --maildir, --mbox or -, or set tlsrpt.dir in {cfg.path}"
    )


def cmd_reports(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    got = _ingest(args, cfg)
    store = make_store(cfg)
    states: dict[str, State] = {}
    problems = list(got.problems)
    for s in cfg.services:
        try:
            states[s.name] = store.load(s.name)
        except TlsarotateError as e:
            problems.append(f"service {s.name}: rollover state not readable: {e}")
    a = analyse(got.documents, problems, cfg.services, states)
    for p in a.problems:
        print(f"tlsarotate: skipped: {p}", file=sys.stderr)
    sys.stdout.write(render.as_json(a) if args.output == "json" else render.text(a))
    if a.problems:
        return 1
    return 2 if any(a.failed.values()) else 0
