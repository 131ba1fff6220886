"""``plan`` and ``apply`` for the services' TLSRPT records (``tlsrpt_record:``): each TXT RRset
read through the service's provider, compared (:mod:`tlsarotate.tlsrpt.record`) and, by
``apply``, written in one write with what was read as its prerequisite."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from tlsarotate.config.model import Service
from tlsarotate.providers.base import Provider
from tlsarotate.tlsrpt import record
from tlsarotate.tlsrpt.record import TxtPlan


def plans(services: Iterable[Service], providers: Mapping[str, Provider]) -> list[TxtPlan]:
    """One plan per service with a ``tlsrpt_record`` (a read each, no write)."""
    out: list[TxtPlan] = []
    for svc in services:
        rec = svc.tlsrpt_record
        if rec is None:
            continue
        name = record.owner(rec.domain)
        current = providers[svc.provider].read_txt(svc.zone, name)
        out.append(record.plan(svc.name, name, current, rec.rua, svc.ttl))
    return out


def apply(
    services: Iterable[Service],
    providers: Mapping[str, Provider],
    on_event: Callable[[str], None] | None = None,
) -> list[TxtPlan]:
    """Write each TXT RRset that differs from the config; the plans after the writes."""
    done: list[TxtPlan] = []
    by_name = {s.name: s for s in services}
    for p in plans(by_name.values(), providers):
        svc = by_name[p.service]
        if p.pending:
            providers[svc.provider].apply_txt(svc.zone, p.name, p.current, p.new)
            if on_event is not None:
                on_event(f"{p.service}: wrote TXT {p.name} {p.want!r}")
            p = dataclasses.replace(p, current=p.new, state=record.OK)
        done.append(p)
    return done
