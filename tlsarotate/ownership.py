"""Whose is each published TLSA record? The planner's record accounting. Pure, no I/O.

A record belongs to a certificate of the service (the deployed or next one, or the keep-ahead
key), to a certificate being retired after a swap, or to nobody we know. A record this instance
did not publish (not in ``State.ours``) and that no certificate of the service accounts for is
another writer's (*foreign*): kept, unless the owners are claimed exclusively (``owners:
exclusive``) or ``apply --force-cleanup`` asks. Every usage/selector/mtype combination present
must match every host's chain, so at an owner with foreign records we also publish our records
for each combination they use, and never introduce one they lack (that other host's
certificate would not match it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dns.name
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import caset, records
from tlsarotate.errors import RecordError
from tlsarotate.material import Material
from tlsarotate.records import Params

if TYPE_CHECKING:
    from tlsarotate.planner import SlotInput

# what a published record is (ClassifiedRecord.why; "want" records are kept, not listed)
WANT = "want"
STALE = "stale"
OLD_CERTIFICATE = "old certificate"
OLD_PARAMETERS = "old parameters"
FOREIGN = "foreign"
FORCED = "foreign (forced)"
OLD_CA = "CA no longer in ca_set"  # ours, usage 0/2, pinning a CA the set no longer names
FOREIGN_REASON = (
    "not published by this tlsarotate (another host's, or there before it kept track of its "
    "records): kept; `owners: exclusive` in the config or `apply --force-cleanup` removes it"
)


@dataclass(frozen=True)
class ClassifiedRecord:
    """A published record and what it is: one the plan removes, or another writer's it keeps."""

    owner: dns.name.Name
    record: TLSA
    why: str  # STALE | OLD_CERTIFICATE | OLD_PARAMETERS | OLD_CA | FOREIGN | FORCED


def parse_retiring(texts: Iterable[str]) -> frozenset[TLSA]:
    """``State.retiring`` (record texts) as records; a text that is no record matches none."""
    out = set()
    for t in texts:
        try:
            out.add(records.from_text(t))
        except RecordError:
            continue
    return frozenset(out)


def sorted_records(rds: Iterable[TLSA]) -> list[TLSA]:
    return sorted(rds, key=records.sort_key)


def ours_still_published(
    slots: Sequence[SlotInput],
    owners: Sequence[dns.name.Name],
    known: Mapping[str, Sequence[str]] | None,
    retiring: frozenset[TLSA],
    current: Mapping[dns.name.Name, set[TLSA]],
) -> dict[str, list[str]]:
    """``State.ours`` for this observation: the records this instance published (``known``)
    that are still there. A state that never tracked them (``known`` None: first run, state
    lost, or written by an older tlsarotate) counts the records of a certificate this config
    knows, and those being retired, as ours; everything else is foreign."""
    if known is None:
        mats: list[Material] = []
        for slot in slots:
            mats.append(slot.deployed)
            if slot.next is not None:
                mats.append(slot.next)
            if slot.next_key is not None:
                mats.append(slot.next_key)
        known = {
            o.to_text(): [
                records.to_text(rd)
                for rd in sorted_records(rds)
                if rd in retiring or any(records.matches_material(rd, m) for m in mats)
            ]
            for o, rds in current.items()
        }
    kept = {}
    for o in owners:
        texts = {records.to_text(rd) for rd in current[o]}
        mine = sorted(t for t in known.get(o.to_text(), ()) if t in texts)
        if mine:
            kept[o.to_text()] = mine
    return kept


