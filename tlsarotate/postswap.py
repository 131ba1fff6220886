"""After a swap: does the live service really serve the certificate just installed?

Postfix does not fail a reload when key and certificate do not match: it logs a warning and
silently stops offering STARTTLS. Only a probe tells, so a slot with ``verify:`` is probed after
the reload (a few tries: a reload takes a moment); any other answer rolls the swap back.

The handshake offers only what a certificate of the installed one's key type can serve (RSA or
ECDSA, :mod:`tlsarotate.keytypes`): a server with an RSA and an ECDSA certificate side by side
must present the one just installed, whichever it prefers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from tlsarotate import keytypes
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.config import CertSlot, Service
from tlsarotate.dnslookup import resolve_addresses
from tlsarotate.errors import TlsarotateError
from tlsarotate.handshake import fetch_chain
from tlsarotate.material import Material
from tlsarotate.served import ServedChain, format_endpoint

ATTEMPTS = 5
PAUSE = 0.5

Fetch = Callable[..., ServedChain]


def verify_live(
    svc: Service,
    slot: CertSlot,
    installed: Material,
    fetch: Fetch = fetch_chain,
    clock: Clock | None = None,
) -> str | None:
    """None when every address of the service's endpoint serves ``installed``; else why not."""
    if slot.verify is None:
        return None
    v = slot.verify
    host = v.host or svc.hosts[0].rstrip(".")
    port = v.port or svc.ports[0]
    sni = svc.hosts[0].rstrip(".")
    clock = clock or SystemClock()
    try:
        addresses = resolve_addresses(host, v.timeout)
    except TlsarotateError as e:
        return str(e)
    want = installed.chain_der[0]
    key_type = keytypes.of_spki(installed.spki)
    only = {"key_type": key_type} if key_type else {}  # Ed25519 and others: unrestricted
    problem: str | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            clock.sleep(PAUSE)  # a reload takes a moment: look again
        problem = None
        for addr in addresses:
            served = fetch(addr, port, v.starttls, v.timeout, server_name=sni, **only)
            where = format_endpoint(addr, port)
            if served.error:
                problem = f"after the reload, {where} answered: {served.error}"
            elif served.der[0] != want:
                got = hashlib.sha256(served.der[0]).hexdigest()[:16]
                problem = (
                    f"after the reload, {where} still serves another certificate (sha256 {got}…)"
                )
            if problem:
                break
        if problem is None:
            return None
    return problem
