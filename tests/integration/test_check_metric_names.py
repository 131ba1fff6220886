"""The ``check --prometheus`` textfile of a real run (the demo's zone-file setup) follows
Prometheus' naming rules: each name says its unit by its suffix, and no metric holds a Unix
time under a name that does not end in ``_timestamp_seconds``."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.support.helpers import run_cli
from tlsarotate import __version__, demo

NAME = re.compile(r"tlsarotate_[a-z][a-z0-9_]*[a-z0-9]")
SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
# suffix -> what a value under it must look like, and the TYPE it must have
TIMESTAMP = re.compile(r".*_timestamp_seconds")
DURATION = re.compile(r".*(?<!_timestamp)_seconds")
COUNTER = re.compile(r".*_total")
INFO = re.compile(r".*_info")
# unit suffixes Prometheus names (base units only): a name ending in another unit-like word is
# a unit in disguise (milliseconds, days, bytes are spelled out in base units)
FORBIDDEN = re.compile(r".*_(milliseconds|ms|minutes|hours|days|kilobytes|percent|expiry|time)")
A_YEAR_2000 = 946684800


def _textfile(tmp_path: Path) -> str:
    cfg = demo.setup(tmp_path, ttl=2)
    prom = tmp_path / "check.prom"
    proc = run_cli("-c", cfg, "check", "--no-live", "--prometheus", prom)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return prom.read_text()


def test_metric_names_say_their_units(tmp_path: Path) -> None:
    text = _textfile(tmp_path)
    types: dict[str, str] = {}
    samples: list[tuple[str, str, float]] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name} declared twice"
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.fullmatch(line)
            assert m, line
            samples.append((m["name"], m["labels"] or "", float(m["value"])))
    assert samples and {n for n, _, _ in samples} <= set(types)
    now = time.time()
    for name, labels, value in samples:
        assert NAME.fullmatch(name), name
        assert not FORBIDDEN.fullmatch(name), name
        if TIMESTAMP.fullmatch(name):
            assert A_YEAR_2000 < value < now + 100 * 365 * 86400, (name, value)
        elif value > A_YEAR_2000:
            raise AssertionError(
                f"{name} holds a Unix time ({value}) but is not *_timestamp_seconds"
            )
        if DURATION.fullmatch(name):
            assert 0 <= value < A_YEAR_2000, (name, value)
        if COUNTER.fullmatch(name):
            assert types[name] == "counter", name
        else:
            assert types[name] == "gauge", name
        if INFO.fullmatch(name):
            assert value == 1 and labels, name
        if not any(r.fullmatch(name) for r in (TIMESTAMP, DURATION, COUNTER, INFO)):
            # unitless: a yes/no gauge or the status code
            assert value in (0, 1, 2, 3), (name, value)
    names = {n for n, _, _ in samples}
    assert "tlsarotate_cert_expiry_timestamp_seconds" in names
    assert "tlsarotate_check_timestamp_seconds" in names
    assert "tlsarotate_cert_expiry_seconds" not in text  # the old name is gone
    assert f'tlsarotate_build_info{{version="{__version__}"}} 1' in text
