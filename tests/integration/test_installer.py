"""``tlsarotate install-hooks`` (tlsarotate/installer.py): the hooks and units land where their
programs look, call the tlsarotate of this install, and the service may write exactly what the
rollover writes. Checked the way a user meets it: systemd-analyze on the installed units, the
installed certbot hook run with nothing but certbot's environment, a wheel installed into a
fresh venv."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fakes import FakeTlsarotate as Fake
from tlsarotate import installer, pki
from tlsarotate.installer import InstallError

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    """A config whose rollover writes three directories of its own: the deployed pair's, the
    zone file's and the state directory."""
    ca = pki.make_ca()
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    tls = tmp_path / "etc" / "postfix" / "tls"
    tls.mkdir(parents=True)
    (tls / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, ca))
    (tls / "privkey.pem").write_bytes(leaf.key_pem)
    (tls / "privkey.pem").chmod(0o600)
    zones = tmp_path / "var" / "lib" / "bind"
    zones.mkdir(parents=True)
    (zones / "example.test.zone").write_text(
        "$ORIGIN example.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\n"
        "ns A 192.0.2.53\n"
    )
    cfg = tmp_path / "etc" / "tlsarotate" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        f"""state_dir: {tmp_path / "var" / "lib" / "tlsarotate"}
providers:
  zone:
    type: zonefile
    path: {zones / "example.test.zone"}
services:
  - name: mx
    zone: example.test
    provider: zone
    hosts: [mx.example.test]
    ports: [25]
    certificates:
      - name: main
        deployed:
          cert: {tls / "fullchain.pem"}
          key: {tls / "privkey.pem"}
"""
    )
    return cfg


def _install(dest: Path, exe: Path, cfg: Path, *groups: str, **kw: bool) -> dict[str, str]:
    outs = installer.install(
        dest,
        groups or installer.GROUPS,
        exe=exe,
        config_path=cfg,
        rw_paths=installer.written_paths(cfg),
        **kw,
    )
    return {str(o.path.relative_to(dest)): o.action for o in outs}


