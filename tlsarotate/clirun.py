"""Running one command line: parse it, set up logging, call the command's function and turn
a :class:`~tlsarotate.errors.TlsarotateError` into one line on stderr and an exit code.

The caller hands over the functions (command name -> function taking the parsed arguments,
returning the exit code): ``tlsarotate.cli`` all of them, the demo the few it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from tlsarotate.cliargs import build_parser
from tlsarotate.errors import TlsarotateError

Handler = Callable[[argparse.Namespace], int]


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    if verbose == 0 and not quiet:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tlsarotate: %(message)s"))
    root = logging.getLogger("tlsarotate")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = True  # (no root handlers in the CLI; pytest's caplog listens there)


def run(argv: Sequence[str] | None, handlers: Mapping[str, Handler]) -> int:
    """The exit code of the command line ``argv`` (None: ``sys.argv[1:]``); its command must be
    one of ``handlers``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        return handlers[args.command](args)
    except TlsarotateError as e:
        print(f"tlsarotate: error: {e}", file=sys.stderr)
        return e.exit_code if args.command != "check" else 3
    except KeyboardInterrupt:
        print("tlsarotate: interrupted; state is consistent, run again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
