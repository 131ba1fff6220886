"""A local fake of the Cloudflare v4 DNS API, written from the public API documentation.

No Cloudflare emulator exists in the package registries, so this is the test double for
``tlsarotate/providers/cloudflare.py``. It serves, on 127.0.0.1 at a free port, in a thread:

- ``GET /zones?name=`` (zone lookup),
- ``GET /zones/{id}/dns_records`` with ``type``/``name`` filters and ``page``/``per_page``
  pagination (``result_info.total_pages``),
- ``POST /zones/{id}/dns_records/batch`` with ``deletes``, ``patches``, ``puts``, ``posts``,
  executed in that order, all-or-nothing, refusing more than ``batch_limit`` operations,
- bearer-token checks (401 with Cloudflare's error envelope, code 10000),
- TLSA ``data.certificate`` and ``content`` answered in upper-case hex, like the real API,
- ``throttle(n, retry_after)``: the next n requests answer 429 with ``Retry-After``,
- ``fail_batches(n, status, commit)``: the next n batch POSTs answer ``status`` (a 5xx), after
  carrying the batch out (``commit=True``: the answer is lost) or without carrying it out,
- ``log``: every request (method, path, query, JSON body) to count writes.

Error codes used: 10000 authentication error, 7003 unknown zone identifier, 81044 record does
not exist, 81058 identical record already exists, 971 rate limited, 1004 DNS validation error
(also for a batch over the limit: the documentation gives the per-plan limits, not the code),
9021 TTL out of range.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

API_PREFIX = "/client/v4"


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeCloudflare:
    tokens: set[str] = field(default_factory=lambda: {"good-token"})
    batch_limit: int = 200
    zones: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)
    _throttle: int = 0
    _retry_after: str | None = "1"
    _status: int = 429
    _batch_fail: int = 0
    _batch_fail_status: int = 502
    _batch_fail_commit: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- test-side helpers ------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}{API_PREFIX}"

    def add_zone(self, name: str) -> str:
        zid = uuid.uuid4().hex
        with self._lock:
            self.zones[zid] = {"id": zid, "name": name.rstrip(".").lower(), "status": "active"}
            self.records[zid] = {}
        return zid

    def put_record(self, zone_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a record behind the client's back (a 'second writer')."""
        with self._lock:
            rec = self._build(zone_id, body, None)
            self.records[zone_id][rec["id"]] = rec
            return copy.deepcopy(rec)

    def delete_record(self, zone_id: str, rec_id: str) -> None:
        with self._lock:
            del self.records[zone_id][rec_id]

    def list_records(self, zone_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self.records[zone_id].values()))

    def throttle(self, times: int, retry_after: str | None = "1", status: int = 429) -> None:
        """The next ``times`` requests answer ``status`` (429 or a 5xx) with ``Retry-After``."""
        with self._lock:
            self._throttle, self._retry_after, self._status = times, retry_after, status

    def fail_batches(self, times: int, status: int = 502, commit: bool = True) -> None:
        """The next ``times`` batch POSTs answer ``status``, carried out first if ``commit``."""
        with self._lock:
            self._batch_fail, self._batch_fail_status = times, status
            self._batch_fail_commit = commit

    def writes(self) -> int:
        return sum(1 for entry in self.log if entry.method != "GET")

    def reset(self) -> None:
        with self._lock:
            self.zones.clear()
            self.records.clear()
            self.log.clear()
            self._throttle = 0
            self._batch_fail = 0
            self.tokens = {"good-token"}
            self.batch_limit = 200

    # -- server -----------------------------------------------------------------------------

    def start(self) -> FakeCloudflare:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                status, headers, payload = fake.dispatch(
                    method, parts.path, query, body, self.headers.get("Authorization", "")
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)
            self._server = None

    # -- API --------------------------------------------------------------------------------

    @staticmethod
    def envelope(
        result: Any = None,
        errors: list[dict[str, Any]] | None = None,
        info: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "success": not errors,
            "errors": errors or [],
            "messages": [],
            "result": result,
        }
        if info is not None:
            out["result_info"] = info
        return out

    def dispatch(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, auth: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.log.append(Logged(method, path, query, copy.deepcopy(body)))
            if self._throttle > 0:
                self._throttle -= 1
                headers = {"Retry-After": self._retry_after} if self._retry_after else {}
                if self._status == 429:
                    err = {
                        "code": 971,
                        "message": "Please wait and consider throttling your request speed",
                    }
                else:
                    err = {"code": 10001, "message": "service temporarily unavailable"}
                return self._status, headers, self.envelope(errors=[err])
            scheme, _, token = auth.partition(" ")
            if scheme != "Bearer" or token not in self.tokens:
                return (
                    401,
                    {},
                    self.envelope(errors=[{"code": 10000, "message": "Authentication error"}]),
                )
            try:
                if self._batch_fail > 0 and method == "POST" and path.endswith("/batch"):
                    self._batch_fail -= 1
                    if self._batch_fail_commit:
                        self._route(method, path, query, body)
                    err = {"code": 10001, "message": "bad gateway"}
                    return self._batch_fail_status, {}, self.envelope(errors=[err])
                return 200, {}, self._route(method, path, query, body)
            except ApiError as e:
                return e.status, {}, self.envelope(errors=[{"code": e.code, "message": e.message}])

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> dict[str, Any]:
        if not path.startswith(API_PREFIX):
            raise ApiError(404, 7000, "No route for that URI")
        parts = path[len(API_PREFIX) :].strip("/").split("/")
        if parts == ["zones"] and method == "GET":
            name = (query.get("name") or [""])[0].lower()
            zones = [z for z in self.zones.values() if not name or z["name"] == name]
            return self._paged(zones, query)
        if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records":
            zid = parts[1]
            if zid not in self.zones:
                raise ApiError(
                    404,
                    7003,
                    f"Could not route to /zones/{zid}/dns_records, "
                    "perhaps your object identifier is invalid?",
                )
            if len(parts) == 3 and method == "GET":
                recs = sorted(self.records[zid].values(), key=lambda r: (r["name"], r["id"]))
                if "type" in query:
                    recs = [r for r in recs if r["type"] == query["type"][0].upper()]
                if "name" in query:
                    want = query["name"][0].rstrip(".").lower()
                    recs = [r for r in recs if r["name"] == want]
                return self._paged(copy.deepcopy(recs), query)
            if len(parts) == 4 and parts[3] == "batch" and method == "POST":
                return self.envelope(self._batch(zid, body or {}))
        raise ApiError(404, 7000, "No route for that URI")

    @staticmethod
    def _paged(items: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            page = max(1, int((query.get("page") or ["1"])[0]))
            per_page = min(5000, max(5, int((query.get("per_page") or ["100"])[0])))
        except ValueError:
            raise ApiError(400, 1004, "DNS Validation Error: invalid page or per_page") from None
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        }
        return FakeCloudflare.envelope(chunk, info=info)

    def _build(self, zid: str, body: dict[str, Any], rec_id: str | None) -> dict[str, Any]:
        zone = self.zones[zid]
        name = str(body.get("name", "")).rstrip(".").lower()
        if name != zone["name"] and not name.endswith("." + zone["name"]):
            raise ApiError(400, 1004, f"DNS Validation Error: {name} is not in {zone['name']}")
        rtype = str(body.get("type", "")).upper()
        # the API's range: 1 ("automatic", stored and answered as 1, served as 300) or
        # 60-86400 (30 on Enterprise zones; the fake's zones are not); code 9021 as answered
        ttl = int(body.get("ttl", 1))
        if ttl != 1 and not 60 <= ttl <= 86400:
            raise ApiError(
                400, 9021, "TTL must be between 60 and 86400 seconds, or 1 for Automatic."
            )
        data = body.get("data")
        content = body.get("content")
        if rtype == "TLSA":
            if not isinstance(data, dict):
                raise ApiError(400, 1004, "DNS Validation Error: TLSA records need data")
            try:
                cert = str(data["certificate"])
                bytes.fromhex(cert)
                data = {
                    "usage": int(data["usage"]),
                    "selector": int(data["selector"]),
                    "matching_type": int(data["matching_type"]),
                    "certificate": cert.upper(),
                }
            except (KeyError, ValueError, TypeError):
                raise ApiError(400, 1004, "DNS Validation Error: invalid TLSA data") from None
            content = (
                f"{data['usage']} {data['selector']} {data['matching_type']} {data['certificate']}"
            )
        elif content is None:
            raise ApiError(400, 1004, "DNS Validation Error: content is required")
        rec = {
            "id": rec_id or uuid.uuid4().hex,
            "zone_id": zid,
            "zone_name": zone["name"],
            "name": name,
            "type": rtype,
            "content": content,
            "ttl": ttl,
            "proxiable": False,
            "proxied": False,
            "locked": False,
            "meta": {},
            "comment": body.get("comment"),
            "tags": body.get("tags", []),
            "created_on": "2026-01-01T00:00:00Z",
            "modified_on": "2026-01-01T00:00:00Z",
        }
        if data is not None:
            rec["data"] = data
        for other in self.records[zid].values():
            if other["id"] != rec["id"] and (other["name"], other["type"], other["content"]) == (
                rec["name"],
                rec["type"],
                rec["content"],
            ):
                raise ApiError(400, 81058, "An identical record already exists.")
        return rec

    def _batch(self, zid: str, body: dict[str, Any]) -> dict[str, Any]:
        ops = sum(len(body.get(k) or []) for k in ("deletes", "patches", "puts", "posts"))
        if ops > self.batch_limit:
            raise ApiError(
                400,
                1004,
                f"DNS Validation Error: the batch holds {ops} operations, "
                f"more than the limit of {self.batch_limit}",
            )
        saved = self.records[zid]
        self.records[zid] = work = copy.deepcopy(saved)
        result: dict[str, list[Any]] = {"deletes": [], "patches": [], "puts": [], "posts": []}
        try:
            for d in body.get("deletes") or []:
                rec = work.pop(str(d.get("id")), None)
                if rec is None:
                    raise ApiError(404, 81044, "Record does not exist.")
                result["deletes"].append(rec)
            for p in body.get("patches") or []:
                old = work.get(str(p.get("id")))
                if old is None:
                    raise ApiError(404, 81044, "Record does not exist.")
                merged = {**old, **{k: v for k, v in p.items() if k != "id"}}
                work[old["id"]] = self._build(zid, merged, old["id"])
                result["patches"].append(work[old["id"]])
            for p in body.get("puts") or []:
                if str(p.get("id")) not in work:
                    raise ApiError(404, 81044, "Record does not exist.")
                work[p["id"]] = self._build(zid, p, str(p["id"]))
                result["puts"].append(work[p["id"]])
            for p in body.get("posts") or []:
                rec = self._build(zid, p, None)
                work[rec["id"]] = rec
                result["posts"].append(rec)
        except ApiError:
            self.records[zid] = saved  # all-or-nothing
            raise
        return copy.deepcopy(result)


@pytest.fixture(scope="session")
def cf_server() -> Iterator[FakeCloudflare]:
    """The fake API on 127.0.0.1 for the whole session; tests call ``reset()`` first."""
    fake = FakeCloudflare().start()
    try:
        yield fake
    finally:
        fake.stop()
