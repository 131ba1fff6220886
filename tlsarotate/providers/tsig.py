"""TSIG keys (RFC 8945) for RFC 2136 updates: :class:`TsigKey`, a BIND key file's parser
(:func:`parse_key_file`, the format ``tsig-keygen`` writes) and :func:`load_key`, the key a
provider's options describe (a key file, or a name with a secret file or environment variable).

The secret is kept in a :class:`~tlsarotate.providers.secrets.Secret`; no message or ``repr``
ever shows it. Errors are :class:`~tlsarotate.errors.ConfigError` lines starting with the
option's name (``tsig_key_file: PATH: ...``) so ``validate`` points at its line.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.tsig

from tlsarotate.errors import ConfigError
from tlsarotate.fsutil import read_text
from tlsarotate.providers.secrets import Secret, read_secret

ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
}
DEFAULT_ALGORITHM = "hmac-sha256"


class TsigKey:
    """A TSIG key: name, algorithm and the hidden secret. ``repr`` never shows the secret."""

    def __init__(self, name: str, algorithm: str, secret: Secret[bytes], source: str) -> None:
        self.name = dns.name.from_text(name)
        self.algorithm = algorithm
        self.secret = secret
        self.source = source  # "FILE" or "env VAR", for messages

    def dns_key(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret.reveal(), ALGORITHMS[self.algorithm])

    @property
    def label(self) -> str:
        return self.name.to_text(omit_final_dot=True)

    def __repr__(self) -> str:
        return f"TsigKey({self.label!r}, {self.algorithm!r}, from {self.source})"


# Comments (/* */, //, #) outside quoted strings: a quoted string is matched first and kept
# (group 1), so a base64 secret holding "//" survives.
_COMMENTS = re.compile(r'("(?:[^"\\]|\\.)*")|/\*.*?\*/|//[^\n]*|#[^\n]*', re.S)
_KEY_BLOCK = re.compile(r'\bkey\s+("[^"]+"|[^\s{;]+)\s*\{(.*?)\}\s*;', re.S)


def _strip_comments(text: str) -> str:
    return _COMMENTS.sub(lambda m: m.group(1) or " ", text)


def _base64_problem(text: str) -> str | None:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "the TSIG secret is not valid base64"
    return None if raw else "the TSIG secret is empty"


def _decode_secret(text: str, where: str, key: str | None = None) -> Secret[bytes]:
    problem = _base64_problem(text)
    if problem:
        raise ConfigError(f"{where}: {problem}", key=key)
    return Secret(base64.b64decode(text.strip(), validate=True))


def _check_algorithm(alg: str, key: str, where: str | None = None) -> str:
    """The algorithm's canonical name (case, quotes and a final dot do not matter); an error
    is about option ``key`` (at ``where`` in its file)."""
    a = str(alg).strip().strip('"').lower().rstrip(".")
    if a not in ALGORITHMS:
        raise ConfigError(
            (f"{where}: " if where else "")
            + f"TSIG algorithm {alg!r} is not supported (use one of {', '.join(ALGORITHMS)})",
            key=key,
        )
    return a


def parse_key_file(path: Path, want: str | None = None) -> TsigKey:
    """Read a BIND key file (``key "NAME" { algorithm ALG; secret "B64"; };``).

    ``want`` picks a key by name when the file holds several. Errors are one line naming the
    file and never showing the secret."""
    opt, where = "tsig_key_file", str(path)
    try:
        text = read_text(path, "BIND key file")
    except ConfigError as e:
        raise ConfigError(e.message, key=opt) from None
    blocks = _KEY_BLOCK.findall(_strip_comments(text))
    if not blocks:
        raise ConfigError(
            f'{where}: no key found (expected key "NAME" {{ algorithm hmac-sha256; '
            'secret "..."; }; as written by tsig-keygen)',
            key=opt,
        )
    keys: dict[str, str] = {n.strip('"').rstrip(".").lower(): body for n, body in blocks}
    if want is not None:
        w = want.rstrip(".").lower()
        if w not in keys:
            raise ConfigError(f"{where}: no key named {want!r} (found: {', '.join(keys)})", key=opt)
        name, body = w, keys[w]
    elif len(keys) > 1:
        raise ConfigError(f"{where}: holds {len(keys)} keys; set tsig_name to pick one", key=opt)
    else:
        name, body = next(iter(keys.items()))
    alg_m = re.search(r"\balgorithm\s+([^;\s]+)\s*;", body)
    sec_m = re.search(r'\bsecret\s+"([^"]*)"\s*;', body)
    if not alg_m:
        raise ConfigError(f"{where}: key {name!r} has no algorithm", key=opt)
    if not sec_m:
        raise ConfigError(f"{where}: key {name!r} has no secret", key=opt)
    alg = _check_algorithm(alg_m.group(1), opt, f"{where}: key {name!r}")
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException:
        raise ConfigError(f"{where}: key name {name!r} is not a valid DNS name", key=opt) from None
    secret = _decode_secret(sec_m.group(1), f"{where}: key {name!r}", opt)
    return TsigKey(name, alg, secret, str(path))


def load_key(
    options: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> TsigKey | None:
    """The TSIG key the options describe (None: send unsigned updates)."""
    env = os.environ if environ is None else environ
    key_file = options.get("tsig_key_file")
    name = options.get("tsig_name")
    alg = options.get("tsig_algorithm")
    sfile = options.get("tsig_secret_file")
    senv = options.get("tsig_secret_env")
    if key_file is not None:
        if sfile is not None or senv is not None:
            raise ConfigError(
                "holds the secret already; drop tsig_secret_file/tsig_secret_env",
                key="tsig_key_file",
            )
        key = parse_key_file(Path(key_file), name)
        if alg is not None and _check_algorithm(alg, "tsig_algorithm") != key.algorithm:
            raise ConfigError(
                f"{alg!r} does not match the {key.algorithm} key in {key_file}",
                key="tsig_algorithm",
            )
        return key
    if name is None:
        if sfile is not None or senv is not None or alg is not None:
            raise ConfigError(
                "required with tsig_secret_file/tsig_secret_env/tsig_algorithm", key="tsig_name"
            )
        return None
    try:
        dns.name.from_text(str(name))
    except dns.exception.DNSException:
        raise ConfigError(f"{name!r} is not a valid DNS name", key="tsig_name") from None
    algorithm = _check_algorithm(alg or DEFAULT_ALGORITHM, "tsig_algorithm")
    if (sfile is None) == (senv is None):
        raise ConfigError(
            "set exactly one of tsig_secret_file or tsig_secret_env with it (or use tsig_key_file)",
            key="tsig_name",
        )
    text = read_secret(
        sfile,
        None if sfile is not None else str(senv),
        file_option="tsig_secret_file",
        env_option="tsig_secret_env",
        what="TSIG secret",
        environ=env,
        check=_base64_problem,
    )
    source = str(sfile) if sfile is not None else f"env {senv}"
    return TsigKey(str(name), algorithm, _decode_secret(text.reveal(), source), source)
