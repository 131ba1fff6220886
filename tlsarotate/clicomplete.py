"""Shell completion scripts for bash, zsh and tcsh, generated from the argument parser by shtab
(the ``[completion]`` extra): ``source <(tlsarotate completion bash)``. File and directory
arguments complete as paths."""

from __future__ import annotations

import argparse

from tlsarotate.climan import options, subcommands
from tlsarotate.errors import TlsarotateError

# metavars that name a path, and what shtab completes them as
_PATHS = {"FILE": "file", "DIR": "directory", "CERT": "file", "PATH": "file"}


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or tcsh)."""
    try:
        import shtab
    except ImportError:
        raise TlsarotateError(
            "completion needs shtab: pip install 'tlsarotate[completion]'"
        ) from None
    kinds = {"file": shtab.FILE, "directory": shtab.DIRECTORY}
    for p in (parser, *(sub for _, _, sub in subcommands(parser))):
        for action in options(p):
            kind = _PATHS.get(str(action.metavar or ""))
            if kind is not None:
                action.complete = kinds[kind]  # type: ignore[attr-defined]
    return str(shtab.complete(parser, shell=shell))
