"""The ``tlsarotate`` command line: each command's function, by name. Thin: the arguments are
:mod:`tlsarotate.cliargs`, running a command line :mod:`tlsarotate.clirun`; each entry
imports its command's module only when that command runs (start-up stays fast)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tlsarotate.clirun import Handler, run


def _records(args: argparse.Namespace) -> int:
    from tlsarotate.filecommands import cmd_records

    return cmd_records(args)


def _validate(args: argparse.Namespace) -> int:
    from tlsarotate.filecommands import cmd_validate

    return cmd_validate(args)


def _plan(args: argparse.Namespace) -> int:
    from tlsarotate.commands import cmd_plan

    return cmd_plan(args)


def _apply(args: argparse.Namespace) -> int:
    from tlsarotate.commands import cmd_apply

    return cmd_apply(args)


def _status(args: argparse.Namespace) -> int:
    from tlsarotate.commands import cmd_status

    return cmd_status(args)


def _check(args: argparse.Namespace) -> int:
    from tlsarotate.check import cmd_check

    return cmd_check(args)


def _probe(args: argparse.Namespace) -> int:
    from tlsarotate.probe import cmd_probe

    return cmd_probe(args)


def _import(args: argparse.Namespace) -> int:
    from tlsarotate.importcmd import cmd_import

    return cmd_import(args)


def _reports(args: argparse.Namespace) -> int:
    from tlsarotate.tlsrpt.command import cmd_reports

    return cmd_reports(args)


def _install_hooks(args: argparse.Namespace) -> int:
    from tlsarotate.installer import cmd_install

    return cmd_install(args)


def _demo(args: argparse.Namespace) -> int:
    from tlsarotate.demo import cmd_demo

    return cmd_demo(args)


def _completion(args: argparse.Namespace) -> int:
    import sys

    from tlsarotate.cliargs import build_parser
    from tlsarotate.clicomplete import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def _man(args: argparse.Namespace) -> int:
    import sys

    from tlsarotate.cliargs import build_parser
    from tlsarotate.climan import render

    sys.stdout.write(render(build_parser()))
    return 0


#: command -> its function (the parsed arguments in, the exit code out)
COMMANDS: dict[str, Handler] = {
    "records": _records,
    "validate": _validate,
    "plan": _plan,
    "apply": _apply,
    "status": _status,
    "check": _check,
    "probe": _probe,
    "import": _import,
    "reports": _reports,
    "install-hooks": _install_hooks,
    "demo": _demo,
    "completion": _completion,
    "man": _man,
}


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
