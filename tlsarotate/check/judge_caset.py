"""``check`` on a service's ``ca_set`` (tlsarotate.caset), without I/O:

- a CA of the set that has expired, or expires within :data:`CA_WARN_SECONDS`: WARNING (its
  records still go out; the CA will issue nothing clients accept);
- a deployed certificate whose issuer is not in the set: WARNING (its 2 x x records stay
  published while it is served; a CRITICAL is ``judge``'s when they are not published at all);
- a published usage 0/2 record, of a configured parameter, for a CA that is neither in the set
  nor the issuer of a deployed certificate: WARNING (awaiting retirement by ``apply``, or kept
  as another writer's when the state does not say this instance published it);
- a ``ca_set`` file that cannot be read: UNKNOWN.
"""

from __future__ import annotations

from tlsarotate import caset, records, timefmt
from tlsarotate.check.facts import ServiceFacts
from tlsarotate.check.report import UNKNOWN, WARNING, CaPinReport, CaSetReport, Finding
from tlsarotate.dane import short_record

CA_WARN_SECONDS = 30 * 86400  # a pinned CA expires soon


def judge_ca_set(sf: ServiceFacts, now: float, findings: list[Finding]) -> CaSetReport | None:
    s, obs = sf.service, sf.observation
    if not s.ca_set:
        return None
    if sf.ca_set_error is not None:
        findings.append(Finding(UNKNOWN, s.name, sf.ca_set_error))
        return CaSetReport((), (), ())
    ta = caset.ta_params(s.params)
    answered = obs is not None and bool(obs.servers) and all(not x.error for x in obs.servers)
    served: dict[str, set[str]] = {}  # owner -> record texts any server serves
    for x in obs.servers if obs is not None else ():
        for owner, rr in x.rrsets.items():
            if rr is not None:
                served.setdefault(owner.to_text(), set()).update(rr.texts())
    cas = []
    for ca in sf.ca_set:
        left = ca.not_after - now
        if left < CA_WARN_SECONDS:
            when = (
                f"expired {timefmt.duration(-left)} ago"
                if left <= 0
                else f"expires in {timefmt.duration(left)}"
            )
            findings.append(Finding(WARNING, s.name, f"ca_set: {ca.subject} ({ca.source}) {when}"))
        published = None
        if answered and obs is not None:
            published = all(
                (rr := x.rrsets.get(owner)) is not None and ca.pin(p) in rr.records
                for x in obs.servers
                for owner in s.owners
                for p in ta
            )
        cas.append(CaPinReport(ca.subject, ca.source, ca.not_after, published))
    issuers = []
    chains = []
    for slot in sf.slots:
        dep = slot.deployed
        if dep is None:
            continue
        chains.append(dep.chain_der)
        inside = caset.member(sf.ca_set, dep.chain_der, s.params)
        issuers.append((slot.slot.name, inside))
        if not inside:
            findings.append(
                Finding(
                    WARNING,
                    s.name,
                    f"certificate {slot.slot.name!r} is issued by {caset.issuer_name(dep)}, "
                    "which is not in ca_set: its 2 x x records stay published while it is "
                    "served; add that CA to ca_set, or deploy a certificate of a CA in it",
                )
            )
    pinned = caset.pins(sf.ca_set, s.params)
    retired = []
    for owner in s.owners:
        o = owner.to_text()
        for text in sorted(served.get(o, ())):
            rd = records.from_text(text)
            if records.params_of(rd) not in ta or rd in pinned:
                continue
            if any(records.matches(rd, chain) for chain in chains):
                continue
            retired.append((o, text))
            ours = sf.state.ours if sf.state is not None else None
            if s.owners_mode == "exclusive" or (ours is not None and text in ours.get(o, ())):
                why = "awaiting retirement: `tlsarotate apply` removes it"
            else:  # the planner keeps what this instance is not known to have published
                why = (
                    "not known to be published by this tlsarotate, so kept as another "
                    "writer's: `apply --force-cleanup` removes it"
                )
            findings.append(
                Finding(
                    WARNING,
                    s.name,
                    f"{o}: {short_record(rd)} pins a CA that is not in ca_set ({why})",
                    owner=o,
                )
            )
    return CaSetReport(tuple(cas), tuple(issuers), tuple(retired))
