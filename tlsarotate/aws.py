"""The boto3 plumbing Route 53 and the S3 state store share: building a client from the
``profile``/``region``/``endpoint_url`` options, and reading the code of a botocore error.

boto3 is imported lazily (it is an optional extra); a missing boto3 raises ``ImportError`` for
the caller to word. Client setup failures are :class:`ClientSetupError`, naming the option at
fault, for the caller to word in its own terms (a config option, a state backend URL).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


class ClientSetupError(Exception):
    """botocore refused to build the client: ``option`` is the one at fault (``profile``,
    ``region``, ``endpoint_url``; None: not known), ``error`` what botocore raised."""

    def __init__(self, option: str | None, error: Exception) -> None:
        super().__init__(f"{type(error).__name__}: {_one_line(error)}")
        self.option = option
        self.error = error

    @property
    def text(self) -> str:
        """botocore's message on one line (it names the profile, region or endpoint, never a
        credential)."""
        return _one_line(self.error)


def client(
    service: str,
    *,
    profile: str | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    timeout: float | None = None,
    retries: bool = True,
) -> Any:
    """A boto3 client for ``service``, credentials from boto3's standard chain (or
    ``profile``). ``timeout``: the HTTP connect/read timeout; ``retries=False``: one attempt
    per call (the caller retries itself). Raises ``ImportError`` without boto3,
    :class:`ClientSetupError` when botocore refuses the options."""
    import boto3
    import botocore.config
    import botocore.exceptions

    try:
        session = boto3.session.Session(profile_name=profile) if profile else boto3.Session()
    except botocore.exceptions.BotoCoreError as e:  # ProfileNotFound, a broken ~/.aws file
        raise ClientSetupError("profile", e) from None
    cfg: dict[str, Any] = {}
    if not retries:
        cfg["retries"] = {"total_max_attempts": 1, "mode": "standard"}
    if timeout is not None:
        cfg["connect_timeout"] = cfg["read_timeout"] = timeout
    try:
        return session.client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=botocore.config.Config(**cfg) if cfg else None,
        )
    except botocore.exceptions.InvalidRegionError as e:
        raise ClientSetupError("region", e) from None
    except ValueError as e:  # botocore: "Invalid endpoint: ..."
        raise ClientSetupError("endpoint_url", e) from None
    except Exception as e:  # any other BotoCoreError
        raise ClientSetupError(None, e) from None


def is_endpoint_url(url: str) -> bool:
    """Is ``url`` an ``http(s)://`` URL with a host (and a valid port, if any)?"""
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError when out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def error_code(e: BaseException) -> tuple[str, str, int]:
    """(code, message on one line, HTTP status) of a botocore ``ClientError``, whichever shape
    its answer came in; ``("", "", 0)`` for anything else."""
    resp = getattr(e, "response", None)
    if not isinstance(resp, dict):
        return "", "", 0
    err = resp.get("Error") or {}
    code, message = err.get("Code") or "", err.get("Message") or ""
    if not code:  # some endpoints answer <ErrorResponse><Errors><Error>…
        inner = (resp.get("Errors") or {}).get("Error") or {}
        code, message = inner.get("Code") or "", inner.get("Message") or message
    status = int((resp.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    return str(code), _one_line(message), status


def _one_line(text: object) -> str:
    return " ".join(str(text).split())
