"""The ACME-client hooks, systemd units, cron line and CI examples in hooks/.

Each hook runs as a real subprocess with exactly the environment and arguments its ACME client
provides; a fake ``tlsarotate`` records its argv/env and exits with a chosen code.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.support.fakes import FakeTlsarotate as Fake

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake.install(tmp_path / "bin", tmp_path / "calls.jsonl")


def run(hook: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HOOKS / hook), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_hooks_are_executable_posix_sh() -> None:
    for name in ("certbot-deploy", "dehydrated-hook", "acme.sh-reload"):
        p = HOOKS / name
        assert os.access(p, os.X_OK), name
        assert p.read_text().startswith("#!/bin/sh\n"), name
        r = subprocess.run(["dash", "-n", str(p)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# -- certbot ---------------------------------------------------------------------------------


def certbot_env(fake: Fake, tmp_path: Path, rc: int = 0, **extra: str) -> dict[str, str]:
    lineage = tmp_path / "etc letsencrypt" / "live" / "mx.example.test"
    return fake.env(
        rc,
        RENEWED_LINEAGE=str(lineage),
        RENEWED_DOMAINS="mx.example.test mx2.example.test",
        **extra,
    )


@pytest.mark.parametrize(
    ("rc", "hook_rc", "word"), [(0, 0, "done"), (2, 0, "waiting"), (1, 1, "error")]
)
def test_certbot_deploy_maps_exit_codes(
    fake: Fake, tmp_path: Path, rc: int, hook_rc: int, word: str
) -> None:
    env = certbot_env(fake, tmp_path, rc)
    r = run("certbot-deploy", env)
    assert r.returncode == hook_rc, r.stderr
    (call,) = fake.calls()
    assert call["argv"] == ["apply", "--lineage", env["RENEWED_LINEAGE"], "--lock-timeout", "60"]
    # success (done, waiting) writes nothing on stderr: certbot would log "Hook ran with error
    # output" at WARNING; a failure shows the hook's line and tlsarotate's output there
    shown, quiet = (r.stdout, r.stderr) if hook_rc == 0 else (r.stderr, r.stdout)
    assert quiet == "", quiet
    lines = [ln for ln in shown.splitlines() if ln.startswith("tlsarotate-hook[certbot]")]
    assert len(lines) == 1, shown
    assert f"rc={rc} {word}" in lines[0]
    assert 'domains="mx.example.test mx2.example.test"' in lines[0]
    # tlsarotate's own output (both of its streams) passes through, before the hook's line
    assert "fake tlsarotate says hello" in shown and "fake tlsarotate notes on stderr" in shown
    assert shown.index("fake tlsarotate notes") < shown.index("tlsarotate-hook[certbot]")


def test_certbot_deploy_config_bin_lock_timeout_and_log(fake: Fake, tmp_path: Path) -> None:
    other = tmp_path / "other bin"
    other.mkdir()
    shutil.copy(fake.bindir / "tlsarotate", other / "my-tlsarotate")
    log = tmp_path / "hook.log"
    env = certbot_env(
        fake,
        tmp_path,
        2,
        TLSAROTATE_CONFIG=str(tmp_path / "conf dir" / "config.yaml"),
        TLSAROTATE_BIN=str(other / "my-tlsarotate"),
        TLSAROTATE_LOCK_TIMEOUT="5",
        TLSAROTATE_HOOK_LOG=str(log),
    )
    r = run("certbot-deploy", env)
    assert r.returncode == 0, r.stderr
    (call,) = fake.calls()
    assert call["argv"] == [
        "-c",
        env["TLSAROTATE_CONFIG"],
        "apply",
        "--lineage",
        env["RENEWED_LINEAGE"],
        "--lock-timeout",
        "5",
    ]
    logged = log.read_text().splitlines()
    assert len(logged) == 1 and "rc=2 waiting" in logged[0]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", logged[0])
    r = run("certbot-deploy", env)
    assert len(log.read_text().splitlines()) == 2  # one line per run, appended


def test_certbot_deploy_without_lineage_is_an_error(fake: Fake) -> None:
    r = run("certbot-deploy", fake.env(RENEWED_DOMAINS="x.example.test"))
    assert r.returncode == 1
    assert "RENEWED_LINEAGE is not set" in r.stderr
    assert fake.calls() == []


def test_certbot_deploy_missing_binary(fake: Fake, tmp_path: Path) -> None:
    env = certbot_env(fake, tmp_path, TLSAROTATE_BIN=str(tmp_path / "nope"))
    r = run("certbot-deploy", env)
    assert r.returncode == 1
    assert "cannot run" in r.stderr and "TLSAROTATE_BIN" in r.stderr


# -- dehydrated ------------------------------------------------------------------------------


def test_dehydrated_deploy_cert(fake: Fake, tmp_path: Path) -> None:
    certdir = tmp_path / "dehydrated" / "certs" / "mx.example.test"
    args = [
        "deploy_cert",
        "mx.example.test",
        f"{certdir}/privkey.pem",
        f"{certdir}/cert.pem",
        f"{certdir}/fullchain.pem",
        f"{certdir}/chain.pem",
        "1700000000",
    ]
    r = run("dehydrated-hook", fake.env(2), *args)
    assert r.returncode == 0, r.stderr
    (call,) = fake.calls()
    assert call["argv"] == ["apply", "--lineage", str(certdir), "--lock-timeout", "60"]
    assert r.stderr == ""
    assert "domain=mx.example.test" in r.stdout and "rc=2 waiting" in r.stdout
    r = run("dehydrated-hook", fake.env(1), *args)
    assert r.returncode == 1
    assert "rc=1 error" in r.stderr and "fake tlsarotate says hello" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["deploy_challenge", "mx.example.test", "tok", "val"],
        ["clean_challenge", "mx.example.test", "tok", "val"],
        ["startup_hook"],
        ["exit_hook"],
        ["this_hookscript_is_broken__dehydrated_is_working_fine__please_ignore_unknown_hooks"],
        [],
    ],
)
def test_dehydrated_ignores_other_handlers(fake: Fake, args: list[str]) -> None:
    r = run("dehydrated-hook", fake.env(1), *args)
    assert r.returncode == 0, r.stderr
    assert fake.calls() == []


def test_dehydrated_deploy_cert_missing_args(fake: Fake) -> None:
    r = run("dehydrated-hook", fake.env(), "deploy_cert", "mx.example.test")
    assert r.returncode == 1 and "deploy_cert needs" in r.stderr
    assert fake.calls() == []


# -- acme.sh ---------------------------------------------------------------------------------


def acmesh_env(fake: Fake, tmp_path: Path, rc: int = 0, **extra: str) -> dict[str, str]:
    d = tmp_path / ".acme.sh" / "mx.example.test_ecc"
    return fake.env(
        rc,
        Le_Domain="mx.example.test",
        CERT_PATH=f"{d}/mx.example.test.cer",
        CERT_KEY_PATH=f"{d}/mx.example.test.key",
        CA_CERT_PATH=f"{d}/ca.cer",
        CERT_FULLCHAIN_PATH=f"{d}/fullchain.cer",
        **extra,
    )


def test_acmesh_with_directory_argument(fake: Fake, tmp_path: Path) -> None:
    nxt = str(tmp_path / "next" / "mx.example.test")
    r = run("acme.sh-reload", acmesh_env(fake, tmp_path, 2), nxt)
    assert r.returncode == 0, r.stderr
    (call,) = fake.calls()
    assert call["argv"] == ["apply", "--lineage", nxt, "--lock-timeout", "60"]
    assert r.stderr == ""
    assert "tlsarotate-hook[acme.sh]" in r.stdout and "domain=mx.example.test" in r.stdout


def test_acmesh_with_services(fake: Fake, tmp_path: Path) -> None:
    env = acmesh_env(fake, tmp_path, 0, TLSAROTATE_SERVICES="mx smtp-submission")
    r = run("acme.sh-reload", env)
    assert r.returncode == 0, r.stderr
    assert [c["argv"] for c in fake.calls()] == [
        ["apply", "--service", "mx", "--lock-timeout", "60"],
        ["apply", "--service", "smtp-submission", "--lock-timeout", "60"],
    ]
    assert r.stdout.count("tlsarotate-hook[acme.sh]") == 2 and r.stderr == ""


def test_acmesh_without_selection_applies_all(fake: Fake, tmp_path: Path) -> None:
    env = acmesh_env(fake, tmp_path, 1, TLSAROTATE_CONFIG="/etc/t.yaml")
    r = run("acme.sh-reload", env)
    assert r.returncode == 1
    (call,) = fake.calls()
    assert call["argv"] == ["-c", "/etc/t.yaml", "apply", "--lock-timeout", "60"]
    assert "all services rc=1 error" in r.stderr


# -- systemd, cron, CI -----------------------------------------------------------------------


def _ini(path: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    sec = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sec = line.strip("[]")
            out[sec] = {}
        else:
            k, _, v = line.partition("=")
            out[sec][k] = v
    return out


def _units(tmp_path: Path) -> tuple[Path, Path]:
    """The unit files as installed, with ExecStart= pointing at an executable that exists here."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze not found (apt: systemd)")
    out = []
    for name in ("tlsarotate.service", "tlsarotate.timer"):
        text = (HOOKS / name).read_text()
        (tmp_path / name).write_text(text.replace("/usr/local/bin/tlsarotate", "/bin/true"))
        out.append(tmp_path / name)
    return out[0], out[1]


