"""Rollover state in S3, for runners without a persistent disk (CI jobs, autoscaled hosts).

The :class:`tlsarotate.stores.StateStore` protocol; objects ``<prefix><service>.json`` and
``<prefix><service>.lock``. Every write is a conditional request, so a runner never overwrites a
state object another runner wrote after its own ``load``:

* ``save`` sends ``If-Match: <ETag seen at load>`` (``If-None-Match: *`` when the object did not
  exist). A lost race (412 Precondition Failed, or 409 ConditionalRequestConflict for two writes
  in flight) raises :class:`~tlsarotate.errors.StateError` and writes nothing. (A runner that
  loaded the latest object may still save over it: that is what the lock is for.)
* ``lock`` creates the lock object with ``If-None-Match: *``. Its body names the holder and an
  expiry time; while held, a background thread extends the expiry (``If-Match`` on its own
  ETag). A lock whose holder died is broken after its expiry by overwriting it with ``If-Match``
  on the stale ETag, so of several runners breaking it at once exactly one wins. A holder whose
  lease was taken over (its heartbeat's ``If-Match`` fails) is told at its next ``save``, which
  raises :class:`~tlsarotate.errors.StateError` instead of writing. Release is a
  ``DeleteObject`` with ``If-Match`` on the holder's current ETag: a lock somebody else has
  taken over is never deleted.

The clock is injectable (tests); expiry times are wall-clock seconds since the epoch, compared
across machines, so the lease is long (minutes) compared with any sane clock skew.
No credential ever appears in a message: errors name ``s3://bucket/key`` and the S3 error code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from tlsarotate import aws
from tlsarotate.clock import Clock, SystemClock
from tlsarotate.errors import LockTimeout, StateError
from tlsarotate.state import State, check_service_name, encode, from_stored

__all__ = ["DEFAULT_LEASE", "S3StateStore"]

log = logging.getLogger("tlsarotate.state")

DEFAULT_LEASE = 300.0  # seconds a lock lives without being refreshed by its holder
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3StateStore:
    """State objects in ``s3://bucket/prefix``; see the module docstring for the protocol."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "tlsarotate/",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        client: Any = None,
        clock: Clock | None = None,
        lease: float = DEFAULT_LEASE,
        holder: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.clock: Clock = clock or SystemClock()
        self.lease = lease
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etags: dict[str, str | None] = {}  # service -> ETag seen at load (None: absent)
        self._held: dict[str, _Held] = {}  # service -> the lease this store holds on it
        self._client = client
        self._client_args = (region, endpoint_url, profile)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            region, endpoint_url, profile = self._client_args
            try:
                self._client = aws.client(
                    "s3", profile=profile, region=region, endpoint_url=endpoint_url
                )
            except ImportError:
                raise StateError(
                    "state backend s3 needs boto3: pip install 'tlsarotate[s3]'"
                ) from None
            except aws.ClientSetupError as e:
                text = str(e)
                text = text if len(text) <= 200 else text[:199] + "…"
                raise StateError(
                    f"s3://{self.bucket}/{self.prefix}: cannot set up the S3 client: {text}"
                ) from None
        return self._client

    def _key(self, service: str, ext: str) -> str:
        check_service_name(service, "state object")
        return f"{self.prefix}{service}.{ext}"

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _error(self, key: str, what: str, e: Exception) -> StateError:
        code = _code(e)
        detail = code or type(e).__name__
        return StateError(f"{self._url(key)}: cannot {what} ({detail})")

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """(body, ETag) or None when the object does not exist."""
        client = self.client
        try:
            r = client.get_object(Bucket=self.bucket, Key=key)
            return r["Body"].read(), r["ETag"]
        except Exception as e:
            if _code(e) in _MISSING:
                return None
            raise self._error(key, "read state", e) from None

    def _put(self, key: str, body: bytes, *, if_match: str | None) -> str | None:
        """Conditional put; the new ETag, or None when the precondition failed."""
        cond = {"IfMatch": if_match} if if_match is not None else {"IfNoneMatch": "*"}
        client = self.client
        try:
            r = client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                **cond,
            )
        except Exception as e:
            if _code(e) in _CONFLICT or (if_match is not None and _code(e) in _MISSING):
                return None
            raise self._error(key, "write state", e) from None
        etag: str = r["ETag"]
        return etag

    # -- StateStore interface ---------------------------------------------------------------

    def load(self, service: str) -> State:
        key = self._key(service, "json")
        got = self._get(key)
        if got is None:
            self._etags[service] = None
            return State(service, rebuilt="no state object yet")
        raw, etag = got
        self._etags[service] = etag
        return from_stored(service, f"state object {self._url(key)}", raw)

    def save(self, st: State) -> None:
        """Write ``st`` only if nobody else wrote the object since our ``load``, and never
        once the lease on the service was lost to another runner."""
        key = self._key(st.service, "json")
        held = self._held.get(st.service)
        if held is not None and (held.lost or self.clock.now() >= held.expires):
            why = (
                "lost the lock for {} to another runner; stopping"
                if held.lost
                else "the lock for {} expired (its lease could not be extended); stopping"
            )
            lock_url = self._url(self._key(st.service, "lock"))
            raise StateError(f"{why.format(st.service)} ({lock_url})")
        seen = self._etags.get(st.service)
        new = self._put(key, encode(st), if_match=seen)
        if new is None:
            raise StateError(
                f"state for service {st.service!r} changed underneath (another runner?); re-run "
                f"({self._url(key)})"
            )
        self._etags[st.service] = new

    @contextlib.contextmanager
    def lock(self, service: str, timeout: float) -> Iterator[None]:
        """Exclusive per-service lease; waits up to ``timeout`` seconds for another holder."""
        key = self._key(service, "lock")
        etag, expires = self._acquire(service, key, timeout)
        held = _Held(etag, expires)
        self._held[service] = held
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(key, held, stop), name=f"s3lock-{service}", daemon=True
        )
        beat.start()
        try:
            yield
        except BaseException:
            # the work failed: release, but a failing release must not hide why
            stop.set()
            beat.join()
            try:
                self._release(key, held)
            except StateError as e:
                log.warning("%s", e)
            raise
        else:
            stop.set()
            beat.join()
            self._release(key, held)
        finally:
            if self._held.get(service) is held:
                del self._held[service]

    # -- locking ----------------------------------------------------------------------------

    def _body(self, now: float) -> bytes:
        doc = {"holder": self.holder, "acquired": now, "expires": now + self.lease}
        return json.dumps(doc, sort_keys=True).encode()

    def _acquire(self, service: str, key: str, timeout: float) -> tuple[str, float]:
        """The lock object's ETag and the expiry it carries."""
        deadline = self.clock.now() + timeout
        while True:
            now = self.clock.now()
            etag = self._put(key, self._body(now), if_match=None)
            if etag is not None:
                return etag, now + self.lease
            got = self._get(key)
            holder: str | None = None
            pause = 0.05  # released, or broken by someone else, meanwhile: look again soon
            if got is not None:
                raw, stale_etag = got
                holder, expires = _parse_lock(raw)
                if expires is None or self.clock.now() > expires:
                    # Expired (or unreadable): take it over; of several breakers one wins.
                    now = self.clock.now()
                    etag = self._put(key, self._body(now), if_match=stale_etag)
                    if etag is not None:
                        log.warning(
                            "broke the stale lock %s of %s (expired)", self._url(key), holder or "?"
                        )
                        return etag, now + self.lease
                else:
                    pause = 0.5
            # every way round the loop passes the deadline check
            if self.clock.now() >= deadline:
                raise LockTimeout(
                    f"service {service!r} is locked by another tlsarotate ({holder or '?'}) "
                    f"({self._url(key)}); gave up after {timeout:g}s (--lock-timeout)"
                )
            self.clock.sleep(min(pause, max(0.01, deadline - self.clock.now())))

    def _heartbeat(self, key: str, held: _Held, stop: threading.Event) -> None:
        interval = max(0.05, self.lease / 3)
        while not stop.wait(interval):
            try:
                now = self.clock.now()
                new = self._put(key, self._body(now), if_match=held.etag)
            except StateError as e:
                log.warning("could not extend the lock %s: %s", self._url(key), e)
                continue
            if new is None:
                log.warning("lost the lock %s to another runner (it expired)", self._url(key))
                held.lost = True  # the next save refuses to write
                held.etag = None
                return
            held.etag, held.expires = new, now + self.lease

    def _release(self, key: str, held: _Held) -> None:
        if held.etag is None:
            return
        client = self.client
        try:
            client.delete_object(Bucket=self.bucket, Key=key, IfMatch=held.etag)
        except Exception as e:
            if _code(e) in _CONFLICT or _code(e) in _MISSING:
                log.warning("the lock %s was taken over before release", self._url(key))
                return
            raise self._error(key, "release the lock", e) from None


class _Held:
    """A lease this store holds; the heartbeat thread updates ``etag`` and sets ``lost``."""

    def __init__(self, etag: str | None, expires: float) -> None:
        self.etag = etag
        self.expires = expires  # the expiry written in the lock object last
        self.lost = False


def _parse_lock(raw: bytes) -> tuple[str | None, float | None]:
    try:
        doc = json.loads(raw.decode("utf-8"))
        holder = str(doc["holder"])
        expires = float(doc["expires"])
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None, None
    return holder, expires


def _code(e: Exception) -> str | None:
    code, _, status = aws.error_code(e)
    return code or (str(status) if status else None)
