#!/usr/bin/env python3
"""``tlsarotate check`` of many live TLS endpoints against a sequential loop of
``openssl s_client -dane_tlsa_rrdata`` giving the same verdicts (issue #16, goal >= 10x).

    python bench/check_bench.py [--endpoints 200] [--services 20] [--bad 0.1] [--repeat 3]

Starts ``--endpoints`` loopback TLS servers (tests/support/tls_servers.py ``ScriptedServer``,
implicit TLS, each its own port on 127.0.0.1), spread over ``--services`` services of host
``mx.bench.test`` in zone ``bench.test.`` (zonefile provider, ``observe: provider``; the host's
address comes from a tiny UDP name server of the bench, the services' ``nameservers``: the
system resolver here does not resolve ``localhost.`` with its final dot). Each service
has its own deployed certificate, whose records 3 1 1 and 3 0 1 are in the zone at every owner;
a share ``--bad`` of the endpoints serves another certificate instead (a failing endpoint).

Then, side by side: one ``tlsarotate check --output json`` (its endpoints are probed
concurrently) and, for every endpoint one after the other, ``openssl s_client -brief -connect
127.0.0.1:PORT -dane_tlsa_domain mx.bench.test -dane_tlsa_rrdata ... -dane_ee_no_namechecks
-verify_return_error`` with the published records (ok = exit 0 and "Verification: OK", as
tests/support/tls_servers.py ``openssl_dane``). Both must give the same verdict for every
endpoint, else the benchmark fails. Not a test; nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import Run, ratio, run, table, tlsarotate
from tests.support.tls_servers import ScriptedServer, make_chain, openssl_dane
from tlsarotate import material, pki, records

ZONE = "$ORIGIN bench.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\n"
ZONE += "ns1 IN A 127.0.0.1\nmx IN A 127.0.0.1\n"
HOST = "mx.bench.test"
PARAMS = ("3 1 1", "3 0 1")


def name_server() -> tuple[int, socket.socket]:
    """A UDP server on 127.0.0.1 answering every A query with 127.0.0.1 (AAAA: no data)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                return  # closed
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            if q.question and q.question[0].rdtype == dns.rdatatype.A:
                r.answer.append(
                    dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "127.0.0.1")
                )
            sock.sendto(r.to_wire(), peer)

    threading.Thread(target=serve, daemon=True).start()
    return int(sock.getsockname()[1]), sock


def setup(d: Path, endpoints: int, services: int, bad: float, seed: int, ns_port: int) -> tuple[
    Path, list[ScriptedServer], dict[int, list[str]], dict[int, bool]
]:  # fmt: skip
    """Certificates, servers, zone file and config; returns (config, servers, the records
    published per port, whether each port serves its service's deployed certificate)."""
    rnd = random.Random(seed)
    ca = pki.make_ca("tlsarotate check-bench CA")
    servers: list[ScriptedServer] = []
    published: dict[int, list[str]] = {}
    good: dict[int, bool] = {}
    stranger = make_chain(d, "stranger", ca, (HOST,))
    lines, svc_yaml = [], []
    per = endpoints // services
    for j in range(services):
        dep = make_chain(d, f"s{j}-deployed", ca, (HOST,))
        nxt = make_chain(d, f"s{j}-next", ca, (HOST,))
        mat = material.load_pair(dep.fullchain, dep.key)
        built = [records.build(mat, records.parse_params(p)) for p in PARAMS]
        ports = []
        for _ in range(per):
            ok = rnd.random() >= bad
            srv = ScriptedServer("127.0.0.1", dep if ok else stranger, "implicit").start()
            servers.append(srv)
            ports.append(srv.port)
            good[srv.port] = ok
            owner = records.owner_name(HOST, srv.port)
            lines += [records.zone_line(owner, 300, rd) for rd in built]
            published[srv.port] = [rd.to_text() for rd in built]
        svc_yaml += [
            f"  - name: s{j}",
            "    zone: bench.test.",
            "    provider: local",
            f"    hosts: [{HOST}]",
            f"    nameservers: ['127.0.0.1:{ns_port}']",
            f"    ports: [{', '.join(map(str, ports))}]",
            "    observe: provider",
            "    certificate:",
            f"      deployed: {{cert: {dep.fullchain}, key: {dep.key}}}",
            f"      next: {{cert: {nxt.fullchain}, key: {nxt.key}}}",
            '      reload: ["true"]',
        ]
    (d / "bench.test.zone").write_text(ZONE + "\n".join(lines) + "\n")
    (d / "state").mkdir(mode=0o700)
    cfg = d / "config.yaml"
    head = ["state_dir: state", "safety_margin: 0", "providers:", "  local:"]
    head += ["    type: zonefile", "    path: bench.test.zone", "services:"]
    cfg.write_text("\n".join(head + svc_yaml) + "\n")
    return cfg, servers, published, good


