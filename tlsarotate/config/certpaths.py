"""The certificate files a slot names: loading them as :class:`~tlsarotate.material.Material`
and the rule on where a deployed file's symbolic link may point."""

from __future__ import annotations

import os
from pathlib import Path

from tlsarotate import certfiles, material
from tlsarotate.config.model import CertPaths
from tlsarotate.errors import ConfigError


def deployed_link_check(paths: CertPaths) -> None:
    """A deployed file may be a symbolic link only to a file in its own directory (a versioned
    ``mx.pem -> mx-2026.pem``): a swap replaces what the config names, and a link into another
    place (certbot's ``live/``, another service's files) would be followed there by every read
    and would make the server follow the ACME client. :class:`ConfigError` in one line."""
    from tlsarotate.certstore import STORE

    # a cert + key pair is switched through tlsarotate's versioned store beside the key
    # (certstore.py): links into it are the layout tlsarotate itself makes
    store = (
        Path(os.path.realpath(paths.key.parent / STORE / paths.key.name))
        if paths.cert is not None and paths.key is not None
        else None
    )
    for key in ("cert", "key", "combined"):
        p: Path | None = getattr(paths, key)
        if p is None or not p.is_symlink():
            continue
        target = Path(os.path.realpath(p))
        if store is not None and key != "combined" and target.is_relative_to(store):
            continue
        if target.parent != Path(os.path.realpath(p.parent)):
            raise ConfigError(
                f"{p} is a symbolic link to {target}, outside its directory; "
                "a deployed path must name tlsarotate's own copy (a link only to a file beside it)",
                key=f"deployed.{key}",
            )


def load_cert(paths: CertPaths) -> material.Material:
    """Load the Material behind CertPaths, checking that key and certificate belong together."""
    if paths.lineage:
        return certfiles.load_lineage(paths.lineage)
    if paths.combined:
        return certfiles.load_combined(paths.combined)
    assert paths.cert is not None and paths.key is not None
    return certfiles.load_pair(paths.cert, paths.key)
