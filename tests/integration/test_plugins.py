"""The third-party provider path: an installed distribution's ``tlsarotate.providers`` entry
point is found by type name; unknown and broken plugins are one-line config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dns.name
import pytest

from tests.support import plugins
from tests.support.helpers import cli_env
from tlsarotate import providers, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.errors import ConfigError

plugin_dir = plugins.plugin_dir
plugin_installed = plugins.plugin_installed


def test_plugin_is_not_there_before_install() -> None:
    assert "example" not in providers.available()
    with pytest.raises(ConfigError):
        providers.get_class("example")


def test_get_class_loads_the_plugin(plugin_installed: Path, tmp_path: Path) -> None:
    cls = providers.get_class("example")
    assert cls.__name__ == "JsonFileProvider" and cls.__module__ == "tlsarotate_example"
    assert Path(sys.modules[cls.__module__].__file__ or "").is_relative_to(plugin_installed)
    assert "example" in providers.available() and "route53" in providers.available()
    # and it works as a provider
    store = tmp_path / "zones.json"
    store.write_text(json.dumps({"zones": {"example.test.": {}}}))
    prov = cls("ex", {"path": str(store)}, providers.ProviderContext(base_dir=tmp_path))
    zone, owner = dns.name.from_text("example.test."), records.owner_name("mx.example.test", 25)
    new = TlsaRRset.of(300, [records.from_text("3 1 1 " + "ab" * 32)])
    prov.apply(ZoneChange(zone, (OwnerChange(owner, None, new),)))
    assert prov.read(zone, [owner]) == {owner: new}


def test_unknown_type_lists_the_available_ones(plugin_installed: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        providers.get_class("nosuch")
    msg = str(ei.value)
    assert "\n" not in msg
    assert "unknown provider type 'nosuch'" in msg
    for name in ("example", "example-broken", "route53", "cloudflare"):
        assert name in msg


def test_broken_plugin_is_one_line(plugin_installed: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        providers.get_class("example-broken")
    msg = str(ei.value)
    assert "\n" not in msg and "Traceback" not in msg
    assert "'example-broken'" in msg and "frobnicate" in msg


def test_plugin_in_a_fresh_interpreter(plugin_dir: Path) -> None:
    """The same through a real second process with the plugin directory on PYTHONPATH."""
    env = cli_env()
    env["PYTHONPATH"] = f"{plugin_dir}:{env['PYTHONPATH']}"
    code = (
        "from tlsarotate.providers import get_class, available\n"
        "print(get_class('example').type_name, 'example' in available())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["example", "True"]


def test_no_bare_providers_package_in_a_checkout() -> None:
    """The backends are only ``tlsarotate.providers``: from the repository root (on sys.path, as
    pytest and a checkout have it), a bare ``import providers`` finds nothing, so no second
    ``Provider`` class can come into being."""
    from tests.support.helpers import ROOT

    code = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "print(importlib.util.find_spec('providers'))\n"
        "import tlsarotate.providers.base as b\n"
        "print(b.__file__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    spec, base = proc.stdout.splitlines()
    assert spec == "None"
    assert base == str(ROOT / "tlsarotate" / "providers" / "base.py")