def openssl_loop(published: dict[int, list[str]]) -> tuple[Run, dict[int, bool]]:
    """Every endpoint in turn through ``openssl s_client``; figures from RUSAGE_CHILDREN."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    verdicts = {
        port: openssl_dane("127.0.0.1", port, HOST, rrs, starttls=None).ok
        for port, rrs in published.items()
    }
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, 0.0, 0, "", ""), verdicts


def median(runs: list[Run]) -> Run:
    wall, cpu, rss = (
        statistics.median(getattr(r, f) for r in runs) for f in ("wall", "cpu", "rss_mb")
    )
    return Run(wall, cpu, rss, 0, "", "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoints", type=int, default=200)
    ap.add_argument("--services", type=int, default=20)
    ap.add_argument("--bad", type=float, default=0.1, help="share of failing endpoints")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    ns_port, ns_sock = name_server()
    with tempfile.TemporaryDirectory(prefix="check-bench-") as tmp:
        d = Path(tmp)
        cfg, servers, published, good = setup(d, a.endpoints, a.services, a.bad, a.seed, ns_port)
        try:
            run(tlsarotate("-c", str(cfg), "validate"))
            ours_runs, ref_runs = [], []
            for _ in range(a.repeat):
                r = run(tlsarotate("-c", str(cfg), "check", "--output", "json"), ok=(0, 1, 2, 3))
                ours_runs.append(r)
                ref, ref_verdicts = openssl_loop(published)
                ref_runs.append(ref)
        finally:
            for s in servers:
                s.stop()
            ns_sock.close()
    doc = json.loads(ours_runs[-1].out)
    ours_verdicts = {
        ep["port"]: bool(ep["ok"]) for svc in doc["services"] for ep in svc["endpoints"]
    }
    n = len(published)
    agree = ours_verdicts == ref_verdicts
    expected = ref_verdicts == good
    ours, ref = median(ours_runs), median(ref_runs)
    failing = sum(1 for ok in ref_verdicts.values() if not ok)
    print(f"check of {n} live TLS endpoints on 127.0.0.1 ({a.services} services, {failing} "
          f"serving a wrong certificate), median of {a.repeat}")  # fmt: skip
    print(f"verdicts: {'identical for every endpoint' if agree else 'DIFFER'}"
          f"{'' if expected else ' (openssl disagrees with the setup!)'}; "
          f"tlsarotate exit {ours_runs[-1].rc} ({doc['status']})")  # fmt: skip
    rows = [
        ("tlsarotate check (1 process)", f"{ours.wall:.2f}", f"{ours.cpu:.2f}"),
        ("openssl s_client loop", f"{ref.wall:.2f}", f"{ref.cpu:.2f}"),
        ("speed-up (openssl / tlsarotate)", ratio(ref.wall, ours.wall), ratio(ref.cpu, ours.cpu)),
    ]
    print(table(rows, ("", "wall s", "CPU s")))
    print(f"goal: >= 10x faster (wall); tlsarotate max RSS {ours.rss_mb:.0f} MB")
    if not agree:
        diff = sorted(p for p in published if ours_verdicts.get(p) != ref_verdicts[p])
        print(f"differing ports: {diff[:20]}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
