"""probe's edge cases: each ends in one clear line, never a traceback (zone-file TLSA input, an
unwritable --save-chain, a dead nameserver, bad numbers)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.servers import BindServers, bind, bind_servers, free_port  # noqa: F401
from tests.support.tls_servers import SmtpdServer, make_chain
from tlsarotate import certfiles, pki, records


def _serve(tmp_path: Path) -> tuple[SmtpdServer, str]:
    chain = make_chain(tmp_path, "srv", pki.make_ca())
    srv = SmtpdServer("127.0.0.1", chain).start()
    rd = records.build(certfiles.load(chain.fullchain), records.parse_params("3 1 1"))
    return srv, records.to_text(rd)


def test_probe_ip_host_takes_every_zone_file_line(tmp_path: Path) -> None:
    srv, rec = _serve(tmp_path)
    try:
        f = tmp_path / "tlsa.zone"
        f.write_text(f"_25._tcp.mx.example.test. 300 IN TLSA {rec}\n")
        proc = run_cli(
            "probe",
            "127.0.0.1",
            "--port",
            srv.port,
            "--starttls",
            "smtp",
            "--tlsa-from",
            f,
            "--timeout",
            "5",
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "matches the leaf" in proc.stdout
    finally:
        srv.stop()


def test_probe_save_chain_unwritable_is_one_line(tmp_path: Path) -> None:
    srv, rec = _serve(tmp_path)
    try:
        f = tmp_path / "tlsa.txt"
        f.write_text(rec + "\n")
        proc = run_cli(
            "probe",
            "127.0.0.1",
            "--port",
            srv.port,
            "--starttls",
            "smtp",
            "--tlsa-from",
            f,
            "--save-chain",
            "/proc",
            "--timeout",
            "5",
        )
        assert_one_line_error(proc, "--save-chain /proc", "cannot write")
    finally:
        srv.stop()


def test_probe_with_dead_nameserver_names_it_and_does_not_fall_back(tmp_path: Path) -> None:
    port = free_port(("127.0.0.1",))  # nothing listens there
    proc = run_cli(
        "probe",
        "mx.example.test",
        "--port",
        "25",
        "--nameserver",
        f"127.0.0.1:{port}",
        "--timeout",
        "0.5",
        "--output",
        "json",
    )
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    zone_err = [e for e in doc["errors"] if e.startswith("cannot find the zone")]
    assert zone_err and f"127.0.0.1:{port}" in zone_err[0]  # the server asked, no fallback
    assert proc.returncode == 1


def test_bad_numbers_are_one_line() -> None:
    for args, needle in (
        (("probe", "mx.example.test", "--port", "0"), "port 0 out of range"),
        (("probe", "mx.example.test", "--timeout", "nan"), "nan out of range"),
        (("check", "--timeout", "inf"), "inf out of range"),
    ):
        assert_one_line_error(run_cli(*args), needle)
