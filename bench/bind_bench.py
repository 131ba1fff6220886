#!/usr/bin/env python3
"""Publishing on real BIND (issue #16): ``tlsarotate apply`` through ``rfc2136`` against a
hand-written ``nsupdate`` batch per zone making the same change, side by side in one run.

    python bench/bind_bench.py --owners 2000 --zones 20      # primary + secondary, 20 zones
    python bench/bind_bench.py --owners 2000 --zones 20 --read axfr --observe-read axfr
    python bench/bind_bench.py --owners 5000 --zones 1       # 5,000 owners of one service

The bench starts its own BIND 9 primary + secondary (tests/support/servers.py: TSIG, inline
signing, NOTIFY/IXFR) with ``querylog`` on, and the zones holding every owner's deployed
records (bench/gen.py: one service per zone, records 3 1 1 + 3 0 1, ``observe: dns`` against
both servers). Each run starts from that state (the records put back, the state removed):

* tlsarotate: ``apply`` (no --wait): the publish of the next certificate's records;
* reference: ``nsupdate -v -k KEY`` (TCP, as tlsarotate) adding the same records, one process
  per zone, or per message where a zone's change does not fit one (64 KiB: nsupdate compresses
  no owner names), waiting for the new serial between the messages to one zone.

Figures: wall, CPU (wait4) and peak RSS; from BIND's own logs the UPDATE messages (one
``update ... approved`` line each) and the queries each server answered (the secondary's
refresh queries and transfers come from 127.0.0.2 and are left out); and a check that both ways
end with the same TLSA records in every zone. Needs bind9, bind9-utils (nsupdate,
tsig-keygen). Not a test; nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.update

from bench import gen
from bench.measure import Run, ratio, run, table, tlsarotate
from tests.support.servers import PRIMARY_ADDR, SECONDARY_ADDR, BindServers, BindZone

MAX_MSG = 65535
SEC_SOURCE = "127.0.0.2"  # the secondary's refresh and transfer source


class LoggedBind(BindServers):
    """BindServers with ``querylog yes``; the secondary refreshes and transfers from 127.0.0.2.
    ``named -g`` logs everything (queries, ``update-security``) to its stderr: the
    ``primary.log`` and ``secondary.log`` of :class:`BindServers`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = self.primary_dir / "named.conf"  # let the secondary transfer from 127.0.0.2
        text = conf.read_text().replace(
            f"{PRIMARY_ADDR}; {SECONDARY_ADDR}; }};",
            f"{PRIMARY_ADDR}; {SEC_SOURCE}; {SECONDARY_ADDR}; }};",
        )
        assert SEC_SOURCE in text, "allow-transfer not found in the primary's named.conf"
        conf.write_text(text)

    def _options(self, d: Path, listen: str) -> str:
        extra = "    querylog yes;\n"
        if d == self.secondary_dir:
            extra += f"    transfer-source {SEC_SOURCE};\n"
        return (
            super()
            ._options(d, listen)
            .replace("    recursion no;\n", extra + "    recursion no;\n", 1)
        )

    def marks(self) -> tuple[int, int]:
        time.sleep(0.3)  # the last lines of what was just answered
        return tuple(  # type: ignore[return-value]
            (self.dir / f"{w}.log").stat().st_size for w in ("primary", "secondary")
        )

    def counts(self, start: tuple[int, int], end: tuple[int, int]) -> dict[str, int]:
        """UPDATEs approved by the primary, and client queries each server answered, between
        two :meth:`marks` (the secondary's own refreshes and transfers left out)."""

        def lines(which: str, a: int, b: int) -> list[str]:
            with open(self.dir / f"{which}.log", "rb") as f:
                f.seek(a)
                return f.read(b - a).decode(errors="replace").splitlines()

        prim = lines("primary", start[0], end[0])
        sec = lines("secondary", start[1], end[1])

        def clients(ls: list[str]) -> int:
            return sum(1 for ln in ls if " query: " in ln and f" {SEC_SOURCE}#" not in ln)

        return {
            "updates": sum(1 for ln in prim if re.search(r'signer ".*" approved', ln)),
            "primary": clients(prim),
            "secondary": clients(sec),
        }


