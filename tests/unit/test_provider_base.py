"""The shared provider workflow (tlsarotate.providers.base) and the retry helper
(tlsarotate.retry), with a tiny in-test provider: no servers, no files but tmp_path."""

from __future__ import annotations

import random
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dns.name
import pytest

from tests.support.helpers import rrset
from tlsarotate.change import OwnerChange, TlsaRRset, ZoneChange
from tlsarotate.clock import FakeClock
from tlsarotate.errors import ConcurrentChangeError, ConfigError, ProviderError
from tlsarotate.providers import base
from tlsarotate.providers.base import (
    Capabilities,
    Option,
    Provider,
    ProviderContext,
    WriteResult,
    WriteToken,
)
from tlsarotate.retry import backoff_delay, retrying

ZONE = dns.name.from_text("example.test.")


def owner(i: int) -> dns.name.Name:
    return dns.name.from_text(f"_25._tcp.mx{i}.example.test.")


@dataclass(frozen=True)
class Part(WriteToken):
    n: int


class Tiny(Provider):
    """Records in a dict; ``size`` owners a part; ``fail`` maps a part number (1-based) to the
    error its write raises."""

    type_name: ClassVar[str] = "tiny"
    options: ClassVar[Mapping[str, Option]] = {
        "size": Option(int, default=100, min=1, help="owners per part"),
        "file": Option(str, path=True, help="a file"),
    }
    capabilities: ClassVar[Capabilities] = Capabilities(prerequisites=False)

    def __init__(self, name: str, options: Mapping[str, Any], context: ProviderContext) -> None:
        super().__init__(name, options, context)
        self.data: dict[dns.name.Name, TlsaRRset] = {}
        self.reads = 0
        self.written: list[ZoneChange] = []
        self.after: list[int] = []
        self.fail: dict[int, ProviderError] = {}

    def read(
        self, zone: dns.name.Name, owners: Sequence[dns.name.Name]
    ) -> dict[dns.name.Name, TlsaRRset]:
        self.reads += 1
        return {o: self.data[o] for o in owners if o in self.data}

    def parts(self, change: ZoneChange) -> list[ZoneChange]:
        k = int(self.opts["size"])
        chs = change.changes
        return [ZoneChange(change.zone, chs[i : i + k]) for i in range(0, len(chs), k)]

    def write(self, part: ZoneChange) -> Part:
        n = len(self.written) + 1
        if n in self.fail:
            raise self.fail[n]
        for ch in part.changes:
            if ch.new is None:
                self.data.pop(ch.owner, None)
            else:
                self.data[ch.owner] = ch.new
        self.written.append(part)
        return Part(n)

    def after_part(self, part: ZoneChange, token: WriteToken) -> None:
        assert isinstance(token, Part)
        self.after.append(token.n)


class Native(Tiny):
    """The same backend, claiming native prerequisites: the base reads nothing first."""

    type_name: ClassVar[str] = "native"
    capabilities: ClassVar[Capabilities] = Capabilities(prerequisites=True)


def tiny(cls: type[Tiny] = Tiny, **options: Any) -> Tiny:
    return cls("t", options, ProviderContext(base_dir=Path("/base"), clock=FakeClock()))


def adds(n: int) -> ZoneChange:
    return ZoneChange(ZONE, tuple(OwnerChange(owner(i), None, rrset(i)) for i in range(n)))


# ------------------------------------------------------------------------------ the workflow


@pytest.mark.parametrize(
    ("owners", "size", "parts"),
    [(1, 100, 1), (5, 5, 1), (5, 2, 3), (6, 2, 3), (7, 3, 3), (3, 1, 3)],
)
def test_split_into_parts_in_order(owners: int, size: int, parts: int) -> None:
    p = tiny(size=size)
    result = p.apply(adds(owners))
    assert [len(w.changes) for w in p.written] == [
        min(size, owners - k) for k in range(0, owners, size)
    ]
    assert [c.owner for w in p.written for c in w.changes] == [owner(i) for i in range(owners)]
    assert result == WriteResult(tuple(Part(n) for n in range(1, parts + 1)))
    assert p.after == list(range(1, parts))  # between parts, never after the last
    assert p.reads == 1  # one read for the prerequisites


