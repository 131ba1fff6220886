"""A fake ``tlsarotate`` executable for the hook tests (tests/integration/test_hooks.py, and
certbot's real
deploy hook in tests/integration/test_acme_servers.py): it records each call -- its argv and the
``TLSAROTATE*`` / ``RENEWED_*`` environment -- as one JSON line, prints a line of its own on
stdout and one on stderr (as tlsarotate logs to stderr) and exits with ``$FAKE_RC``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SCRIPT = """#!/bin/sh
# records one JSON line per call: argv and the TLSAROTATE* / RENEWED_* environment
python3 - "$@" <<'PY' >>"$FAKE_RECORD"
import json, os, sys
keep = ("TLSAROTATE", "RENEWED_")
print(json.dumps({"argv": sys.argv[1:],
                  "env": {k: v for k, v in os.environ.items() if k.startswith(keep)}}))
PY
echo "fake tlsarotate says hello"
echo "fake tlsarotate notes on stderr" >&2
exit "${FAKE_RC:-0}"
"""


@dataclass
class FakeTlsarotate:
    bindir: Path  # holds the executable ``tlsarotate``
    record: Path  # one JSON line per call

    @classmethod
    def install(cls, bindir: Path, record: Path) -> FakeTlsarotate:
        bindir.mkdir(parents=True, exist_ok=True)
        exe = bindir / "tlsarotate"
        exe.write_text(SCRIPT)
        exe.chmod(0o755)
        return cls(bindir, record)

    def calls(self) -> list[dict[str, object]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def variables(self, rc: int = 0) -> dict[str, str]:
        """What the fake reads from its environment: where to record, what to exit with."""
        return {"FAKE_RECORD": str(self.record), "FAKE_RC": str(rc)}

    def env(self, rc: int = 0, **extra: str) -> dict[str, str]:
        """A minimal environment: PATH with the fake first, plus what the ACME client sets."""
        return {"PATH": f"{self.bindir}:/usr/bin:/bin", **self.variables(rc), **extra}