def chunks(
    zone: str, adds: list[tuple[str, int, str]], compress: bool = True
) -> list[list[tuple[str, int, str]]]:
    """``adds`` split into the fewest consecutive runs that each fit one signed UPDATE.

    The wire size is counted as a DNS renderer writes it: header, zone section, then each
    record's owner with name compression (a pointer to a suffix already written in the first
    16 KiB), type/class/TTL/length and the rdata; 512 bytes are left for the TSIG record.
    ``compress=False``: owner names at full length, as nsupdate 9.18 renders them (it refuses
    a longer message: "dns_request_create: ran out of space")."""
    zlabels = tuple(dns.name.from_text(zone).labels)
    out: list[list[tuple[str, int, str]]] = []
    size, comp = MAX_MSG, {}  # force a new message at the first record
    for a in adds:
        if not compress:
            comp = {}
        labels = tuple(x.lower() for x in dns.name.from_text(a[0]).labels)
        rdata_len = 3 + len(a[2].split()[3]) // 2
        if size + _name_len(labels, comp, size, dry=True) + 10 + rdata_len > MAX_MSG - 512:
            out.append([])
            comp = {}
            size = 12
            size += _name_len(zlabels, comp, size) + 4
        size += _name_len(labels, comp, size) + 10 + rdata_len
        out[-1].append(a)
    return out


def _name_len(labels: tuple[bytes, ...], comp: dict, pos: int, dry: bool = False) -> int:
    n = 0
    for i in range(len(labels) - 1):  # the last label is the root
        suffix = labels[i:]
        if suffix in comp:
            return n + 2
        if not dry and pos + n < 0x4000:
            comp[suffix] = pos + n
        n += 1 + len(labels[i])
    return n + 1


def split_lines(lines: list[str]) -> list[tuple[str, int, str]]:
    """Zone lines ``OWNER TTL IN TLSA U S M HEX`` -> (owner, ttl, "U S M HEX")."""
    out = []
    for ln in lines:
        owner, ttl, _cls, _t, rdata = ln.split(None, 4)
        out.append((owner, int(ttl), rdata))
    return out


def next_adds(lay: gen.Layout, s: gen.Service) -> list[tuple[str, int, str]]:
    return split_lines(lay.lines_for(s, "next"))


def tlsa_set(bind: BindServers, zone: str) -> set[tuple[str, str]]:
    z = bind.axfr(zone)
    return {
        (name.derelativize(z.origin).to_text(), rd.to_text())
        for name, node in z.nodes.items()
        for rds in node.rdatasets
        if rds.rdtype == dns.rdatatype.TLSA
        for rd in rds
    }


def settled(bind: BindServers, want: dict[str, set[tuple[str, str]]], timeout: float = 30) -> bool:
    """Whether the primary serves ``want`` in every zone within ``timeout`` s (inline signing
    serves a change a moment after the UPDATE's answer)."""
    deadline = time.monotonic() + timeout
    while not all(tlsa_set(bind, z) == w for z, w in want.items()):
        if time.monotonic() > deadline:
            for z, w in want.items():
                got = tlsa_set(bind, z)
                print(f"{z}: {len(got - w)} unexpected, {len(w - got)} missing, e.g. "
                      f"{sorted(got - w)[:2]} {sorted(w - got)[:2]}")  # fmt: skip
            return False
        time.sleep(0.2)
    return True


def restore(bind: BindServers, lay: gen.Layout, start: dict[str, set[tuple[str, str]]]) -> None:
    """Every zone back to ``start``, the deployed records only, served by both servers;
    tlsarotate's state removed. Each UPDATE waits until the primary serves a new serial: BIND
    9.18 inline signing can miss a change that arrives while it signs the previous one (the
    log says ``receive_secure_serial: unchanged`` and the signed zone never gets it)."""
    for zone in lay.zones:
        owners = sorted({o for s in lay.services if s.zone == zone for o in s.owners})
        for i in range(0, len(owners), 1000):  # 1,000 deletes fit one message
            part = owners[i : i + 1000]
            r = bind.update(zone, build=lambda m, p=part: [m.delete(o, "TLSA") for o in p])
            assert r.rcode() == 0, (zone, r.rcode())
        for adds in chunks(zone, split_lines(lay.zone_lines[zone])):
            r = bind.update(zone, build=lambda m, p=adds: [m.add(*a[:2], "TLSA", a[2]) for a in p])
            assert r.rcode() == 0, (zone, r.rcode())
    if not settled(bind, start):
        raise SystemExit("the primary did not come back to the start state")
    bind.wait_synced(timeout=120)
    shutil.rmtree(lay.dir / "state", ignore_errors=True)
    (lay.dir / "state").mkdir(mode=0o700)


