"""``python -m tests.support.faults.launch ARGS``: ``python -m tlsarotate ARGS`` that says where it
is.

The fault harness runs tlsarotate through this launcher, a real subprocess that the harness kills
with SIGKILL. Before handing over to :func:`tlsarotate.cli.main` it wraps, from the outside (no
product code changes), the few functions that mark the places a kill is most dangerous:

- ``swap.commit`` / ``swap.finish`` / ``swap.put_back`` (the swap and its recovery):
  ``swap-begin`` ... ``swap-end``;
- ``certstore.atomic_write`` and ``certstore.replace_with_symlink`` (each file and link the
  swap writes, ``current`` among them): ``swap-write <file>`` after each rename;
- every provider's ``apply`` (a DNS write): ``provider-begin`` ... ``provider-end``, and its
  ``read``: ``provider-read-begin`` ... ``provider-read-end``;
- the zone-file backend's rename of the zone file: ``zonefile-written``;
- the rfc2136 backend's ``_send`` (one DNS message): ``dns-send <OPCODE>``.

Each marker is one line ``<unix time> <pid> <text>`` appended to the file named by
``TLSAROTATE_FAULT_MARKERS``. After each swap write and each zone-file write the launcher sleeps
``TLSAROTATE_FAULT_PAUSE`` seconds (default 0), so that a kill aimed "between the key and the
certificate" or "after the zone file, before the reload" has a window wider than a syscall:
timing only, the code path is the product's own. The reload commands (shell scripts written by the
harness) append their own markers to the same file.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _marker() -> Callable[[str], None]:
    path = os.environ.get("TLSAROTATE_FAULT_MARKERS")
    if not path:
        return lambda text: None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def mark(text: str) -> None:
        os.write(fd, f"{time.time():.6f} {pid} {text}\n".encode())

    return mark


def install_hooks() -> None:
    mark = _marker()
    pause = float(os.environ.get("TLSAROTATE_FAULT_PAUSE", "0") or 0)

    from tlsarotate import certstore, swap
    from tlsarotate.providers import rfc2136, zonefile

    def around(name: str, fn: F) -> F:
        @functools.wraps(fn)
        def wrapped(*a: Any, **k: Any) -> Any:
            mark(f"{name}-begin")
            try:
                return fn(*a, **k)
            finally:
                mark(f"{name}-end")

        return wrapped  # type: ignore[return-value]

    swap.commit = around("swap", swap.commit)
    swap.finish = around("swap", swap.finish)
    swap.put_back = around("swap", swap.put_back)

    def writer(name: str, fn: F) -> F:
        @functools.wraps(fn)
        def wrapped(path: Any, *a: Any, **k: Any) -> Any:
            r = fn(path, *a, **k)
            mark(f"{name} {os.path.basename(str(path))}")
            if pause:
                time.sleep(pause)
            return r

        return wrapped  # type: ignore[return-value]

    certstore.atomic_write = writer("swap-write", certstore.atomic_write)  # type: ignore[attr-defined]
    certstore.replace_with_symlink = writer(  # type: ignore[attr-defined]
        "swap-write",
        certstore.replace_with_symlink,  # type: ignore[attr-defined]
    )
    zonefile.atomic_write = writer(  # type: ignore[attr-defined]
        "zonefile-written",
        zonefile.atomic_write,  # type: ignore[attr-defined]
    )

    for cls in (rfc2136.RFC2136Provider, zonefile.ZoneFileProvider):
        cls.apply = around("provider", cls.apply)  # type: ignore[method-assign]
        cls.read = around("provider-read", cls.read)  # type: ignore[method-assign]

    send = rfc2136.RFC2136Provider._send

    def _send(self: Any, message: Any) -> Any:
        import dns.opcode

        mark(f"dns-send {dns.opcode.to_text(message.opcode())}")
        return send(self, message)

    rfc2136.RFC2136Provider._send = _send  # type: ignore[method-assign]


def main() -> int:
    install_hooks()
    from tlsarotate.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
