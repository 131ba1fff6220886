"""Install tests/support/plugin_example (a third-party provider) into a temporary directory.

``pip install --no-deps --no-build-isolation --target DIR tests/support/plugin_example`` would do,
but
pip needs the ``wheel`` package to build it offline, which a minimal machine lacks. For a
pure-Python project that is the same as copying the package and writing its ``.dist-info`` with
``METADATA`` and ``entry_points.txt`` (the file ``importlib.metadata`` reads), which is what
:func:`install_plugin` does, from the project's own ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN_SRC = Path(__file__).resolve().parent / "plugin_example"
PLUGIN_MODULE = "tlsarotate_example"


def _pyproject(path: Path) -> tuple[str, str, dict[str, str]]:
    """(name, version, entry points of group tlsarotate.providers)."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # Python 3.10: the few keys we need, by hand
        name = re.search(r'(?m)^name\s*=\s*"([^"]+)"', text)
        version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', text)
        section = text.split('[project.entry-points."tlsarotate.providers"]', 1)[1]
        section = section.split("\n[", 1)[0]
        eps = dict(re.findall(r'(?m)^([\w.-]+)\s*=\s*"([^"]+)"', section))
        assert name and version
        return name.group(1), version.group(1), eps
    data = tomllib.loads(text)["project"]
    return data["name"], data["version"], dict(data["entry-points"]["tlsarotate.providers"])


def install_plugin(src: Path, target: Path) -> Path:
    name, version, eps = _pyproject(src / "pyproject.toml")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        src / PLUGIN_MODULE, target / PLUGIN_MODULE, ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = target / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[tlsarotate.providers]"] + [f"{k} = {v}" for k, v in eps.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist / "top_level.txt").write_text(PLUGIN_MODULE + "\n")
    return target


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(PLUGIN_SRC, tmp_path_factory.mktemp("site") / "site-packages")


@pytest.fixture
def plugin_installed(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example plugin on sys.path for this test only (as if pip-installed)."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    importlib.invalidate_caches()
    try:
        yield plugin_dir
    finally:
        for mod in [m for m in sys.modules if m.split(".")[0] == PLUGIN_MODULE]:
            del sys.modules[mod]
