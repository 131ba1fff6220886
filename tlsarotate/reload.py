"""Running a service's reload command after its pair was switched: in its own process group,
bounded by the slot's ``reload_timeout``, its outcome in one line."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO

from tlsarotate.config import CertSlot
from tlsarotate.runner import Runner

OUTPUT_LIMIT = 65536  # bytes of a reload command's output read (only its first line is shown)


def run_bounded(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in its own process group; past ``timeout`` seconds the whole group is
    killed (a ``systemctl reload`` stuck on a hung unit, a script's children) and
    :class:`subprocess.TimeoutExpired` raised.

    Done when the command exits, not when its output ends: a reload that (re)starts the
    server leaves a daemon holding the output it inherited, which must neither hold the
    reload up nor be killed. The output goes to unlinked temp files (its first
    :data:`OUTPUT_LIMIT` bytes are read, as UTF-8 with replacement)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

        def text(f: IO[bytes]) -> str:
            f.seek(0)
            return f.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")

        return subprocess.CompletedProcess(list(argv), proc.returncode, text(out), text(err))


def run_reload(slot: CertSlot, runner: Runner | None) -> str | None:
    """Run the slot's reload command (bounded by ``reload_timeout``); None if it succeeded,
    else one line saying why not. ``runner`` replaces the subprocess (tests)."""
    argv = slot.reload
    if not argv:
        return None
    cmd = repr(" ".join(argv))
    try:
        proc = run_bounded(argv, slot.reload_timeout) if runner is None else runner(argv)
    except subprocess.TimeoutExpired:
        return f"{cmd} timed out after {slot.reload_timeout:g} s and was killed"
    except (OSError, ValueError) as e:
        return f"{cmd} could not run: {getattr(e, 'strerror', None) or e}"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        return f"{cmd} exited {proc.returncode}" + (f": {detail[0]}" if detail else "")
    return None
