"""The zone-file backend on a real BIND reading the file (issue #15): a symlinked zone path is
written through to the file BIND serves, and a run killed after writing the file but before
``rndc reload`` is finished by the next run (the reload journal), on ``rndc`` and ``named``.

The other zone-file unit tests live in tests/integration/test_review_providers.py for now."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tests.support.servers import free_port, need_binary, query, stop_process, wait_until
from tlsarotate import certfiles, pki, records
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.errors import ProviderError
from tlsarotate.providers.base import ProviderContext
from tlsarotate.providers.zonefile import ZoneFileProvider

ZONE = "example.test."
HOST = "mx.example.test."
OWNER = records.owner_name(HOST, 25)

ZONE_TEXT = """$ORIGIN example.test.
$TTL 300
@       IN SOA ns1 hostmaster 2026010100 3600 600 86400 1
        IN NS  ns1
ns1     IN A   127.0.0.1
mx      IN A   127.0.0.1
"""


class Named:
    """One named serving example.test. from a plain file (no dynamic updates), with an rndc
    control channel: the file is what it serves after ``rndc reload``."""

    def __init__(self, d: Path, zone_file: Path) -> None:
        self.dir, self.zone_file = d, zone_file
        self.port = free_port(udp=True)
        self.rndc_port = free_port()
        self.rndc_key = d / "rndc.key"
        subprocess.run(
            [need_binary("rndc-confgen"), "-a", "-k", "rndc-key", "-c", str(self.rndc_key)],
            check=True,
            capture_output=True,
        )
        conf = d / "named.conf"
        conf.write_text(
            f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
include "{self.rndc_key}";
controls {{ inet 127.0.0.1 port {self.rndc_port} allow {{ 127.0.0.1; }} keys {{ "rndc-key"; }}; }};
zone "{ZONE}" {{ type primary; file "{zone_file}"; }};
"""
        )
        self.log = d / "named.log"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [need_binary("named"), "-g", "-c", str(conf)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_until(lambda: self.serial() is not None, 15, "named to serve example.test.")

    @property
    def reload(self) -> list[str]:
        return [
            need_binary("rndc"),
            "-k",
            str(self.rndc_key),
            "-s",
            "127.0.0.1",
            "-p",
            str(self.rndc_port),
            "reload",
            ZONE,
        ]

    def serial(self) -> int | None:
        assert self.proc.poll() is None, self.log.read_text()[-2000:]
        try:
            r = query("127.0.0.1", self.port, ZONE, "SOA", dnssec=False, timeout=0.5)
        except Exception:
            return None
        return next((int(rr[0].serial) for rr in r.answer if rr.rdtype == dns.rdatatype.SOA), None)

    def tlsa(self) -> set[str]:
        r = query("127.0.0.1", self.port, OWNER, "TLSA", dnssec=False, timeout=2)
        rrs = [rr for rr in r.answer if rr.rdtype == dns.rdatatype.TLSA]
        return {records.to_text(rd) for rr in rrs for rd in rr}

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[tuple[Path, Path, Named]]:
    """BIND serves ``zones/db.example.test``; tlsarotate's config names ``link.zone``, a
    symbolic link to it (the path BIND names lives elsewhere). Returns (link, target, named)."""
    zones = tmp_path / "zones"
    zones.mkdir()
    target = zones / "db.example.test"
    target.write_text(ZONE_TEXT)
    target.chmod(0o644)
    link = tmp_path / "link.zone"
    link.symlink_to(target)
    named = Named(tmp_path, target)
    try:
        yield link, target, named
    finally:
        named.stop()


def _rrset(*tags: int) -> TlsaRRset:
    return TlsaRRset.of(1, [records.from_text(f"3 1 1 {t:064x}") for t in tags])


def test_symlinked_zone_file_is_written_through_and_bind_serves_it(
    layout: tuple[Path, Path, Named],
) -> None:
    """Before: the link was replaced by a regular file; BIND kept serving its target and the
    next `apply --wait` waited for ever."""
    link, target, named = layout
    os.chown(target, 65534, 65534)
    prov = ZoneFileProvider("zf", {"path": str(link), "reload": named.reload}, ProviderContext())
    zone = dns.name.from_text(ZONE)
    prov.apply(ZoneChange(zone, (OwnerChange(OWNER, None, _rrset(1, 2)),)))
    assert link.is_symlink() and Path(os.readlink(link)) == target
    st = target.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o644)
    want = {records.to_text(rd) for rd in _rrset(1, 2).records}
    wait_until(lambda: named.tlsa() == want, 10, "BIND to serve the records written")  # rndc queues
    assert prov.read(zone, [OWNER]) == {OWNER: _rrset(1, 2)}
    leftovers = sorted(p.name for p in target.parent.iterdir())
    assert leftovers == [".db.example.test.tlsarotate.lock", "db.example.test"]