def test_systemd_units() -> None:
    svc = _ini(HOOKS / "tlsarotate.service")["Service"]
    assert svc["Type"] == "oneshot"
    assert svc["SuccessExitStatus"].split() == ["2"]
    argv = svc["ExecStart"].split()
    assert argv[0].endswith("/tlsarotate") and "apply" in argv and "--wait" not in argv
    timer = _ini(HOOKS / "tlsarotate.timer")["Timer"]
    # Persistent= does something only with OnCalendar= (a monotonic timer cannot be missed)
    assert timer["Persistent"] == "true" and "OnCalendar" in timer
    assert _ini(HOOKS / "tlsarotate.timer")["Install"]["WantedBy"] == "timers.target"


def test_systemd_units_verify(tmp_path: Path) -> None:
    service, timer = _units(tmp_path)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(service), str(timer)], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_systemd_timer_fires_every_five_minutes() -> None:
    spec = _ini(HOOKS / "tlsarotate.timer")["Timer"]["OnCalendar"]
    r = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=3", spec], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    times = re.findall(r"\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d)", r.stdout)
    assert len(times) == 3, r.stdout
    minutes = [int(h) * 60 + int(m) for h, m, s in times]
    assert all(s == "00" for _, _, s in times)
    assert [(b - a) % 1440 for a, b in itertools.pairwise(minutes)] == [5, 5]


