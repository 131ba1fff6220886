"""``tlsarotate install-hooks``: put the ACME-client hooks, the systemd units and the cron line
where their programs look for them, with the paths of *this* install filled in.

The files in the repository's ``hooks/`` name ``/usr/local/bin/tlsarotate``; a pip-in-venv or
pipx install has its executable elsewhere, and the service's ``ReadWritePaths=`` must list the
directories the rollover writes. The installer writes each file with:

- the tlsarotate executable next to the running interpreter (the console script of this
  install: a venv's ``bin/tlsarotate``, pipx's shim target, or ``/usr/local/bin/tlsarotate``);
- the config file given (``-c``), or ``/etc/tlsarotate/config.yaml``;
- for the service, ``ReadWritePaths=`` of the config's state directory, deployed certificate and
  key directories, keep-ahead key directories and zone file directories.

Each file is written atomically (readers see the old or the new one) with the mode its program
needs (hooks 0755, units and the cron file 0644). A file that exists and was not written by the
installer (it has no ``written by tlsarotate install-hooks`` line) is left alone unless
``--force``; one that holds exactly the new content is reported unchanged.

Where the templates come from: the repository's ``hooks/`` beside the package (a checkout or an
editable install), else ``<prefix>/share/tlsarotate/hooks`` (a wheel install: pyproject's
data-files put them there, in the venv or pipx environment of this interpreter).
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tlsarotate.errors import ConfigError, TlsarotateError
from tlsarotate.fsutil import atomic_write

MARK = "written by tlsarotate install-hooks"
# characters a shell hook, a unit or a cron line would read as syntax
UNSAFE = frozenset("\"'$`\\")
TEMPLATE_EXE = "/usr/local/bin/tlsarotate"
TEMPLATE_CONFIG = "/etc/tlsarotate/config.yaml"
DEFAULT_CONFIG = TEMPLATE_CONFIG
# the service's ReadWritePaths= lines in the template, replaced by the config's directories
TEMPLATE_RW = (
    "ReadWritePaths=-/etc/postfix/tls -/etc/ssl/tlsarotate",
    "ReadWritePaths=-/var/lib/bind",
)


@dataclass(frozen=True)
class Target:
    """One file to install: which template, where (relative to the destination root), mode."""

    group: str  # certbot | acme | systemd | cron
    template: str
    path: str
    mode: int


TARGETS = (
    Target("certbot", "certbot-deploy", "etc/letsencrypt/renewal-hooks/deploy/tlsarotate", 0o755),
    Target("certbot", "certbot-deploy", "usr/local/lib/tlsarotate/hooks/certbot-deploy", 0o755),
    Target("acme", "acme.sh-reload", "usr/local/lib/tlsarotate/hooks/acme.sh-reload", 0o755),
    Target("acme", "dehydrated-hook", "usr/local/lib/tlsarotate/hooks/dehydrated-hook", 0o755),
    Target("systemd", "tlsarotate.service", "etc/systemd/system/tlsarotate.service", 0o644),
    Target("systemd", "tlsarotate.timer", "etc/systemd/system/tlsarotate.timer", 0o644),
    Target("cron", "tlsarotate.cron", "etc/cron.d/tlsarotate", 0o644),
)
GROUPS = ("certbot", "acme", "systemd", "cron")


class InstallError(TlsarotateError):
    """A hook or unit could not be installed."""


def templates_dir() -> Path:
    """Where the hook and unit templates are (see the module docstring)."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / "hooks", Path(sys.prefix) / "share" / "tlsarotate" / "hooks"]
    for c in candidates:
        if (c / "certbot-deploy").is_file() and (c / "tlsarotate.service").is_file():
            return c
    raise InstallError(
        "install-hooks: the hook files are not part of this install (looked in "
        + ", ".join(map(str, candidates))
        + "); install tlsarotate from its repository or wheel"
    )


def executable() -> Path:
    """The ``tlsarotate`` console script of the running interpreter's install: in its scripts
    directory (a venv's or pipx's ``bin/``; ``/usr/local/bin`` for pip on Debian's python3),
    else beside the interpreter."""
    looked = []
    for d in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        exe = Path(d) / "tlsarotate"
        looked.append(str(exe))
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe.absolute()
    raise InstallError(
        f"install-hooks: no tlsarotate executable for {sys.executable} (looked for "
        f"{', '.join(looked)}); give --executable"
    )


def written_paths(config_path: Path) -> list[Path]:
    """The directories a rollover of this config writes (for the service's ReadWritePaths=)."""
    from tlsarotate import config as configmod

    cfg = configmod.load(config_path)
    dirs: list[Path] = [config_path.parent, cfg.state_dir]
    for svc in cfg.services:
        for slot in svc.certificates:
            for f in (slot.deployed.cert, slot.deployed.key, slot.deployed.combined):
                if f is not None:
                    dirs.append(Path(f).parent)
            if slot.next_key is not None:
                dirs.append(slot.next_key.path.parent)
    for pc in cfg.providers.values():
        if pc.type == "zonefile" and pc.options.get("path"):
            dirs.append(Path(str(pc.options["path"])).parent)
    out: list[Path] = []
    for d in dirs:
        d = Path(os.path.abspath(d))
        if d not in out:
            out.append(d)
    return out


