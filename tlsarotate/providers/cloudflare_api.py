"""The Cloudflare v4 REST API over HTTP (``requests``), for the Cloudflare provider: one call
with its retries, the API token kept hidden, and Cloudflare's error answers in one line.

429 and 5xx answers are retried (honouring ``Retry-After``, else a jittered backoff on the
provider's clock), except for a call that must not simply be repeated (a batch POST): a 5xx, a
timeout or a lost connection there raise :class:`Unanswered`, as the request may or may not have
been carried out. Other API errors are :class:`CloudflareApiError` with Cloudflare's codes;
401/403 name the token source. The token never appears in a message: any error text is
scrubbed of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tlsarotate.errors import ProviderError
from tlsarotate.providers.base import Provider, one_line
from tlsarotate.providers.secrets import Secret


class CloudflareApiError(ProviderError):
    """An API answer with ``success: false``; ``codes`` holds Cloudflare's error codes."""

    def __init__(
        self, detail: str, *, status: int = 0, codes: Sequence[int] = (), **fields: Any
    ) -> None:
        super().__init__(detail, **fields)
        self.status = status
        self.codes = tuple(codes)


class Unanswered(ProviderError):
    """A request that may or may not have been carried out: a 5xx answer, a timeout, a lost
    connection (raised instead of retrying when the request must not simply be repeated)."""


class _Retry(Exception):
    """A 429 or 5xx answer, worth another attempt."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp


class CloudflareApi:
    """Calls to ``url`` for ``provider`` (its name, clock and random source), authenticated
    with the token ``token()`` returns (read from ``token_source``, as messages say)."""

    backoff_base: float = 1.0
    backoff_cap: float = 30.0

    def __init__(
        self,
        provider: Provider,
        url: str,
        *,
        timeout: float,
        max_retries: int,
        token: Callable[[], Secret[str]],
        token_source: str,
    ) -> None:
        self.provider = provider
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._load_token = token
        self._token: Secret[str] | None = None
        self.token_source = token_source
        self._session: Any = None  # a requests.Session, made on first use; tests replace it

    def token(self) -> str:
        """The API token (read once)."""
        if self._token is None:
            self._token = self._load_token()
        return self._token.reveal()

    def scrub(self, text: str) -> str:
        """``text`` without the token (an exception's text may quote a header)."""
        if self._token is not None:
            text = text.replace(self._token.reveal(), "<token hidden>")
        return text

    def error(self, detail: str, cls: type[ProviderError] = ProviderError, **kw: Any) -> Any:
        return self.provider.error(self.scrub(detail), cls, **kw)

    def _requests(self) -> Any:
        try:
            import requests
        except ImportError:
            raise self.error("needs requests: pip install 'tlsarotate[cloudflare]'") from None
        return requests

    @property
    def session(self) -> Any:
        """The ``requests.Session`` every call goes through (made on first use)."""
        if self._session is None:
            self._session = self._requests().Session()
        return self._session

    @session.setter
    def session(self, value: Any) -> None:
        self._session = value

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """One API call (with retries); returns the decoded envelope of a successful answer.

        ``repeatable=False`` (a batch POST): only 429 is retried (the request was not carried
        out); a 5xx answer, a timeout or a lost connection raise :class:`Unanswered`."""
        requests = self._requests()
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        what = f"{method} {path}"

        def once() -> Any:
            try:
                resp = self.session.request(
                    method,
                    self.url + path,
                    params=dict(params) if params else None,
                    json=body,
                    headers=headers,
                    timeout=self.timeout,
                )
            except (requests.RequestException, ValueError) as e:
                # ValueError: a header requests or http.client refused (e.g. UnicodeEncodeError);
                # its text may quote the header, hence the scrubbing
                msg = f"{what} failed: {type(e).__name__}: {short(self.scrub(str(e)))}"
                if not repeatable and isinstance(e, (requests.Timeout, requests.ConnectionError)):
                    raise self.error(msg, Unanswered) from None
                raise self.error(msg) from None
            status = int(resp.status_code)
            if not repeatable and status >= 500:
                raise self.error(f"{what} failed: HTTP {status}", Unanswered)
            if status == 429 or status >= 500:
                raise _Retry(resp)
            return resp

        try:
            resp = self.provider.retrying(
                what,
                once,
                attempts=self.max_retries + 1,
                retry_on=(_Retry,),
                base=self.backoff_base,
                cap=self.backoff_cap,
                delay=_retry_after,
            )
        except _Retry as r:
            resp = r.resp  # out of retries: the answer is reported as it is
        return self._envelope(what, resp)

    def _envelope(self, what: str, resp: Any) -> dict[str, Any]:
        status = int(resp.status_code)
        try:
            data = resp.json()
        except ValueError:
            data = None
        errors = _errors(data)
        if status in (401, 403):
            raise self.error(
                f"{what}: authentication failed (HTTP {status}"
                f"{': ' + errors if errors else ''}); check the API token from "
                f"{self.token_source}"
            )
        if status >= 400 or not isinstance(data, dict) or not data.get("success", False):
            detail = errors or (f"unexpected answer {short(resp.text)!r}" if data is None else "")
            raise self.error(
                f"{what} failed: HTTP {status}{': ' + detail if detail else ''}",
                CloudflareApiError,
                status=status,
                codes=_codes(data),
            )
        return data

    def close(self) -> None:
        if self._session is not None and hasattr(self._session, "close"):
            self._session.close()


def _retry_after(e: BaseException) -> float | None:
    """The delay a ``Retry-After`` header asks for (at most 300 s), if any."""
    value = e.resp.headers.get("Retry-After") if isinstance(e, _Retry) else None
    try:
        return min(float(value), 300.0) if value else None
    except ValueError:
        return None


def short(e: object, n: int = 200) -> str:
    s = one_line(e)
    return s if len(s) <= n else s[: n - 1] + "…"


def _codes(data: Any) -> list[int]:
    if not isinstance(data, dict):
        return []
    out = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            code = err.get("code")
            if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
                out.append(int(code))
    return out


def _errors(data: Any) -> str:
    """``code: message; code: message`` from Cloudflare's ``errors`` list."""
    if not isinstance(data, dict):
        return ""
    parts = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            code, msg = err.get("code"), one_line(err.get("message", ""))
            parts.append(f"{code}: {msg}" if code is not None else msg)
        else:
            parts.append(one_line(err))
    return short("; ".join(parts), 400)