def test_installs_every_file_with_this_install_paths(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    fake = Fake.install(tmp_path / "venv" / "bin", tmp_path / "calls.jsonl")
    exe = fake.bindir / "tlsarotate"
    dest = tmp_path / "root"
    done = _install(dest, exe, cfg)
    assert set(done.values()) == {"written"}
    assert set(done) == {t.path for t in installer.TARGETS}
    for t in installer.TARGETS:
        st = (dest / t.path).stat()
        assert st.st_mode & 0o777 == t.mode, t.path
        assert installer.MARK in (dest / t.path).read_text()

    svc = (dest / "etc/systemd/system/tlsarotate.service").read_text()
    assert f"ExecStart={exe} apply" in svc and "/usr/local/bin/tlsarotate" not in svc
    assert f"TLSAROTATE_CONFIG={cfg}" in svc
    rw = " ".join(ln.partition("=")[2] for ln in svc.splitlines() if ln.startswith("ReadWrite"))
    for d in (tmp_path / "etc/postfix/tls", tmp_path / "var/lib/bind", cfg.parent):
        assert f"-{d}" in rw.split(), rw
    assert f"-{tmp_path / 'var/lib/tlsarotate'}" in rw.split()
    assert "/etc/postfix/tls -/etc/ssl" not in rw  # the template's examples are gone
    cron = (dest / "etc/cron.d/tlsarotate").read_text()
    assert f"root {exe} -q apply" in cron

    # systemd accepts the installed units as they are
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze not found (apt: systemd)")
    units = dest / "etc/systemd/system"
    r = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            str(units / "tlsarotate.service"),
            str(units / "tlsarotate.timer"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_installed_certbot_hook_calls_this_install_with_only_certbots_environment(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path)
    fake = Fake.install(tmp_path / "venv" / "bin", tmp_path / "calls.jsonl")
    dest = tmp_path / "root"
    _install(dest, fake.bindir / "tlsarotate", cfg, "certbot")
    hook = dest / "etc/letsencrypt/renewal-hooks/deploy/tlsarotate"
    lineage = tmp_path / "live" / "mx.example.test"
    # certbot's environment: no TLSAROTATE_BIN, and a PATH without the venv
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "RENEWED_LINEAGE": str(lineage),
        "RENEWED_DOMAINS": "mx.example.test",
        **fake.variables(2),
    }
    r = subprocess.run([str(hook)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    (call,) = fake.calls()
    # the config given at install time, though certbot's environment names none
    assert call["argv"] == [
        "-c",
        str(cfg),
        "apply",
        "--lineage",
        str(lineage),
        "--lock-timeout",
        "60",
    ]


def test_a_file_not_written_by_the_installer_is_kept_unless_forced(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    exe = Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl").bindir / "tlsarotate"
    dest = tmp_path / "root"
    mine = dest / "etc/systemd/system/tlsarotate.service"
    mine.parent.mkdir(parents=True)
    mine.write_text("[Service]\nExecStart=/opt/my/own\n")
    with pytest.raises(InstallError) as e:
        _install(dest, exe, cfg, "systemd", "cron")
    msg = str(e.value)
    assert "\n" not in msg and str(mine) in msg and "--force" in msg
    # all or nothing: the timer and the cron file were not written either
    assert mine.read_text() == "[Service]\nExecStart=/opt/my/own\n"
    assert not (dest / "etc/systemd/system/tlsarotate.timer").exists()
    assert not (dest / "etc/cron.d/tlsarotate").exists()

    with pytest.raises(InstallError):  # a dry run says so too
        _install(dest, exe, cfg, "systemd", "cron", dry_run=True)
    done = _install(dest, exe, cfg, "systemd", "cron", force=True)
    assert set(done.values()) == {"written"}
    assert f"ExecStart={exe}" in mine.read_text()
    # a second run finds everything in place; an installed file is its own to replace
    assert set(_install(dest, exe, cfg, "systemd", "cron").values()) == {"unchanged"}
    other = tmp_path / "other-bin" / "tlsarotate"
    other.parent.mkdir()
    shutil.copy(exe, other)
    assert _install(dest, other, cfg, "systemd")["etc/systemd/system/tlsarotate.service"] == (
        "written"
    )


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    exe = Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl").bindir / "tlsarotate"
    dest = tmp_path / "root"
    done = _install(dest, exe, cfg, dry_run=True)
    assert set(done.values()) == {"would write"}
    assert not dest.exists()


def test_a_config_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("services: [\n")
    exe = Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl").bindir / "tlsarotate"
    with pytest.raises(InstallError):
        installer.cmd_install(
            _ns(groups=["systemd"], dest=str(tmp_path / "root"), executable=str(exe), config=bad)
        )
    assert not (tmp_path / "root").exists()


def _ns(**kw: object) -> argparse.Namespace:
    base = {"groups": None, "dest": "/", "executable": None, "force": False, "dry_run": False}
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_carries_the_hooks_and_finds_its_executable(
    tmp_path: Path,
) -> None:
    """pip-in-venv (pipx is the same layout): the wheel ships the hooks as data files under the
    venv's share/, and the installer fills in the venv's bin/tlsarotate."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    probe = (
        "from tlsarotate import installer\n"
        "print(installer.__file__)\nprint(installer.templates_dir())\nprint(installer.executable())\n"
    )
    r = subprocess.run(
        [str(py), "-c", probe],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    module, templates, exe = r.stdout.split()
    assert Path(module).is_relative_to(venv)  # the wheel's copy, not this checkout
    assert Path(templates) == venv / "share" / "tlsarotate" / "hooks"
    assert Path(exe) == venv / "bin" / "tlsarotate"
    for name in ("certbot-deploy", "tlsarotate.service", "tlsarotate.timer", "tlsarotate.cron"):
        assert (Path(templates) / name).is_file(), name


def test_the_cli_installs_and_refuses_in_one_line(tmp_path: Path) -> None:
    from tests.support.helpers import assert_one_line_error, run_cli

    cfg = _config(tmp_path)
    exe = Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl").bindir / "tlsarotate"
    dest = tmp_path / "root"
    r = run_cli("-c", cfg, "install-hooks", "--systemd", "--dest", dest, "--executable", exe)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"written: {dest / 'etc/systemd/system/tlsarotate.service'}",
        f"written: {dest / 'etc/systemd/system/tlsarotate.timer'}",
    ]
    assert f"ExecStart={exe} apply" in (dest / "etc/systemd/system/tlsarotate.service").read_text()
    r = run_cli("-c", cfg, "install-hooks", "--systemd", "--dest", dest, "--executable", exe)
    assert r.stdout.count("unchanged: ") == 2
    # nothing chosen, a config that does not load: one line each, nothing written
    assert_one_line_error(run_cli("install-hooks", "--dest", dest), "--certbot")
    other = tmp_path / "elsewhere"
    bad = run_cli("-c", tmp_path / "missing.yaml", "install-hooks", "--systemd", "--dest", other)
    assert_one_line_error(bad, "missing.yaml", "ReadWritePaths")
    assert not other.exists()


@pytest.mark.parametrize("bad", ['x"$(touch PWNED)".yaml', "c f.yaml", "a`id`.yaml"])
def test_a_config_path_a_shell_would_run_is_refused(tmp_path: Path, bad: str) -> None:
    exe = Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl").bindir / "tlsarotate"
    with pytest.raises(InstallError, match="cannot go in a hook"):
        installer.install(tmp_path / "root", ["certbot"], exe=exe, config_path=tmp_path / bad)
    assert not (tmp_path / "root").exists()


def test_a_dest_that_is_a_file_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    from tests.support.helpers import assert_one_line_error, run_cli

    cfg = _config(tmp_path)
    exe = Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl").bindir / "tlsarotate"
    dest = tmp_path / "a-file"
    dest.write_text("keep me\n")
    r = run_cli("-c", cfg, "install-hooks", "--systemd", "--dest", dest, "--executable", exe)
    assert_one_line_error(r, f"{dest} is not a directory")
    assert dest.read_text() == "keep me\n"
