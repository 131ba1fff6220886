"""Never swap in what a client will reject: a next certificate that is expired, not valid yet,
expiring within next_min_days, without the service's names, or not signed by the CA its 2 x x
records pin is not installed -- the plan is blocked with one line naming the certificate and
the reason (for usage 3 only, a name mismatch is a note). Planner-level table tests, then the
same through validate / plan / apply / check on the command line."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.name
import pytest

from tests.support.helpers import assert_one_line_error, run_cli
from tlsarotate import certfiles, demo, material, phases, pki, planner, records
from tlsarotate.change import TlsaRRset, published_digest
from tlsarotate.observation import Observation, ServerAnswer
from tlsarotate.state import State

NOW = 1_800_000_000.0
DAY = 86400.0
HOST = "mx.example.test"
ZONE = dns.name.from_text("example.test.")
OWNER = records.owner_name(HOST, 25)


def _at(offset_days: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(NOW + offset_days * DAY, dt.timezone.utc)


CA = pki.make_ca("swap sanity CA", days=3650, not_before=_at(-400))
# another CA with the very same name: a chain file can hold it after the leaf in good order
IMPOSTOR = pki.make_ca("swap sanity CA", days=3650, not_before=_at(-400))


def _material(leaf: pki.Issued, *cas: pki.Issued, name: str = "next.pem") -> material.Material:
    return material.parse(pki.fullchain_pem(leaf, *cas), name)


def _leaf(
    names: tuple[str, ...] = (HOST,), start: float = -10, days: float = 90, ca: pki.Issued = CA
) -> pki.Issued:
    return pki.make_leaf(ca, list(names), not_before=_at(start), days=days)  # type: ignore[arg-type]


DEPLOYED = _material(_leaf(), CA, name="deployed.pem")


def _input(
    nxt: material.Material,
    params: tuple[str, ...] = ("3 1 1",),
    min_validity: float = DAY,
    extra: tuple[planner.SlotInput, ...] = (),
) -> planner.PlanInput:
    """A service whose published RRset (visible long since) holds the records of both the
    deployed and the next certificate: everything but the certificate itself says swap."""
    ps = tuple(records.parse_params(p) for p in params)
    slots = (planner.SlotInput("default", DEPLOYED, nxt), *extra)
    recs = {rd for s in slots for m in (s.deployed, s.next) if m for rd in records.build_all(m, ps)}
    published = {OWNER: TlsaRRset.of(300, recs)}
    answer = ServerAnswer("ns1", "192.0.2.1", rrsets=published, signed={OWNER: True})
    st = State(
        "mail",
        digest=published_digest(published, (OWNER,)),
        visible_since=NOW - 10 * DAY,
        hold_ttl=300,
        ttl_seen=300,
    )
    return planner.PlanInput(
        service="mail",
        zone=ZONE,
        owners=(OWNER,),
        ttl=300,
        params=ps,
        slots=slots,
        published=published,
        observation=Observation(ZONE, (answer,), zone_signed=True),
        state=st,
        now=NOW,
        hosts=(HOST + ".",),
        min_validity=min_validity,
    )


@dataclass(frozen=True)
class Case:
    name: str
    next: material.Material
    params: tuple[str, ...]
    phase: str
    words: tuple[str, ...]  # in the summary (blocked) or a warning (swap)
    min_validity: float = DAY


CASES = [
    Case("fit", _material(_leaf(), CA), ("3 1 1",), phases.SWAP, ()),
    Case("fit for 2 1 1", _material(_leaf(), CA), ("3 1 1", "2 1 1"), phases.SWAP, ()),
    Case("wildcard", _material(_leaf(("*.example.test",)), CA), ("2 1 1",), phases.SWAP, ()),
    Case(
        "expired",
        _material(_leaf(start=-100, days=90), CA),
        ("3 1 1",),
        phases.BLOCKED,
        ("expired", "10d0h ago"),
    ),
    Case(
        "expires within the margin",
        _material(_leaf(start=-89.5, days=90), CA),
        ("3 1 1",),
        phases.BLOCKED,
        ("expires", "in 12h00m", "less than the 1d0h"),
    ),
    Case(
        "within a longer margin",
        _material(_leaf(start=-80, days=90), CA),
        ("3 1 1",),
        phases.BLOCKED,
        ("less than the 14d0h",),
        min_validity=14 * DAY,
    ),
    Case(
        "margin 0 accepts the last hours",
        _material(_leaf(start=-89.5, days=90), CA),
        ("3 1 1",),
        phases.SWAP,
        (),
        min_validity=0,
    ),
    Case(
        "not valid yet",
        _material(_leaf(start=0.5), CA),
        ("3 1 1",),
        phases.BLOCKED,
        ("not valid before", "in 12h00m", "clock"),
    ),
    Case(
        "wrong name, usage 2",
        _material(_leaf(("www.example.test",)), CA),
        ("3 1 1", "2 1 1"),
        phases.BLOCKED,
        ("does not name mx.example.test", "www.example.test", "usage 2"),
    ),
    Case(
        "wrong name, usage 1",
        _material(_leaf(("www.example.test",)), CA),
        ("1 1 1",),
        phases.BLOCKED,
        ("does not name mx.example.test", "usage 1"),
    ),
    Case(
        "wrong name, usage 3 only: a note",
        _material(_leaf(("www.example.test",)), CA),
        ("3 1 1", "3 0 1"),
        phases.SWAP,
        ("does not name mx.example.test", "DANE-EE (usage 3) clients ignore names", "PKIX"),
    ),
    Case(
        "wrong CA for 2 1 1",
        _material(_leaf(), IMPOSTOR),
        ("3 1 1", "2 1 1"),
        phases.BLOCKED,
        ("not signed by the CA certificate after it", "2 x x"),
    ),
    Case("wrong CA, usage 3 only", _material(_leaf(), IMPOSTOR), ("3 1 1",), phases.SWAP, ()),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_swap_only_what_clients_accept(case: Case) -> None:
    p = planner.plan(_input(case.next, case.params, case.min_validity))
    assert p.phase == case.phase, p.summary
    if case.phase == phases.BLOCKED:
        assert p.install == () and "\n" not in p.summary
        assert "next certificate 'default' (next.pem)" in p.summary
        for w in case.words:
            assert w in p.summary, p.summary
    else:
        assert p.install == ("default",)
        text = " ".join(p.warnings)
        for w in case.words:
            assert w in text, p.warnings
        if not case.words:
            assert p.warnings == ()


def test_not_valid_yet_says_when() -> None:
    p = planner.plan(_input(_material(_leaf(start=0.5), CA)))
    assert p.phase == phases.BLOCKED and p.ready_at == NOW + DAY / 2
    expired = planner.plan(_input(_material(_leaf(start=-100, days=90), CA)))
    assert expired.ready_at is None  # it will not get better by waiting


def test_a_fit_slot_swaps_and_the_unfit_one_is_named() -> None:
    other_dep = _material(_leaf(), CA, name="rsa-deployed.pem")
    bad = _material(_leaf(start=-100, days=90), CA, name="rsa-next.pem")
    inp = _input(_material(_leaf(), CA), extra=(planner.SlotInput("rsa", other_dep, bad),))
    p = planner.plan(inp)
    assert p.phase == phases.SWAP and p.install == ("default",)
    assert any("'rsa' (rsa-next.pem) expired" in w for w in p.warnings), p.warnings


def test_unfit_is_pure_and_lists_every_reason() -> None:
    m = _material(_leaf(("www.example.test",), start=-100, days=90), IMPOSTOR)
    why = material.unfit(m, NOW, (HOST,), {2, 3}, DAY)
    assert [u.blocking for u in why] == [True, True, True]
    assert [u.reason.split()[0] for u in why] == ["expired", "does", "the"]
    assert why == material.unfit(m, NOW, (HOST,), {2, 3}, DAY)
    # the bare key of a keep-ahead slot is no certificate to swap in
    key = material.parse(pki.key_pem(pki.new_key()), "next.key")
    assert "not a certificate" in material.unfit(key, NOW)[0].reason


# -- on the command line ---------------------------------------------------------------------


def _now_leaf(
    ca: pki.Issued, names: tuple[str, ...] = (HOST,), start: float = -1, days: float = 90
) -> pki.Issued:
    """A leaf valid from ``start`` days from the real now, for ``days``."""
    start_dt = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=start)
    return pki.make_leaf(ca, list(names), not_before=start_dt, days=days)  # type: ignore[arg-type]


@pytest.fixture
def demo_cfg(tmp_path: Path) -> Path:
    return demo.setup(tmp_path, ttl=1)


def _demo_ca() -> pki.Issued:
    """The demo's CA key is not on disk: a fresh CA of the same name signs the test's next
    certificates (its 2 x x records are published beside the deployed CA's)."""
    return pki.make_ca("tlsarotate demo CA")


def _put_next(cfg: Path, leaf: pki.Issued, *cas: pki.Issued) -> Path:
    d = cfg.parent / "live/mx.example.test"
    (d / "fullchain.pem").write_bytes(pki.fullchain_pem(leaf, *cas))
    (d / "privkey.pem").write_bytes(leaf.key_pem)
    return d / "fullchain.pem"


def _use_params(cfg: Path, params: str) -> None:
    cfg.write_text(cfg.read_text().replace('records: ["3 1 1", "3 0 1"]', f"records: {params}"))


BAD: dict[str, tuple[Callable[[pki.Issued], pki.Issued], str, str]] = {
    "expired": (lambda ca: _now_leaf(ca, start=-100, days=90), '["3 1 1", "3 0 1"]', "expired"),
    "not-valid-yet": (
        lambda ca: _now_leaf(ca, start=2),
        '["3 1 1", "3 0 1"]',
        "not valid before",
    ),
    "wrong-name": (
        lambda ca: _now_leaf(ca, names=("www.example.test",)),
        '["3 1 1", "2 1 1"]',
        "does not name mx.example.test",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_cli_refuses_to_swap_in_an_unfit_next_certificate(demo_cfg: Path, kind: str) -> None:
    make, params, words = BAD[kind]
    _use_params(demo_cfg, params)
    ca = _demo_ca()
    nxt = _put_next(demo_cfg, make(ca), ca)
    deployed = (demo_cfg.parent / "deployed/fullchain.pem").read_bytes()

    val = run_cli("-c", demo_cfg, "validate")
    assert_one_line_error(val, "service 'mail' certificate 'default'", "next certificate", words)

    plan = run_cli("-c", demo_cfg, "plan", "--output", "json")
    # the first step publishes its records (harmless); nothing says swap
    assert json.loads(plan.stdout)["services"][0]["phase"] == "publish", plan.stdout

    done = run_cli("-c", demo_cfg, "apply", "--wait", timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("mail: blocked"))
    assert "next certificate 'default'" in line and "live/mx.example.test" in line, line
    assert words in line, line
    assert (demo_cfg.parent / "deployed/fullchain.pem").read_bytes() == deployed

    again = run_cli("-c", demo_cfg, "plan")
    assert again.returncode == 1 and "mail: blocked" in again.stdout and words in again.stdout

    chk = run_cli("-c", demo_cfg, "check", "--no-live", "--next", nxt, "--output", "json")
    assert chk.returncode == 2, chk.stdout + chk.stderr  # CRITICAL
    doc = json.loads(chk.stdout)
    assert doc["next_gate"]["ok"] is False
    assert any(words in m for m in doc["next_gate"]["missing"]), doc["next_gate"]
    slot = doc["services"][0]["certificates"][0]
    assert slot["swap_readiness"]["ready"] is False
    assert words in slot["swap_readiness"]["detail"], slot["swap_readiness"]


def test_cli_wrong_ca_for_2_1_1(demo_cfg: Path) -> None:
    """The chain file holds a CA certificate with the right name but another key: its 2 1 1
    record would be published and match by digest, yet no DANE-TA client can build the path."""
    _use_params(demo_cfg, '["3 1 1", "2 1 1"]')
    ca = _demo_ca()
    impostor = pki.make_ca("tlsarotate demo CA")
    _put_next(demo_cfg, _now_leaf(ca), impostor)
    val = run_cli("-c", demo_cfg, "validate")
    assert_one_line_error(val, "next certificate", "not signed by the CA certificate after it")
    done = run_cli("-c", demo_cfg, "apply", "--wait", timeout=60)
    assert done.returncode == 1 and "mail: blocked" in done.stdout, done.stdout + done.stderr
    assert "2 x x" in done.stdout


def test_cli_wrong_name_usage_3_only_swaps_with_a_note(demo_cfg: Path) -> None:
    ca = _demo_ca()
    _put_next(demo_cfg, _now_leaf(ca, names=("www.example.test",)), ca)
    val = run_cli("-c", demo_cfg, "validate")
    assert val.returncode == 0, val.stderr
    assert "note: next certificate does not name mx.example.test" in val.stdout
    done = run_cli("-c", demo_cfg, "apply", "--wait", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: next certificate 'default'" in done.stdout
    assert "DANE-EE (usage 3) clients ignore names" in done.stdout
    new = certfiles.load_pair(
        demo_cfg.parent / "deployed/fullchain.pem", demo_cfg.parent / "deployed/privkey.pem"
    )
    assert material.unfit(new, dt.datetime.now().timestamp(), (HOST,))[0].blocking is False


def test_cli_next_min_days(demo_cfg: Path) -> None:
    ca = _demo_ca()
    _put_next(demo_cfg, _now_leaf(ca, start=-85, days=90), ca)  # 5 days left
    assert run_cli("-c", demo_cfg, "validate").returncode == 0  # the default: 1 day
    text = demo_cfg.read_text().replace("    ttl: 1\n", "    ttl: 1\n    next_min_days: 7\n")
    demo_cfg.write_text(text)
    val = run_cli("-c", demo_cfg, "validate")
    assert_one_line_error(val, "next certificate", "less than the 7d0h", "next_min_days")
    demo_cfg.write_text(text.replace("next_min_days: 7", "next_min_days: soon"))
    bad = run_cli("-c", demo_cfg, "validate")
    assert_one_line_error(bad, "next_min_days", "expected a number of days")


def test_cli_wrong_key_is_refused_by_every_command(demo_cfg: Path) -> None:
    """A next certificate whose private key is another one: one line in every command."""
    lineage = demo_cfg.parent / "live/mx.example.test"
    (lineage / "privkey.pem").write_bytes(pki.key_pem(pki.new_key()))
    zone = (demo_cfg.parent / "example.test.zone").read_text()
    for cmd in ("validate", "plan", "apply"):
        proc = run_cli("-c", demo_cfg, cmd)
        assert_one_line_error(proc, "privkey.pem", "does not belong")
    assert (demo_cfg.parent / "example.test.zone").read_text() == zone
    chk = run_cli("-c", demo_cfg, "check", "--no-live", "--output", "json")
    assert "does not belong" in chk.stdout and chk.returncode != 0


def test_cli_next_key_must_be_a_private_key_in_apply_too(demo_cfg: Path) -> None:
    """A certificate given as next_key.path was published as the next key's 3 1 1 by apply
    (only validate checked it): one loader, one set of checks, for every command."""
    cert = demo_cfg.parent / "deployed/fullchain.pem"
    other = demo_cfg.parent / "other.pem"
    shutil.copy(cert, other)
    demo_cfg.write_text(
        demo_cfg.read_text().replace(
            '      reload: ["true"]', f'      reload: ["true"]\n      next_key: {{path: {other}}}'
        )
    )
    zone = (demo_cfg.parent / "example.test.zone").read_text()
    for cmd in ("validate", "plan", "apply"):
        proc = run_cli("-c", demo_cfg, cmd)
        assert_one_line_error(proc, "other.pem", "next_key must be a private key")
    assert (demo_cfg.parent / "example.test.zone").read_text() == zone
    other.write_bytes(pki.key_pem(pki.new_key()))
    other.chmod(0o644)
    for cmd in ("validate", "plan", "apply"):
        proc = run_cli("-c", demo_cfg, cmd)
        assert_one_line_error(proc, "other.pem", "readable by others")
    assert (demo_cfg.parent / "example.test.zone").read_text() == zone
