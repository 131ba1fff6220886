"""How tlsarotate runs an outside command (a zone reload, a service reload): the
:data:`Runner` type the engine, the swap and the zone-file provider take, and
:func:`run_command`, the default one (no shell, output captured, bounded to 300 s). Tests hand
in another runner to intercept every command."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=300)