def nsupdate_scripts(bind: BindServers, lay: gen.Layout) -> dict[str, list[str]]:
    """Per zone, the nsupdate input of each message (one ``send`` each)."""
    out = {}
    for zone in lay.zones:
        adds = [a for s in lay.services if s.zone == zone for a in next_adds(lay, s)]
        out[zone] = [
            f"server {PRIMARY_ADDR} {bind.port}\nzone {zone}\n"
            + "".join(f"update add {o} {t} TLSA {x}\n" for o, t, x in part)
            + "send\n"
            for part in chunks(zone, adds, compress=False)
        ]
    return out


def timed_nsupdate(bind: BindServers, scripts: dict[str, list[str]]) -> Run:
    """Zone after zone, each message by its own ``nsupdate``; before the next message to the
    same zone, wait until the primary serves the new serial (see :func:`restore`: BIND can miss
    a change sent while it signs the previous one). The wall time includes those waits."""
    cpu = rss = 0.0
    start = time.perf_counter()
    for zone, texts in scripts.items():
        for i, text in enumerate(texts):
            more = i + 1 < len(texts)
            before = bind.serial(bind.primary, zone) if more else None  # (counted as queries)
            r = run(["nsupdate", "-v", "-k", str(bind.key_file)], stdin=text)
            if r.out.strip() or r.err.strip():
                raise SystemExit(f"nsupdate said: {(r.out + r.err).strip()[:500]}")
            cpu, rss = cpu + r.cpu, max(rss, r.rss_mb)
            if more and before is not None:
                bind.wait_primary_serial(zone, before, timeout=30)
    return Run(time.perf_counter() - start, cpu, rss, 0, "", "")


def swap_lags(lay: gen.Layout) -> list[float]:
    """Per service, seconds from ``visible + TTL`` (the earliest safe swap; safety_margin 0)
    to the swap, from the history in its state file."""
    out = []
    for s in lay.services:
        hist = json.loads((lay.dir / "state" / f"{s.name}.json").read_text())["history"]
        swap = [h["t"] for h in hist if h["event"] == "swap"]
        # the visibility of the RRset published for the swap: the last one before it
        visible = [h["t"] for h in hist if h["event"] == "visible" and swap and h["t"] <= swap[0]]
        if not visible or not swap:
            raise SystemExit(f"{s.name}: no visible/swap in the history: {hist}")
        out.append(swap[0] - (visible[-1] + lay.ttl))
    return out


