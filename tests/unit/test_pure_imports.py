"""The pure core imports no I/O, and no tlsarotate module breaks on an import cycle.

Each check runs in a FRESH interpreter (the test process has imported everything already).

What a pure module may not pull in: the modules in ``FORBIDDEN`` (sockets, locks, temp files,
subprocesses, threads, the file helpers, the state stores, the certificate file loaders, the
network clients). dnspython and cryptography themselves import ``socket``, ``selectors``,
``threading`` and ``tempfile`` (and the interpreter's site hooks may import some of these), so
what a fresh ``import dns.name, dns.rdata, dns.rdtypes.ANY.TLSA, cryptography.x509`` loads is
the baseline and not counted; :func:`test_pure_module_source_imports_no_io` still refuses a
pure module that imports one of those itself.
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tlsarotate

ROOT = Path(__file__).resolve().parents[2]

# The pure core: models and rules, no I/O. The one list of them.
PURE_MODULES = (
    "tlsarotate.planner",
    "tlsarotate.phases",
    "tlsarotate.ownership",
    "tlsarotate.dane",
    "tlsarotate.verdict",
    "tlsarotate.certinfo",
    "tlsarotate.keytypes",
    "tlsarotate.retry",
    "tlsarotate.served",
    "tlsarotate.tlsaanswer",
    "tlsarotate.probe_judge",
    "tlsarotate.config.model",
    "tlsarotate.safety",
    "tlsarotate.plan_render",
    "tlsarotate.state",
    "tlsarotate.material",
    "tlsarotate.records",
    "tlsarotate.change",
    "tlsarotate.observation",
    "tlsarotate.clock",
    "tlsarotate.errors",
    "tlsarotate.timefmt",
    "tlsarotate.adopt",
    "tlsarotate.adopt_render",
    "tlsarotate.tlsrpt.model",
    "tlsarotate.tlsrpt.validate",
    "tlsarotate.tlsrpt.correlate",
    "tlsarotate.tlsrpt.summary",
    "tlsarotate.tlsrpt.render",
    "tlsarotate.tlsrpt.record",
    "tlsarotate.bootstrap",
    "tlsarotate.cname",
    "tlsarotate.caset",
    "tlsarotate.fqdn",
)

FORBIDDEN = (
    "socket",
    "fcntl",
    "tempfile",
    "subprocess",
    "ssl",
    "threading",
    "selectors",
    "tlsarotate.fsutil",
    "tlsarotate.stores",
    "tlsarotate.certfiles",
    "boto3",
    "requests",
)

BASELINE = "import dns.name, dns.rdata, dns.rdtypes.ANY.TLSA, cryptography.x509"


def _fresh(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter that imports tlsarotate from this checkout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def _modules_after(statement: str) -> set[str]:
    proc = _fresh(f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def _forbidden(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


@pytest.fixture(scope="module")
def baseline() -> set[str]:
    return _modules_after(BASELINE)


def test_the_baseline_is_what_the_libraries_bring(baseline: set[str]) -> None:
    """Neither library pulls in a tlsarotate I/O module, a lock or a subprocess: those stay
    detectable (were one in the baseline, the check below would miss it)."""
    assert not any(m.startswith("tlsarotate") for m in baseline)
    assert {"fcntl", "subprocess", "ssl", "boto3", "requests"}.isdisjoint(baseline)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io(module: str, baseline: set[str]) -> None:
    loaded = _modules_after(f"import {module}")
    assert module in loaded
    assert _forbidden(loaded - baseline) == [], f"{module} pulls in I/O"


def _imports(tree: ast.AST) -> list[str]:
    """Every module a source imports, anywhere in it, except under ``if TYPE_CHECKING:``."""
    out: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_source_imports_no_io(module: str) -> None:
    """Also what the baseline hides: no pure module imports ``socket`` (or another forbidden
    module) itself, not even inside a function."""
    path = ROOT / (module.replace(".", "/") + ".py")
    found = _forbidden(set(_imports(ast.parse(path.read_text(), str(path)))))
    assert found == [], f"{module} imports {found}"


# ``python -m tlsarotate`` runs the CLI when imported: it is the one module not imported here.
NOT_IMPORTABLE = {"tlsarotate.__main__"}

IMPORT_EACH = r"""
import os, sys, traceback
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:  # a child starts from this bare interpreter: ``name`` is imported first
        try:
            __import__(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print("FAILED", *failed)
"""


def _all_modules() -> list[str]:
    found = pkgutil.walk_packages(tlsarotate.__path__, "tlsarotate.")
    return sorted({m.name for m in found} - NOT_IMPORTABLE)


def test_the_module_list_is_complete() -> None:
    names = _all_modules()
    assert set(PURE_MODULES) <= set(names)
    assert {"tlsarotate.stores.file", "tlsarotate.certfiles", "tlsarotate.engine"} <= set(names)


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """An import cycle breaks only when one of its modules is imported first: import each
    module first, in its own child of a fresh interpreter."""
    proc = _fresh(IMPORT_EACH, *_all_modules())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "FAILED", proc.stderr
