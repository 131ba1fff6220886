"""The commands that read only local files, never DNS: ``records`` (TLSA records for
certificates, keys, CSRs) and ``validate`` (the config and the files it names)."""

from __future__ import annotations

import argparse
import json
import sys

from tlsarotate import certfiles, jsondoc, records
from tlsarotate.errors import RecordError


def cmd_records(args: argparse.Namespace) -> int:
    explicit = args.params is not None
    params = [records.parse_params(t) for t in (args.params or records.DEFAULT_PARAMS)]
    owner = None
    if args.name and args.host:
        raise RecordError("give either --name or --host, not both")
    if args.name:
        import dns.name

        try:
            owner = dns.name.from_text(args.name.rstrip(".") + ".")
        except Exception as e:
            raise RecordError(f"invalid owner name {args.name!r}: {e}") from None
    elif args.host:
        try:
            owner = records.owner_name(args.host, args.port, args.proto)
        except Exception as e:  # dnspython: an empty or too long label
            raise RecordError(f"invalid --host {args.host!r}: {e}") from None
    out: list[str] = []
    js: list[dict[str, object]] = []
    many = len(args.files) > 1
    for f in args.files:
        m = certfiles.load(f)
        rds = []
        for prm in params:
            try:
                rds.append(records.build(m, prm, args.ta_depth))
            except RecordError:
                if explicit:
                    raise
        if not rds:
            raise RecordError(f"{f}: none of the default parameters apply; use --params")
        if args.output == "json":
            js.extend(
                {
                    "file": f,
                    "owner": owner.to_text() if owner else None,
                    "ttl": args.ttl,
                    "usage": rd.usage,
                    "selector": rd.selector,
                    "mtype": rd.mtype,
                    "data": rd.cert.hex(),
                    "text": records.to_text(rd),
                }
                for rd in rds
            )
            continue
        if many:
            out.append(f"; {f}")
        if owner is not None:
            out.extend(records.zone_line(owner, args.ttl, rd) for rd in rds)
        else:
            out.extend(records.to_text(rd) for rd in rds)
    if args.output == "json":
        doc = {**jsondoc.head("records"), "records": js}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from tlsarotate import config

    cfg = config.load(args.config)
    lines = config.check_files(cfg)
    if args.output == "json":
        doc = {**jsondoc.head("validate"), "config": str(cfg.path), "ok": True, "slots": lines}
        print(json.dumps(doc, indent=2))
    else:
        print(f"{cfg.path}: ok ({len(cfg.services)} service(s), {len(cfg.providers)} provider(s))")
        for line in lines:
            print(f"  {line}")
    return 0