def run_swap(bind: LoggedBind, lay: gen.Layout, initial: dict[str, set[tuple[str, str]]]) -> int:
    """``apply --wait`` through the whole rollover (publish, propagation, TTL, swap, cleanup);
    prints how long after ``visible + TTL`` each service's swap came."""
    restore(bind, lay, initial)
    r = run(tlsarotate("-c", str(lay.config), "apply", "--wait"))
    lags = sorted(swap_lags(lay))
    print(f"apply --wait, TTL {lay.ttl}s: {r.wall:.1f}s wall, {r.cpu:.1f}s CPU")
    print(
        f"swap after visible + TTL, {len(lags)} services: min {lags[0]:+.2f}s, median "
        f"{lags[len(lags) // 2]:+.2f}s, max {lags[-1]:+.2f}s"
    )
    return 0 if lags[0] >= 0 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--owners", type=int, default=2000)
    ap.add_argument("--zones", type=int, default=20)
    ap.add_argument("--read", default="query", choices=("query", "axfr"), help="rfc2136 read")
    ap.add_argument(
        "--observe-read",
        default="query",
        choices=("query", "axfr"),
        help="the services' observe_read (how the observer reads each server)",
    )
    ap.add_argument(
        "--swap-ttl",
        type=int,
        help="instead: `apply --wait` through the swap with this TTL; print the swap's delay",
    )
    ap.add_argument("--keep", action="store_true", help="keep the directory (printed)")
    a = ap.parse_args(argv)
    if not shutil.which("nsupdate"):
        raise SystemExit("nsupdate not found: apt-get install -y bind9-dnsutils")
    tmp = Path(tempfile.mkdtemp(prefix="bind-bench-"))
    ttl = {"ttl": a.swap_ttl} if a.swap_ttl else {}
    lay = gen.generate(tmp / "in", a.owners, a.zones, a.zones, target="rfc2136", **ttl)
    zones = [BindZone(z, extra="\n".join(lines)) for z, lines in lay.zone_lines.items()]
    bind = LoggedBind(tmp / "bind", zones, notify_delay=0)
    t = time.monotonic()
    bind.start()
    bind.wait_synced(timeout=120)
    print(
        f"BIND up and in sync in {time.monotonic() - t:.1f}s ({a.owners} owners, {a.zones} zones)"
    )
    try:
        opts = bind.provider_options(read=a.read, timeout=10)
        opts["tsig_key_file"] = str(opts["tsig_key_file"])
        ns = [f"{PRIMARY_ADDR}:{bind.port}", f"[{SECONDARY_ADDR}]:{bind.port}"]
        gen.write_config(lay, rfc2136=opts, nameservers=ns, observe_read=a.observe_read)
        run(tlsarotate("-c", str(lay.config), "validate"))
        initial = {z: tlsa_set(bind, z) for z in lay.zones}
        if a.swap_ttl:
            return run_swap(bind, lay, initial)
        want = {z: set(v) for z, v in initial.items()}
        fewest = sum(
            len(chunks(z, [x for s in lay.services if s.zone == z for x in next_adds(lay, s)]))
            for z in lay.zones
        )
        for s in lay.services:
            want[s.zone] |= {
                (o, rd)
                for o, _t, rd in [(x[0], 0, x[2]) for x in split_lines(lay.lines_for(s, "next"))]
            }

        restore(bind, lay, initial)
        start = bind.marks()
        ours = run(tlsarotate("-c", str(lay.config), "apply"), ok=(0, 2))
        c_ours = bind.counts(start, bind.marks())
        bind.wait_synced(timeout=120)
        same_ours = settled(bind, want)

        restore(bind, lay, initial)
        scripts = nsupdate_scripts(bind, lay)
        start = bind.marks()
        ref = timed_nsupdate(bind, scripts)
        c_ref = bind.counts(start, bind.marks())
        bind.wait_synced(timeout=120)
        same_ref = settled(bind, want)
    finally:
        bind.stop()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"apply (publish) of {a.owners} owners in {a.zones} zones on BIND primary + secondary "
        f"(rfc2136, read: {a.read}; observe_read: {a.observe_read}) vs one nsupdate batch per zone"
    )
    print(f"end state: tlsarotate {'as expected' if same_ours else 'WRONG'}, "
          f"nsupdate {'as expected' if same_ref else 'WRONG'}")  # fmt: skip
    print(f"fewest UPDATE messages that fit the change (64 KiB, name compression): {fewest}")
    rows = []
    for name, r, c in (("tlsarotate apply", ours, c_ours), ("nsupdate per zone", ref, c_ref)):
        rows.append((name, f"{r.wall:.2f}", f"{r.cpu:.2f}", f"{r.rss_mb:.0f}", c["updates"],
                     c["primary"], c["secondary"]))  # fmt: skip
    rows.append(("ratio", ratio(ours.wall, ref.wall), ratio(ours.cpu, ref.cpu), "",
                 ratio(c_ours["updates"], c_ref["updates"]), "", ""))  # fmt: skip
    head = ("", "wall s", "CPU s", "max RSS MB", "UPDATEs", "queries primary", "queries second.")
    print(table(rows, head))
    z = a.zones
    print(f"per zone: tlsarotate {c_ours['primary'] / z:.0f} queries to the primary, "
          f"{c_ours['secondary'] / z:.0f} to the secondary; goal <= 1.5x wall, queries per "
          "zone not per owner")  # fmt: skip
    return 0 if same_ours and same_ref else 1


if __name__ == "__main__":
    raise SystemExit(main())
