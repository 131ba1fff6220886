"""README's "Commands" synopsis names every command and every option the parser has: a user
reading it must not miss, say, ``apply --force`` or ``install-hooks``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from tlsarotate.cliargs import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMON = {"--help", "--config", "--verbose", "--quiet", "--log-to"}


def synopsis() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Commands") :]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_and_option_is_in_the_synopsis() -> None:
    block = synopsis()
    missing = []
    for name, parser in commands().items():
        rows = re.findall(rf"(?m)^  {re.escape(name)}\b.*(?:\n {{4,}}.*)*", block)
        if not rows:
            missing.append(name)
            continue
        for action in parser._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs and not set(longs) & COMMON and not any(o in rows[0] for o in longs):
                missing.append(f"{name} {longs[0]}")
    assert missing == []
