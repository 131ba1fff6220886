"""``check`` for a service with ``shared_owner`` (RFC 7671 §7): does each host's TLSA name lead
to the shared owner, by a CNAME (chain) that every authoritative server serves, validly signed?
A host whose name does not is CRITICAL: its senders see another RRset, or none. Pure."""

from __future__ import annotations

from tlsarotate import cname
from tlsarotate.check.report import CRITICAL, AliasReport, Finding
from tlsarotate.config import Service
from tlsarotate.observation import Observation


def judge_aliases(
    s: Service, obs: Observation | None, findings: list[Finding]
) -> tuple[AliasReport, ...]:
    """One report per alias (``ok`` None: a server did not answer and none showed a problem);
    a CRITICAL finding per (server, alias) problem."""
    if s.shared_owner is None:
        # an owner served as a CNAME: its TLSA records cannot be published where they belong
        lines = cname.owner_is_alias(obs.servers if obs else (), s.owners, shared=False)
        findings += [Finding(CRITICAL, s.name, line) for line in lines]
        return ()
    out = []
    for alias in s.aliases:
        problems: list[str] = []
        answered = obs is not None and bool(obs.servers)
        for srv in obs.servers if obs is not None else ():
            answered = answered and not srv.error
            why = cname.alias_problem(srv, alias, s.shared_owner, s.zone, not s.allow_unsigned)
            if why:
                problems.append(why)
        a = alias.to_text()
        findings += [Finding(CRITICAL, s.name, p, owner=a) for p in problems]
        ok = False if problems else (True if answered else None)
        out.append(AliasReport(alias, s.shared_owner, ok, tuple(problems)))
    return tuple(out)
