"""``tlsarotate probe HOST``: what every address of HOST serves, against the published TLSA.

Steps: resolve every A and AAAA of HOST; fetch the TLSA RRset of ``_PORT._tcp.HOST`` from
every authoritative server, following a CNAME there (a shared ``_dane`` RRset, RFC 7671 §7:
each step's RRSIG validated, at most 8 steps, loops named), or read it from ``--tlsa-from
FILE``; connect to each address
concurrently (STARTTLS as needed) and take the full served chain (this module: the gather
step, I/O); judge each chain with :func:`tlsarotate.verdict.diagnose` and DNS and chain
together (:mod:`tlsarotate.probe_judge`, pure); print (:mod:`tlsarotate.probe_render`).

One verdict per address, the same in text and JSON (``dane``), as RFC 7672 §2.2 defines them:

- ``authenticated``: the TLSA RRset is DNSSEC-secure (or read from a file) and a usable record
  authenticates the served chain. A DANE sender delivers.
- ``fails``: the TLSA answer is bogus (an RRSIG that does not validate, a validating resolver
  answering SERVFAIL), or usable records exist and none authenticates the chain. A DANE sender
  defers the mail.
- ``none``: no DANE: the zone is unsigned, the resolver returns the records without the AD
  bit, there are no TLSA records, or none is usable (e.g. only ``1 1 1`` for SMTP). A sender
  delivers without DANE (opportunistic, unauthenticated TLS).

The rules follow the PROTOCOL, never the port (:func:`tlsarotate.handshake.speaks_smtp`):
STARTTLS smtp (``--starttls smtp`` on any port, or ``auto`` on 25/587) and implicit TLS on 465
(SMTP submission, RFC 8314) use RFC 7672's SMTP rules (usages 0 and 1 unusable); every other
protocol validates usages 0/1 with PKIX against ``$SSL_CERT_FILE`` or the system bundle.

Key types: a server may serve an RSA and an ECDSA certificate side by side, and present the one
the client's offer allows. ``--key-type all`` (default) takes what the server prefers, then
offers each other type alone (:mod:`tlsarotate.keytypes`): each certificate served is judged on
its own, one entry per address and key type; a type the server refuses is listed in
``not_served`` (not an error). ``--key-type rsa|ecdsa`` offers only that type.

Exit codes: 0 every address authenticated; 2 DANE fails for any address (or for all of
them, by DNS); 1 something could not be checked (an address unreachable, no DNS answer) when
nothing fails; 3 no DANE for some address (nothing fails, everything was checked): DANE does
not protect the endpoint, which a monitor should see, but mail still flows.

JSON output (``--output json``), one object::

    {
      "version": 1,                        # the schema's version (schemas/probe.schema.json)
      "tool_version": "0.1.0",             # tlsarotate's version
      "host": "mx.example.com",            # as given, without the trailing dot
      "port": 25,
      "owner": "_25._tcp.mx.example.com.",
      "starttls": "smtp",                  # protocol used: smtp | imap | pop3 | none
      "smtp": true,                        # RFC 7672 SMTP rules applied (see above)
      "tlsa": {
        "source": "dns" | "file:/path",
        "zone": "example.com." | null,
        "records": ["3 1 1 <hex>", ...],   # RRset judged (the first variant, sorted)
        "variants": [{"servers": ["ns1 ..."], "records": [...]}],   # >1: servers disagree
        "dnssec": "signed" | "unsigned" | "invalid" | "unknown",
        "servers": [{"label": str, "address": str, "port": int, "error": str|null,
                     "records": [...] | null, "signed": true|false|null}],
        "min_rrsig_expiry": "2030-01-01T00:00:00+00:00" | null,
        "resolver": null | {"server": "127.0.0.1:53", "rcode": "NOERROR", "ad": bool,
                            "records": [...], "error": str|null,
                            "cname_chain": [names] | null},   # the CNAMEs in its answer
        "cname_chain": ["_25._tcp.mx.example.com.", "_dane.example.com."] | null
                                           # a CNAME at the owner (RFC 7671 §7), followed
                                           # on the authoritative servers, into other zones
      },
      "addresses": [
        {"address": "192.0.2.1", "port": 25,
         "dane": "authenticated" | "fails" | "none" | null,   # null: not probed (error)
         "ok": bool,                       # dane == "authenticated"
         "summary": str | null,            # why, DNS and chain together
         "error": str|null,
         "tls_version": "TLSv1.3"|null, "cipher": str|null, "server_name": str|null,
         "key_type": "rsa" | "ecdsa" | null,      # the served leaf's (null: another type)
         "key_type_offered": "rsa" | "ecdsa" | null,   # the handshake offered only this
         "chain": [{"depth": 0, "subject": str, "issuer": str, "not_before": iso,
                    "not_after": iso, "key_type": "EC P-256", "spki_sha256": hex,
                    "cert_sha256": hex, "names": [str], "ca": bool}],
         "verdicts": [{"servers": [...], "dane": str, "ok": bool, "summary": str,
                       "warnings": [str],     # the chain against one RRset variant
                       "records": [{"record": "3 1 1 <hex>", "usable": bool,
                                    "considered": bool, "matched": bool,
                                    "authenticates": bool, "reason": str}]}],
         "saved_chain": "/dir/file.pem" | null}
      ],
      "key_types": "all" | "rsa" | "ecdsa",   # --key-type; all: one entry in "addresses"
                           # per key type an address serves (RSA and ECDSA side by side)
      "not_served": [{"address": str, "port": int, "key_type": "rsa" | "ecdsa",
                      "reason": str}],   # (all) offered alone, that type was refused
      "problems": [str],   # DNS-side reasons DANE fails for every address (bogus)
      "insecure": [str],   # DNS-side reasons there is no DANE (unsigned zone, no AD bit)
      "errors": [str],     # things that could not be checked
      "dane": "authenticated" | "fails" | "none" | null,   # fails > none > authenticated
      "ok": bool,          # exit == 0
      "exit": 0 | 1 | 2 | 3
    }
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dns.exception
import dns.name

from tlsarotate import keytypes, records
from tlsarotate.config import Nameserver, parse_nameserver
from tlsarotate.dnslookup import (
    NameserverObserverFactory,
    lookup_host_tlsa,
    nameserver_observer,
    resolve_addresses,
)
from tlsarotate.errors import TlsarotateError
from tlsarotate.fsutil import atomic_write
from tlsarotate.handshake import fetch_chain
from tlsarotate.pkix import Trust
from tlsarotate.probe_judge import ALL, Gathered, NotServed, ProbeReport, judge
from tlsarotate.probe_render import render_json, render_text
from tlsarotate.served import ServedChain, is_ip, resolve_starttls, speaks_smtp
from tlsarotate.tlsaanswer import TlsaAnswer
from tlsarotate.tlsafile import read_tlsa_file

MAX_WORKERS = 256  # endpoints are I/O bound: 200 endpoints in one round


def parse_server(text: str, what: str = "server") -> Nameserver:
    """``192.0.2.1``, ``192.0.2.1:5353``, ``2001:db8::1``, ``[2001:db8::1]:5353``."""
    try:
        return parse_nameserver(text)
    except ValueError as e:
        raise TlsarotateError(f"{what}: {e}") from None


def run_probe(
    host: str,
    port: int,
    starttls: str,
    timeout: float,
    tlsa_from: str = "dns",
    resolver: Nameserver | None = None,
    nameservers: Sequence[Nameserver] = (),
    save_chain: str | None = None,
    fetch: Callable[..., ServedChain] = fetch_chain,
    observer_factory: NameserverObserverFactory = nameserver_observer,
    addresses: Sequence[str] | None = None,
    trust: Trust | None = None,
    key_type: str = ALL,
) -> ProbeReport:
    """Everything ``probe`` does except printing. Raises TlsarotateError for bad input.

    ``addresses`` probes these instead of resolving ``host`` (a server not yet in DNS).
    ``key_type``: ``rsa`` or ``ecdsa`` offers only that key type (one handshake per address);
    ``all`` takes what the server prefers, then offers each other type alone: one result per
    key type served (:func:`handshakes`).
    ``trust``: PKIX trust anchors for usages 0/1 off SMTP (default
    :func:`tlsarotate.pkix.system_trust`)."""
    host = host.rstrip(".")
    if not host:
        raise TlsarotateError("probe: empty host name")
    if not 1 <= port <= 65535:
        raise TlsarotateError(f"--port {port} out of range 1-65535")
    if not 0 < timeout <= 3600:
        raise TlsarotateError(f"--timeout {timeout:g} out of range (0, 3600] seconds")
    mode = resolve_starttls(starttls, port)
    if is_ip(host):
        if tlsa_from == "dns":
            raise TlsarotateError(
                f"{host} is an address: give the host name, whose _{port}._tcp TLSA records "
                "DNS holds (or use --tlsa-from FILE)"
            )
        owner = dns.name.from_text(f"_{port}._tcp.host.invalid.")
    else:
        try:
            owner = records.owner_name(host, port)
        except dns.exception.DNSException as e:
            raise TlsarotateError(f"invalid host name {host!r}: {e}") from None
    if save_chain:
        d = Path(save_chain)
        if not d.is_dir():
            raise TlsarotateError(f"--save-chain {d}: not a directory")
    file_owner = None if is_ip(host) else owner  # an address has no owner name: take every line
    file_records = read_tlsa_file(tlsa_from, file_owner) if tlsa_from != "dns" else None
    bad = [a for a in addresses or () if not is_ip(a)]
    if bad:
        raise TlsarotateError(f"--address {bad[0]!r} is not an IP address")

    errors: list[str] = []
    tlsa_now: TlsaAnswer | None = None
    if file_records is None:
        # first: the host may be an alias whose target is the TLSA base domain (and the SNI)
        owner, tlsa_now = lookup_host_tlsa(
            host, port, timeout, nameservers, resolver, observer_factory
        )
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        if addresses:
            addrs = list(dict.fromkeys(addresses))
        else:
            try:
                addrs = resolve_addresses(host, timeout, resolver, nameservers)
            except TlsarotateError as e:
                addrs = []
                errors.append(str(e))
        sni = None if is_ip(host) else host
        if (
            tlsa_now is not None
            and tlsa_now.host_cname_chain
            and owner != records.owner_name(host, port)
        ):
            sni = tlsa_now.host_cname_chain[-1].to_text(omit_final_dot=True)  # RFC 7672 §8.1
        futures = [
            pool.submit(handshakes, fetch, a, port, mode, timeout, sni, key_type) for a in addrs
        ]
        served: list[ServedChain] = []
        not_served: list[NotServed] = []
        for f in futures:
            got, missing = f.result()
            served += got
            not_served += missing
        if tlsa_now is not None:
            tlsa = tlsa_now
        else:
            tlsa = TlsaAnswer(source=f"file:{tlsa_from}")
            assert file_records is not None
            tlsa.variants = [(("file",), frozenset(file_records))]

    saved = [_save(save_chain, host, s) if save_chain and s.ok else None for s in served]
    gathered = Gathered(
        host, port, owner, mode, speaks_smtp(mode, port), tlsa, served, saved, errors
    )
    rep = judge(gathered, trust)
    rep.key_types = key_type
    rep.not_served = not_served
    return rep


def handshakes(
    fetch: Callable[..., ServedChain],
    address: str,
    port: int,
    mode: str,
    timeout: float,
    sni: str | None,
    key_type: str = ALL,
) -> tuple[list[ServedChain], list[NotServed]]:
    """The handshakes with one address: one offering only ``key_type``; or (``all``) one
    taking what the server prefers and then one offering each other key type alone
    (:data:`tlsarotate.keytypes.KEY_TYPES`), so a server serving RSA and ECDSA side by side
    shows both. With ``all``, a type the server then refuses is not served (it is named, not
    an error: the server works, with the other certificate)."""
    if key_type != ALL:
        return [fetch(address, port, mode, timeout, sni, key_type=key_type)], []
    first = fetch(address, port, mode, timeout, sni)
    if not first.ok:
        return [first], []
    served, missing = [first], []
    preferred = keytypes.of_spki(records.spki_of_der(first.der[0]) or b"")
    for other in keytypes.KEY_TYPES:
        if other == preferred:
            continue
        got = fetch(address, port, mode, timeout, sni, key_type=other)
        if got.ok:
            served.append(got)
        else:
            missing.append(NotServed(address, port, other, got.error or "no certificate"))
    return served, missing


def _save(directory: str, host: str, s: ServedChain) -> str:
    pem = "".join(ssl.DER_cert_to_PEM_cert(d) for d in s.der).encode()
    kind = f"_{s.key_type}" if s.key_type else ""  # a second key type's chain beside the first
    name = f"{host}_{s.port}_{s.address}{kind}.pem".replace(":", "-")
    path = Path(directory) / name
    try:
        atomic_write(path, pem)
    except OSError as e:
        raise TlsarotateError(
            f"--save-chain {directory}: cannot write {name}: {e.strerror}"
        ) from None
    return str(path)


def cmd_probe(args: argparse.Namespace) -> int:
    resolver = parse_server(args.resolver, "--resolver") if args.resolver else None
    nameservers = [parse_server(n, "--nameserver") for n in (args.nameserver or [])]
    rep = run_probe(
        args.host,
        args.port,
        args.starttls,
        args.timeout,
        tlsa_from=args.tlsa_from,
        resolver=resolver,
        nameservers=nameservers,
        save_chain=args.save_chain,
        addresses=args.address,
        key_type=args.key_type,
    )
    sys.stdout.write(render_json(rep) if args.output == "json" else render_text(rep))
    return rep.exit_code
