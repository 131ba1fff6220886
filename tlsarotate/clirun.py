"""Running one command line: parse it, set up logging (:mod:`tlsarotate.clilog`), call the
command's function and turn a :class:`~tlsarotate.errors.TlsarotateError` into one line on
stderr (and in the log, when it goes elsewhere) and an exit code.

The caller hands over the functions (command name -> function taking the parsed arguments,
returning the exit code): ``tlsarotate.cli`` all of them, the demo the few it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from tlsarotate import clilog
from tlsarotate.cliargs import build_parser
from tlsarotate.errors import TlsarotateError

Handler = Callable[[argparse.Namespace], int]


def run(argv: Sequence[str] | None, handlers: Mapping[str, Handler]) -> int:
    """The exit code of the command line ``argv`` (None: ``sys.argv[1:]``); its command must be
    one of ``handlers``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    dest = "stderr"

    def say(line: str) -> None:
        """A final line: on stderr, and to the log destination too when that is not stderr."""
        print(f"tlsarotate: {line}", file=sys.stderr)
        if dest != "stderr":
            logging.getLogger("tlsarotate").error("%s", line)

    try:
        chosen = clilog.destination(args.log_to, os.environ)
        clilog.setup(args.verbose, args.quiet, chosen, os.environ)
        dest = chosen
        return handlers[args.command](args)
    except TlsarotateError as e:
        say(f"error: {e}")
        return e.exit_code if args.command != "check" else 3
    except KeyboardInterrupt:
        say("interrupted; state is consistent, run again to resume")
        return 130
    except BrokenPipeError:
        return 1