@pytest.mark.parametrize(
    ("fail_at", "error", "unit", "want"),
    [
        (
            2,
            ProviderError("the write timed out"),
            "part",
            "provider 't' (tiny): the write timed out (part 2 of 3; the 1 before it were applied)",
        ),
        (
            3,
            ProviderError("HTTP 502"),
            "UPDATE",
            "provider 't' (tiny): HTTP 502 (UPDATE 3 of 3; the 2 before it were applied)",
        ),
        (
            2,
            ConcurrentChangeError("the TLSA RRset at X changed since it was read"),
            "batch",
            "provider 't' (tiny): the TLSA RRset at X changed since it was read; this part was "
            "not written; re-run to re-plan (batch 2 of 3; the 1 before it were applied)",
        ),
        (
            1,
            ConcurrentChangeError("the TLSA RRset at X changed since it was read"),
            "part",
            "provider 't' (tiny): the TLSA RRset at X changed since it was read; nothing was "
            "written; re-run to re-plan",
        ),
        (1, ProviderError("refused"), "part", "provider 't' (tiny): refused"),
    ],
)
def test_failure_in_a_part_is_one_line_from_fields(
    monkeypatch: pytest.MonkeyPatch, fail_at: int, error: ProviderError, unit: str, want: str
) -> None:
    p = tiny(size=2)
    monkeypatch.setattr(p, "part_unit", unit)
    p.fail[fail_at] = error
    with pytest.raises(ProviderError) as ei:
        p.apply(adds(6))
    e = ei.value
    assert str(e) == want
    assert "\n" not in str(e)
    assert (e.provider, e.ptype) == ("t", "tiny")
    written = fail_at - 1
    assert e.written == written and len(p.written) == written
    if written:
        assert (e.part, e.parts, e.unit) == (fail_at, 3, unit)
    else:
        assert e.part is None


def test_prerequisites_checked_first_without_native_ones() -> None:
    p = tiny()
    p.data[owner(0)] = rrset(9)  # someone else wrote it since our read
    stay = OwnerChange(owner(1), rrset(1), rrset(1))
    p.data[owner(1)] = rrset(1)
    change = ZoneChange(ZONE, (OwnerChange(owner(0), rrset(5), rrset(6)), stay))
    with pytest.raises(ConcurrentChangeError) as ei:
        p.apply(change)
    assert str(ei.value) == (
        f"provider 't' (tiny): the TLSA RRset at {owner(0)} changed since it was read "
        "(expected 1 record(s), TTL 300, found 1 record(s), TTL 300); nothing was written; "
        "re-run to re-plan"
    )
    assert p.written == []
    # in step: the owners that stay are checked but not written
    p.data[owner(0)] = rrset(5)
    p.apply(change)
    assert [c.owner for w in p.written for c in w.changes] == [owner(0)]


def test_native_prerequisites_leave_the_check_to_the_backend() -> None:
    p = tiny(Native)
    stay = OwnerChange(owner(1), rrset(1), rrset(1))
    change = ZoneChange(ZONE, (OwnerChange(owner(0), rrset(5), rrset(6)), stay))
    p.apply(change)
    assert p.reads == 0
    assert p.written == [change]  # the whole change: the staying owner carries its prerequisite


def test_default_parts_follow_max_changes_per_write() -> None:
    class Limited(Native):
        capabilities: ClassVar[Capabilities] = Capabilities(max_changes_per_write=2)

        parts = Provider.parts  # the base's own

    p = tiny(Limited)
    p.apply(adds(5))
    assert [len(w.changes) for w in p.written] == [2, 2, 1]
    q = tiny(Native)  # no limit: one part
    q.apply(adds(5))
    assert [len(w.changes) for w in q.written] == [5]


@pytest.mark.parametrize("cls", [Tiny, Native])
def test_nothing_to_change_writes_nothing(cls: type[Tiny]) -> None:
    p = tiny(cls)
    stay = ZoneChange(ZONE, (OwnerChange(owner(1), rrset(1), rrset(1)),))
    assert p.apply(stay) == WriteResult()
    assert p.apply(ZoneChange(ZONE, ())) == WriteResult()
    assert (p.reads, p.written) == (0, [])


def test_errors_from_read_and_parts_name_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    p = tiny()

    def broken_read(zone: Any, owners: Any) -> Any:
        raise ProviderError("cannot read")

    monkeypatch.setattr(p, "read", broken_read)
    with pytest.raises(ProviderError) as ei:
        p.apply(adds(1))
    assert str(ei.value) == "provider 't' (tiny): cannot read"
    assert str(ProviderError("engine level")) == "engine level"  # no provider: no prefix


# ---------------------------------------------------------------------- options, constructor


@pytest.mark.parametrize(
    ("opt", "value", "problem"),
    [
        (Option(int), 5, None),
        (Option(int), True, "expected int, got True"),
        (Option(int), "5", "expected int, got '5'"),
        (Option((int, float)), 2, None),
        (Option(float), 2, None),
        (Option(bool), True, None),
        (Option(str, choices=("a", "b")), "c", "must be one of a, b"),
        (Option(int, min=1, max=65535), 0, "expected 1 to 65535, got 0"),
        (Option(int, min=1, max=65535), 65535, None),
        (Option(int, min=1, max=65535), 70000, "expected 1 to 65535, got 70000"),
        (Option(float, min=0, min_open=True, max=300), 0, "expected more than 0 to 300, got 0"),
        (Option(float, min=0, min_open=True, max=300), 0.1, None),
        (Option(int, min=1), 0, "expected at least 1, got 0"),
        (Option(float, min=0, min_open=True), 0.0, "expected more than 0, got 0.0"),
        (Option(int, max=3), 4, "expected at most 3, got 4"),
        (Option(str, path=True), Path("x"), None),
        (Option(str), Path("x"), "expected str, got PosixPath('x')"),
        (Option(list), ["a"], None),
    ],
)
def test_option_problem(opt: Option, value: Any, problem: str | None) -> None:
    assert opt.problem(value) == problem