def _service_layout(d: Path, named: Named, zone_path: Path, reload: list[str]) -> Path:
    """A deployed certificate (its records in the zone file), a next lineage, and a config
    that observes the real BIND; returns the config path."""
    ca = pki.make_ca("zonefile test CA")
    old, new = pki.make_leaf(ca, [HOST.rstrip(".")]), pki.make_leaf(ca, [HOST.rstrip(".")])
    (d / "deployed").mkdir()
    (d / "deployed/fullchain.pem").write_bytes(pki.fullchain_pem(old, ca))
    (d / "deployed/privkey.pem").write_bytes(old.key_pem)
    (d / "live/mx").mkdir(parents=True)
    (d / "live/mx/fullchain.pem").write_bytes(pki.fullchain_pem(new, ca))
    (d / "live/mx/privkey.pem").write_bytes(new.key_pem)
    dep = certfiles.load_pair(d / "deployed/fullchain.pem", d / "deployed/privkey.pem")
    line = records.zone_line(OWNER, 1, records.build(dep, records.parse_params("3 1 1")))
    zone_path.write_text(ZONE_TEXT + line + "\n")
    subprocess.run(named.reload, check=True, capture_output=True)
    wait_until(lambda: len(named.tlsa()) == 1, 10, "BIND to serve the deployed record")
    cfg = d / "config.yaml"
    write_config(cfg, zone_path, reload, named.port)
    return cfg


def write_config(cfg: Path, zone_path: Path, reload: list[str], port: int) -> None:
    argv = ", ".join(f'"{a}"' for a in reload)
    cfg.write_text(
        f"""state_dir: state
safety_margin: 0
providers:
  local:
    type: zonefile
    path: {zone_path}
    reload: [{argv}]
services:
  - name: mail
    zone: {ZONE}
    provider: local
    hosts: [{HOST}]
    ports: [25]
    ttl: 1
    records: ["3 1 1"]
    allow_unsigned: true
    nameservers: ["127.0.0.1:{port}"]
    certificate:
      deployed: {{cert: deployed/fullchain.pem, key: deployed/privkey.pem}}
      next: {{lineage: live/mx}}
      reload: ["true"]
"""
    )