class Ownership:
    """Which certificate or writer each published record belongs to, and which records the
    service wants at each owner (:attr:`want`), given the records that are ours (``ours``)."""

    def __init__(
        self,
        slots: Sequence[SlotInput],
        owners: Sequence[dns.name.Name],
        params: Sequence[Params],
        mode: str,
        retiring: frozenset[TLSA],
        current: Mapping[dns.name.Name, set[TLSA]],
        ours: Mapping[str, Sequence[str]],
        ca_set: Sequence[caset.CaCert] = (),
    ) -> None:
        self.slots = slots
        self.ca_set = ca_set
        self.cfg = set(params)
        self.retiring = retiring
        self.mode = mode
        self.notes: list[str] = []
        base = self._records(params)
        # records neither a certificate of ours accounts for nor this instance published
        self.unclaimed = {
            o: {
                rd
                for rd in current[o]
                if rd not in base and records.to_text(rd) not in ours.get(o.to_text(), ())
            }
            for o in owners
        }
        self.foreign = {o: (self.unclaimed[o] if mode == "shared" else set()) for o in owners}
        self.want: dict[dns.name.Name, set[TLSA]] = {}
        self.extra: dict[dns.name.Name, set[Params]] = {}
        for o in owners:
            want = set(base)
            extra: set[Params] = set()
            if self.foreign[o]:
                present = {records.params_of(rd) for rd in current[o]}
                held = [p for p in params if p not in present]
                if held:
                    want = {rd for rd in want if records.params_of(rd) not in held}
                    self.notes.append(
                        f"{o}: not adding {', '.join(map(str, held))}: the other writer's "
                        "records there have no such record, and its certificate would not match "
                        "that combination; give every host the same `records:`"
                    )
                extra = {
                    records.params_of(rd) for rd in self.foreign[o] if records.usable(rd)
                } - self.cfg
                if extra:
                    want |= self._records(sorted(extra), o)
                    self.notes.append(
                        f"{o}: also publishing {', '.join(map(str, sorted(extra)))} for this "
                        "host's certificates: the other writer's records there use it, and every "
                        "combination present must match each host's certificate"
                    )
            self.want[o] = want
            self.extra[o] = extra

    def _records(self, params: Sequence[Params], owner: dns.name.Name | None = None) -> set[TLSA]:
        """Our certificates' records for these parameters (the deployed and next ones, and the
        keep-ahead key's selector-1 records). Configured parameters were checked when the config
        was loaded; another writer's (``owner`` given) may not apply: a note says so. With a CA
        set, the usage 0/2 records are one per CA in it, and the deployed chain's issuer while it
        is served; a next certificate's issuer outside the set is not pinned (its swap waits)."""
        pinned = caset.pins(self.ca_set, params)
        out: set[TLSA] = set(pinned)
        for slot in self.slots:
            certs = [slot.deployed] + ([slot.replacement] if slot.replacement is not None else [])
            for m in certs:
                for p in params:
                    outside = bool(self.ca_set) and p.usage in caset.TA_USAGES
                    if owner is None:
                        rd = records.build(m, p)
                        if not (outside and m is not slot.deployed and rd not in pinned):
                            out.add(rd)
                        continue
                    try:
                        rd = records.build(m, p)
                        if not (outside and m is not slot.deployed and rd not in pinned):
                            out.add(rd)
                    except RecordError as e:
                        self.notes.append(
                            f"{owner}: certificate {slot.name!r} cannot match the other writer's "
                            f"{p} records there ({e}); swaps wait until they are gone"
                        )
            key = slot.next_key
            if key is not None and key.spki != slot.deployed.spki:
                out.update(
                    records.build(key, p) for p in params if p.selector == 1 and p.usage in (1, 3)
                )
        return out

    def classify(self, owner: dns.name.Name, rd: TLSA) -> str:
        """WANT | FOREIGN | OLD_PARAMETERS | OLD_CERTIFICATE | OLD_CA | FORCED | STALE."""
        if rd in self.want[owner]:
            return WANT
        if rd in self.foreign[owner]:
            return FOREIGN
        for slot in self.slots:
            if records.matches_material(rd, slot.deployed):
                # the deployed certificate, but with parameters no longer configured
                keep = self.cfg | self.extra[owner]
                return OLD_PARAMETERS if records.params_of(rd) not in keep else WANT
        if rd in self.retiring:
            return OLD_CERTIFICATE
        if self.ca_set and rd.usage in caset.TA_USAGES and rd not in self.unclaimed[owner]:
            return OLD_CA  # ours: a CA dropped from the set (never one the served chain uses)
        if self.mode == "force" and rd in self.unclaimed[owner]:
            return FORCED
        return STALE


def whose(missing: Iterable[TLSA], slots: Sequence[SlotInput]) -> str:
    """Whose records ``missing`` are, in words: "the next certificate", "the deployed and next
    certificates", "the next key" ... (the slots named when a service has several)."""
    rds = list(missing)
    kinds: dict[str, list[str]] = {"deployed": [], "next": [], "key": []}
    for slot in slots:
        mats = {"deployed": slot.deployed, "next": slot.replacement, "key": slot.next_key}
        for rd in rds:
            # a record the deployed certificate has too (same key) is the deployed one's
            kind = next(
                (k for k, m in mats.items() if m is not None and records.matches_material(rd, m)),
                None,
            )
            if kind is not None and slot.name not in kinds[kind]:
                kinds[kind].append(slot.name)
    several = len(slots) > 1

    def label(kind: str, noun: str) -> str:
        names = kinds[kind]
        plural = noun + ("s" if len(names) > 1 else "")
        return f"{plural} ({', '.join(map(repr, names))})" if several else plural

    if kinds["deployed"] and kinds["next"] and not several and not kinds["key"]:
        return "the deployed and next certificates"
    parts = [
        f"the {label(kind, noun)}"
        for kind, noun in (
            ("deployed", "deployed certificate"),
            ("next", "next certificate"),
            ("key", "next key"),
        )
        if kinds[kind]
    ]
    if not parts:
        return "no certificate of this service"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
