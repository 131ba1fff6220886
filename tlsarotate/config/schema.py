"""Every key the config file accepts, section by section (key -> required), and the closed
sets of values some of them take. The section readers check against these tables; the
example config is tested to document each key."""

from __future__ import annotations

import re

TOP_KEYS = {
    "state_dir": False,
    "state": False,
    "safety_margin": False,
    "lock_timeout": False,
    "providers": True,
    "services": True,
    "tlsrpt": False,
}

TLSRPT_KEYS = {"dir": True, "warn": False, "crit": False, "window": False}

STATE_KEYS = {
    "backend": True,
    "bucket": False,
    "prefix": False,
    "region": False,
    "endpoint_url": False,
    "profile": False,
}

SERVICE_KEYS = {
    "name": True,
    "zone": True,
    "provider": True,
    "hosts": True,
    "ports": False,
    "protocol": False,
    "ttl": False,
    "records": False,
    "certificate": False,
    "certificates": False,
    "allow_unsigned": False,
    "observe": False,
    "observe_read": False,
    "nameservers": False,
    "nameservers_mode": False,
    "owners": False,
    "next_min_days": False,
    "max_stale_removals": False,
    "max_stale_share": False,
    "tlsrpt_record": False,
    "shared_owner": False,
    # CA sets for DANE-TA (issue #13): the CA certificates the 2 x x records pin
    "ca_set": False,
}

TLSRPT_RECORD_KEYS = {"domain": False, "rua": True}

SLOT_KEYS = {
    "name": False,
    "deployed": True,
    "next": False,
    "reload": False,
    "verify": False,
    "next_key": False,
    "reload_timeout": False,
}

CERT_PATH_KEYS = {"cert": False, "key": False, "combined": False, "lineage": False}
VERIFY_KEYS = {"starttls": False, "host": False, "port": False, "timeout": False}
NEXT_KEY_KEYS = {"path": True, "type": False}

STARTTLS = ("smtp", "imap", "pop3", "none", "auto")
#: words in an option name that mark a secret: such an option must be ``*_file`` or ``*_env``
SECRET_WORDS = ("secret", "password", "token", "api_key", "access_key", "private_key")
#: service and provider names
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