def _systemd_path(p: Path) -> str:
    text = str(p)
    if any(c.isspace() for c in text) or '"' in text or "\\" in text:
        raise InstallError(f"install-hooks: {text!r}: a path with blanks cannot go in a unit file")
    return "-" + text


def render(
    template: str,
    text: str,
    *,
    exe: Path,
    config_path: Path,
    rw_paths: Sequence[Path] | None,
) -> str:
    """The installed text of one template."""
    exe_s = str(exe)
    for what, value in (("executable", exe_s), ("config", str(config_path))):
        if any(c.isspace() or c in UNSAFE for c in value):
            raise InstallError(
                f"install-hooks: {what} {value!r}: a path with blanks, quotes, $, ` or \\ "
                "cannot go in a hook, unit or cron line"
            )
    if template in ("certbot-deploy", "acme.sh-reload", "dehydrated-hook"):
        text = text.replace(
            'bin="${TLSAROTATE_BIN:-tlsarotate}"', f'bin="${{TLSAROTATE_BIN:-{exe_s}}}"'
        )
        if str(config_path) != DEFAULT_CONFIG:
            text = text.replace(
                "\nset -u\n", f'\nset -u\n: "${{TLSAROTATE_CONFIG:={config_path}}}"\n', 1
            )
    elif template == "tlsarotate.service":
        text = text.replace(f"ExecStart={TEMPLATE_EXE} ", f"ExecStart={exe_s} ")
        text = text.replace(
            f"TLSAROTATE_CONFIG={TEMPLATE_CONFIG}", f"TLSAROTATE_CONFIG={config_path}"
        )
        if rw_paths is not None:
            lines = " ".join(_systemd_path(p) for p in rw_paths)
            text = text.replace(TEMPLATE_RW[0] + "\n" + TEMPLATE_RW[1], f"ReadWritePaths={lines}")
    elif template == "tlsarotate.cron":
        text = text.replace("root tlsarotate ", f"root {exe_s} ")
        text = text.replace(
            f"TLSAROTATE_CONFIG={TEMPLATE_CONFIG}", f"TLSAROTATE_CONFIG={config_path}"
        )
    first, _, rest = text.partition("\n")
    if first.startswith("#!"):
        return f"{first}\n# {MARK}\n{rest}"
    return f"# {MARK}\n{text}"


@dataclass(frozen=True)
class Outcome:
    path: Path
    action: str  # written | unchanged | kept (not ours; --force to replace) | would write


def _parent_is_a_directory(path: Path) -> None:
    """Refuse, before anything is written, a target whose nearest existing ancestor is not a
    directory (``--dest`` naming a file): mkdir would fail half way through the install."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise InstallError(
                    f"install-hooks: {parent} is not a directory; nothing was written"
                )
            return


def install(
    dest: Path,
    groups: Iterable[str],
    *,
    exe: Path,
    config_path: Path,
    force: bool = False,
    dry_run: bool = False,
    rw_paths: Sequence[Path] | None = None,
) -> list[Outcome]:
    """Install the files of ``groups`` under the root ``dest``. Nothing is written when any
    target is not ours (without ``force``): the run either installs everything or nothing."""
    src = templates_dir()
    chosen = [t for t in TARGETS if t.group in set(groups)]
    plan: list[tuple[Target, Path, bytes, str]] = []
    for t in chosen:
        text = (src / t.template).read_text()
        data = render(t.template, text, exe=exe, config_path=config_path, rw_paths=rw_paths)
        new = data.encode()
        path = dest / t.path
        _parent_is_a_directory(path)
        action = "written"
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise InstallError(f"install-hooks: {path} is not a regular file; remove it first")
        if path.exists():
            old = path.read_bytes()
            if old == new:
                action = "unchanged"
            elif MARK.encode() not in old and not force:
                action = "kept"
        plan.append((t, path, new, action))
    kept = [str(p) for _, p, _, a in plan if a == "kept"]
    if kept:
        raise InstallError(
            f"install-hooks: {', '.join(kept)} exist(s) and were not written by install-hooks; "
            "nothing was written (--force replaces them)"
        )
    out: list[Outcome] = []
    for t, path, content, action in plan:
        if action == "written":
            if dry_run:
                action = "would write"
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, content, mode=t.mode)
        out.append(Outcome(path, action))
    return out


def cmd_install(args: argparse.Namespace) -> int:
    groups = args.groups or []
    if not groups:
        raise InstallError(
            "install-hooks: say what to install: --certbot, --acme, --systemd and/or --cron"
        )
    exe = Path(args.executable).absolute() if args.executable else executable()
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        raise InstallError(f"install-hooks: --executable {exe} is not an executable file")
    cfg_arg = getattr(args, "config", None) or os.environ.get("TLSAROTATE_CONFIG") or DEFAULT_CONFIG
    config_path = Path(os.path.abspath(cfg_arg))
    rw: list[Path] | None = None
    if "systemd" in groups:
        try:
            rw = written_paths(config_path)
        except ConfigError as e:
            raise InstallError(
                f"install-hooks: ReadWritePaths= comes from the config: {e}"
            ) from None
    for o in install(
        Path(args.dest),
        groups,
        exe=exe,
        config_path=config_path,
        force=args.force,
        dry_run=args.dry_run,
        rw_paths=rw,
    ):
        print(f"{o.action}: {o.path}")
    return 0