MAX_EXPOSURE = 3.0  # systemd-analyze's scale: 0 best, 10 worst; below 4 reads "OK"


def _exposure(unit: Path) -> tuple[float, str]:
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1)), r.stdout


def test_systemd_service_is_hardened(tmp_path: Path) -> None:
    service, _ = _units(tmp_path)
    score, report = _exposure(service)
    assert score <= MAX_EXPOSURE, report
    svc = _ini(service)["Service"]
    assert svc["ProtectSystem"] == "strict" and svc["ProtectHome"] == "yes"
    assert svc["UMask"] == "0077" and svc["NoNewPrivileges"] == "yes"
    assert set(svc["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    caps = set(svc["CapabilityBoundingSet"].split())
    # what a rollover needs as root, and nothing that would let it escape the sandbox
    assert {"CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_KILL"} <= caps
    assert not caps & {"CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_SYS_PTRACE", "CAP_SYS_MODULE"}
    # the sandbox breaks nothing it is meant to keep: @system-service holds chown/fchown
    # (zone files and deployed certificates keep their owner) and kill (reloads)
    calls = _syscalls(svc["SystemCallFilter"])
    assert {"fchown", "chown", "kill", "renameat2", "connect", "execve", "wait4"} <= calls
    assert not calls & {"mount", "init_module", "ptrace", "reboot"}


def _syscalls(group: str) -> set[str]:
    """The system calls a ``@group`` allows, its nested groups expanded (systemd's own table)."""
    r = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    groups: dict[str, list[str]] = {}
    name = ""
    for line in r.stdout.splitlines():
        if line.startswith("@"):
            name = line.split("#")[0].strip()
            groups[name] = []
        elif line.strip() and not line.strip().startswith("#") and name:
            groups[name].append(line.strip())

    def expand(g: str, seen: frozenset[str] = frozenset()) -> set[str]:
        out: set[str] = set()
        for m in groups[g]:
            out |= expand(m, seen | {g}) if m.startswith("@") and m not in seen else {m}
        return out

    return expand(group)


def test_the_hardening_is_what_lowers_the_score(tmp_path: Path) -> None:
    """The same service without its sandbox lines scores as UNSAFE: the test above measures
    the hardening, not a lenient scale."""
    service, _ = _units(tmp_path)
    keep = ("Type=", "ExecStart=", "SuccessExitStatus=", "Environment=", "User=", "[")
    bare = tmp_path / "bare.service"
    bare.write_text(
        "\n".join(ln for ln in service.read_text().splitlines() if ln.startswith(keep)) + "\n"
    )
    score, report = _exposure(bare)
    assert score > 9.0, report


def _cron_command() -> str:
    lines = [
        ln
        for ln in (HOOKS / "tlsarotate.cron").read_text().splitlines()
        if ln.strip() and not ln.startswith("#") and "=" not in ln.split()[0]
    ]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    assert fields[:5] == ["*/5", "*", "*", "*", "*"] and fields[5] == "root"
    return fields[6]


@pytest.mark.parametrize(("rc", "mail"), [(0, False), (2, False), (1, True)])
def test_cron_line_reports_only_errors(fake: Fake, rc: int, mail: bool) -> None:
    cmd = _cron_command()
    r = subprocess.run(["/bin/sh", "-c", cmd], env=fake.env(rc), capture_output=True, text=True)
    (call,) = fake.calls()
    argv = call["argv"]
    assert isinstance(argv, list) and argv[:2] == ["-q", "apply"]
    # cron mails any output; the fake prints a greeting, so only look at the hook's own line
    assert ("apply failed with exit code" in r.stdout) is mail


def test_ci_examples_gate_the_deploy() -> None:
    gh = yaml.safe_load((HOOKS / "ci" / "github-actions.yml").read_text())
    steps = gh["jobs"]["dane-gate"]["steps"]
    gate = [s["run"] for s in steps if "check" in str(s.get("run", ""))]
    assert gate and "check --next" in gate[0] and "--no-live" in gate[0]
    assert gh["jobs"]["deploy"]["needs"] == "dane-gate"
    gl = yaml.safe_load((HOOKS / "ci" / "gitlab-ci.yml").read_text())
    assert any("check --next" in c and "--no-live" in c for c in gl["dane-gate"]["script"])
    assert gl["deploy-cert"]["needs"] == ["dane-gate"]
    assert gl["stages"].index("check") < gl["stages"].index("deploy")


def _pip_installs(commands: list[str]) -> list[str]:
    out = []
    for c in commands:
        words = shlex.split(c)
        if words[:2] == ["pip", "install"]:
            out += [w for w in words[2:] if not w.startswith("-")]
    return out


def test_ci_examples_install_from_the_repository_not_a_registry() -> None:
    """tlsarotate is not on PyPI: a bare ``pip install tlsarotate`` would install nothing (or
    somebody else's package). Each example installs a direct reference to a git repository."""
    gh = yaml.safe_load((HOOKS / "ci" / "github-actions.yml").read_text())
    gh_runs = [s["run"] for s in gh["jobs"]["dane-gate"]["steps"] if "run" in s]
    gl = yaml.safe_load((HOOKS / "ci" / "gitlab-ci.yml").read_text())
    for reqs in (_pip_installs(gh_runs), _pip_installs(gl["dane-gate"]["script"])):
        assert reqs, "no pip install line"
        for r in reqs:
            req = Requirement(r)
            assert req.name == "tlsarotate" and req.url and req.url.startswith("git+"), r
