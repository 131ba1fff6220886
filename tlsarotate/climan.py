"""The manual page tlsarotate(1), written as roff (``man``'s macros) from the argument parser
itself, so it never lists an option the command line does not have: NAME, SYNOPSIS,
DESCRIPTION, GLOBAL OPTIONS, COMMANDS (each command's usage, description and options), EXIT
STATUS, ENVIRONMENT. ``tlsarotate man`` prints it; ``man -l`` or ``groff -man`` renders it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from tlsarotate import __version__
from tlsarotate.cliargs import EXIT_STATUS

ENVIRONMENT = (
    ("TLSAROTATE_CONFIG",
     "the config file when -c is not given (default /etc/tlsarotate/config.yaml)"),
    ("TLSAROTATE_LOG",
     "the log destination when --log-to is not given: stderr, syslog or journald"),
    ("TLSAROTATE_LOG_SOCKET",
     "the socket for --log-to syslog (default /dev/log) or journald "
     "(default /run/systemd/journal/socket)"),
)  # fmt: skip

# -c/-v/-q/--log-to, repeated in every command's parser: listed once, under GLOBAL OPTIONS
_GLOBAL = frozenset({"config", "verbose", "quiet", "log_to"})


def subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """Each subcommand of ``parser``: (name, its one-line help, its parser), in order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The options and positional arguments of ``parser`` (not -h, not the subcommands)."""
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        yield action


def escape(text: str) -> str:
    """Text for a roff line: backslashes and minus signs escaped, no leading control char."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out[:1] in (".", "'") else out


def _option(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    fmt = parser._get_formatter()
    invocation = fmt._format_action_invocation(action)
    text = fmt._expand_help(action) if action.help else ""
    return [".TP", f"\\fB{escape(invocation)}\\fR", escape(" ".join(text.split()))]


def _synopsis(parser: argparse.ArgumentParser, name: str) -> str:
    """``tlsarotate [GLOBAL OPTIONS] NAME [--opt ARG] ... ARG``, each item unbreakable."""
    fmt = parser._get_formatter()
    items, positionals = [], []
    for a in options(parser):
        if a.dest in _GLOBAL:
            continue
        if not a.option_strings:
            positionals.append(escape(fmt._format_args(a, a.dest)))
            continue
        opt = f"\\fB{escape(a.option_strings[0])}\\fR"
        arg = "" if a.nargs == 0 else " \\fI" + escape(fmt._format_args(a, a.dest.upper())) + "\\fR"
        items.append(f"[{opt}{arg}]")
    head = f"\\fB{parser.prog.split()[0]}\\fR [\\fIGLOBAL OPTIONS\\fR] \\fB{escape(name)}\\fR"
    return " ".join(i.replace(" ", "\\ ") for i in [head, *items, *positionals])


def render(parser: argparse.ArgumentParser) -> str:
    """The whole page."""
    prog = parser.prog
    lines = [
        f'.TH {prog.upper()} 1 "" "{prog} {__version__}" "User Commands"',
        ".ad l",  # ragged right, no hyphenation: option names stay whole
        ".nh",
        ".SH NAME",
        f"{prog} \\- {escape(parser.description or '')}",
        ".SH SYNOPSIS",
        f".B {prog}",
        "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        escape(parser.description or ""),
        "Each command's options are listed under COMMANDS;",
        f".B {prog} COMMAND \\-\\-help",
        "prints them too.",
        ".SH GLOBAL OPTIONS",
        escape(
            "These come before the command (-c, -v, -q and --log-to are accepted after it too)."
        ),
    ]
    for action in options(parser):
        lines += _option(parser, action)
    lines.append(".SH COMMANDS")
    for name, help, sub in subcommands(parser):
        lines += [f'.SS "{escape(name)}"', _synopsis(sub, name), ".PP", escape(help)]
        lines += [ln for a in options(sub) if a.dest not in _GLOBAL for ln in _option(sub, a)]
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_STATUS:
        lines += [".TP", f".B {escape(code)}", escape(meaning)]
    lines.append(".SH ENVIRONMENT")
    for var, meaning in ENVIRONMENT:
        lines += [".TP", f".B {var}", escape(meaning)]
    lines += [
        ".SH SEE ALSO",
        "The README and hooks/README.md of the tlsarotate source; RFC 6698, RFC 7671, RFC 7672.",
    ]
    return "\n".join(lines) + "\n"