def test_killed_between_write_and_reload_the_next_run_reloads_and_finishes(
    tmp_path: Path, layout: tuple[Path, Path, Named]
) -> None:
    """14 of 100 zonefile trials: killed after the file was written, before `reload` ran;
    every later run found the records in the file, wrote nothing, never reloaded and waited
    for ever. Now the journal the killed run left makes the next run reload first."""
    _, target, named = layout
    # the "reload" kills tlsarotate itself: the file is written, the reload never runs
    cfg = _service_layout(tmp_path, named, target, ["sh", "-c", "kill -9 $PPID"])
    killed = run_cli("-c", cfg, "apply", timeout=60)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert target.read_text().count(" IN TLSA ") == 2  # written ...
    assert len(named.tlsa()) == 1  # ... and never loaded
    write_config(cfg, target, named.reload, named.port)  # the operator's own, working reload
    try:
        done = run_cli("-c", cfg, "apply", "--wait", timeout=45)
    except subprocess.TimeoutExpired:
        pytest.fail("apply --wait after the kill waits for ever (the file was never reloaded)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "never ran" in done.stdout  # it said what it finished
    nxt = certfiles.load_lineage(tmp_path / "live/mx")
    want = {records.to_text(records.build(nxt, records.parse_params("3 1 1")))}
    wait_until(lambda: named.tlsa() == want, 10, "BIND to serve the next certificate's record")
    assert not (target.parent / ".db.example.test.tlsarotate.reload").exists()
    again = run_cli("-c", cfg, "apply", timeout=60)
    assert again.returncode == 0 and "never ran" not in again.stdout


def test_failing_recovery_reload_is_one_line_every_run_until_fixed(
    tmp_path: Path, layout: tuple[Path, Path, Named]
) -> None:
    _, target, named = layout
    cfg = _service_layout(tmp_path, named, target, ["sh", "-c", "kill -9 $PPID"])
    assert run_cli("-c", cfg, "apply", timeout=60).returncode == -9
    write_config(cfg, target, ["false"], named.port)
    for _ in range(2):
        proc = run_cli("-c", cfg, "apply", timeout=60)
        assert_one_line_error(proc, "never reloaded", "'false'", "re-run")
    write_config(cfg, target, named.reload, named.port)
    done = run_cli("-c", cfg, "apply", "--wait", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_journal_and_lock_links_are_never_followed(tmp_path: Path) -> None:
    zone_path = tmp_path / "db.example.test"
    zone_path.write_text(ZONE_TEXT)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    lock = tmp_path / ".db.example.test.tlsarotate.lock"
    lock.symlink_to(victim)
    prov = ZoneFileProvider("zf", {"path": str(zone_path), "reload": ["true"]}, ProviderContext())
    change = ZoneChange(dns.name.from_text(ZONE), (OwnerChange(OWNER, None, _rrset(1)),))
    with pytest.raises(ProviderError, match="symbolic link"):
        prov.apply(change)
    lock.unlink()
    journal = tmp_path / ".db.example.test.tlsarotate.reload"
    journal.symlink_to(victim)
    with pytest.raises(ProviderError, match=r"journal .* is a symbolic link"):
        prov.apply(change)
    assert victim.read_text() == "keep" and zone_path.read_text() == ZONE_TEXT


def test_zone_file_that_is_a_fifo_is_one_line(tmp_path: Path) -> None:
    zone_path = tmp_path / "db.example.test"
    os.mkfifo(zone_path)
    prov = ZoneFileProvider("zf", {"path": str(zone_path)}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        prov.read(dns.name.from_text(ZONE), [OWNER])
    assert str(ei.value) == (
        f"provider 'zf' (zonefile): {zone_path}: is a FIFO (named pipe), expected a zone file"
    )


def test_txt_record_written_is_served_by_bind_and_a_failing_reload_restores(
    layout: tuple[Path, Path, Named],
) -> None:
    """A service's TLSRPT record through the zone file: BIND serves it after ``rndc reload``;
    when the reload fails, the previous file is put back (one line, nothing half-applied)."""
    from tlsarotate.change import TxtRRset

    link, target, named = layout
    zone, name = dns.name.from_text(ZONE), dns.name.from_text("_smtp._tls.example.test.")
    prov = ZoneFileProvider("zf", {"path": str(link), "reload": named.reload}, ProviderContext())
    rec = TxtRRset.of(300, [(b"v=TLSRPTv1; rua=mailto:tlsrpt@example.test",)])
    prov.apply_txt(zone, name, None, rec)

    def served() -> set[bytes]:
        r = query("127.0.0.1", named.port, name, "TXT", dnssec=False, timeout=2)
        return {b"".join(rd.strings) for rr in r.answer for rd in rr}

    wait_until(lambda: served() == {b"v=TLSRPTv1; rua=mailto:tlsrpt@example.test"}, 10, "BIND")
    before = target.read_text()
    bad = ZoneFileProvider("zf", {"path": str(link), "reload": ["false"]}, ProviderContext())
    with pytest.raises(ProviderError) as ei:
        bad.apply_txt(zone, name, rec, TxtRRset.of(300, [(b"v=TLSRPTv1; rua=mailto:x@y.test",)]))
    msg = str(ei.value)
    assert "\n" not in msg and "reload command 'false' failed" in msg, msg
    assert "the previous zone file was restored" in msg, msg
    assert target.read_text() == before and prov.read_txt(zone, name) == rec