def test_constructor_fills_defaults_resolves_paths_checks_values() -> None:
    p = tiny(file="rel/x.key")
    assert p.opts == {"size": 100, "file": Path("/base/rel/x.key")}
    assert tiny(file="/abs/x.key").opts["file"] == Path("/abs/x.key")
    with pytest.raises(ConfigError) as ei:
        tiny(size=0)
    assert str(ei.value) == "provider t: size: expected at least 1, got 0"


# ------------------------------------------------------------------------------------ retry


class Flaky:
    """Raises ``errors`` in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class SleepLog(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        super().sleep(seconds)


def run(fn: Callable[[], str], attempts: int, **kw: Any) -> tuple[str, SleepLog]:
    clock = SleepLog()
    out = retrying(
        "the call",
        fn,
        attempts=attempts,
        retry_on=(TimeoutError,),
        clock=clock,
        rng=random.Random(7),
        base=kw.pop("base", 0.5),
        cap=kw.pop("cap", 4.0),
        **kw,
    )
    return out, clock


@pytest.mark.parametrize(("failures", "attempts"), [(0, 1), (1, 3), (2, 3), (6, 7)])
def test_retry_until_it_answers(failures: int, attempts: int) -> None:
    fn = Flaky(*[TimeoutError()] * failures)
    out, clock = run(fn, attempts)
    assert (out, fn.calls, len(clock.slept)) == ("ok", failures + 1, failures)
    for k, d in enumerate(clock.slept):  # jittered, capped exponential: [d/2, d]
        top = min(4.0, 0.5 * 2**k)
        assert top / 2 <= d <= top
    rng = random.Random(7)  # the same seed draws the same jitter, in order
    assert clock.slept == [backoff_delay(k, 0.5, 4.0, rng) for k in range(failures)]


def test_retry_is_reproducible_with_a_seeded_rng() -> None:
    a = run(Flaky(*[TimeoutError()] * 4), 5)[1].slept
    b = run(Flaky(*[TimeoutError()] * 4), 5)[1].slept
    assert a == b


def test_retry_gives_up_with_the_last_error() -> None:
    fn = Flaky(TimeoutError("first"), TimeoutError("second"), TimeoutError("third"))
    with pytest.raises(TimeoutError, match=r"^third$"):
        run(fn, 3)
    assert fn.calls == 3


def test_retry_does_not_retry_other_errors() -> None:
    fn = Flaky(ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        run(fn, 5)
    assert fn.calls == 1


def test_retry_honours_the_delay_an_error_asks_for() -> None:
    fn = Flaky(TimeoutError("retry-after 7"), TimeoutError("no hint"))
    asked: Callable[[BaseException], float | None] = lambda e: 7.0 if "7" in str(e) else None  # noqa: E731
    _, clock = run(fn, 3, delay=asked)
    assert clock.slept[0] == 7.0
    assert 0.5 <= clock.slept[1] <= 1.0  # the second retry's own backoff


def test_provider_retry_message_from_rfc2136_wording() -> None:
    """A provider words the final failure itself, on its context's clock."""
    p = tiny()
    clock = p.context.clock
    t0 = clock.now()
    fn = Flaky(*[TimeoutError()] * 3)
    with pytest.raises(TimeoutError):
        p.retrying("the UPDATE", fn, attempts=3, retry_on=(TimeoutError,), base=1.0, cap=8.0)
    assert 1.5 <= clock.now() - t0 <= 3.0  # two backoffs: [0.5, 1] + [1, 2]


# ---------------------------------------------------------------- the README's worked example


def test_readme_example_provider_works(tmp_path: Path) -> None:
    doc = base.__doc__ or ""
    code = textwrap.dedent(doc.split("written whole::\n", 1)[1].split("\nRegister it", 1)[0])
    namespace: dict[str, Any] = {}
    exec(compile(code, "README example", "exec"), namespace)
    cls = namespace["JsonProvider"]
    (tmp_path / "zones.json").write_text("{}")
    p = cls("j", {"path": "zones.json"}, ProviderContext(base_dir=tmp_path))
    a, b = owner(1), owner(2)
    p.apply(ZoneChange(ZONE, (OwnerChange(a, None, rrset(1)), OwnerChange(b, None, rrset(2)))))
    assert p.read(ZONE, [a, b]) == {a: rrset(1), b: rrset(2)}
    p.apply(ZoneChange(ZONE, (OwnerChange(a, rrset(1), None),)))
    assert p.read(ZONE, [a, b]) == {b: rrset(2)}
    with pytest.raises(ConcurrentChangeError, match=re.escape(f"at {a} changed")):
        p.apply(ZoneChange(ZONE, (OwnerChange(a, rrset(1), rrset(3)),)))  # stale: a is gone
    assert len(code.strip().splitlines()) <= 40
