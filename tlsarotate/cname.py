"""CNAMEs at TLSA owner names (RFC 7671 §7): one shared TLSA RRset for many hosts, each host's
``_PORT._tcp.HOST`` a CNAME (or a chain of them) to it. Pure: what the servers were seen to
serve in, chains and problems (in words) out.

A :class:`Cname` is what one server serves at one name; :func:`follow` walks a chain through a
``name -> Cname`` mapping, stopping at a loop or after :data:`MAX_CHAIN` steps;
:func:`alias_problems` says, per server, where a configured alias does not lead to the shared
owner (a service's ``shared_owner``), which the planner treats as "not visible" and ``check``
as CRITICAL; :func:`while_broken` is the state change that makes the wait start again once
every alias is right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import dns.name

from tlsarotate.state import CachedRRset, State

if TYPE_CHECKING:
    from tlsarotate.observation import ServerAnswer

# resolvers give up on longer chains (unbound follows at most 11, BIND 16 steps in all): a
# chain past this many CNAMEs is treated as broken, as a loop is
MAX_CHAIN = 8


@dataclass(frozen=True)
class Cname:
    """The CNAME one server serves at a name: its target and TTL."""

    target: dns.name.Name
    ttl: int


@dataclass(frozen=True)
class Chain:
    """A CNAME chain from ``names[0]``: ``names[i]`` is a CNAME to ``names[i + 1]`` with TTL
    ``ttls[i]``; ``end`` is the last name (where the TLSA records are, or are not).
    ``problem``: a loop, or more than :data:`MAX_CHAIN` CNAMEs (``end`` is then meaningless)."""

    names: tuple[dns.name.Name, ...]
    ttls: tuple[int, ...]
    problem: str | None = None

    @property
    def end(self) -> dns.name.Name:
        return self.names[-1]

    @property
    def steps(self) -> int:
        return len(self.ttls)

    def describe(self) -> str:
        """``a. -> b. -> c.``"""
        return " -> ".join(n.to_text() for n in self.names)


def follow(
    start: dns.name.Name,
    cnames: Mapping[dns.name.Name, Cname],
    limit: int = MAX_CHAIN,
) -> Chain:
    """The chain from ``start`` through ``cnames`` (a name absent from it is the end)."""
    names = [start]
    ttls: list[int] = []
    while names[-1] in cnames:
        step = cnames[names[-1]]
        if step.target in names:
            names.append(step.target)
            ttls.append(step.ttl)
            return Chain(tuple(names), tuple(ttls), f"CNAME loop: {_arrows(names)}")
        if len(ttls) >= limit:
            return Chain(
                tuple(names),
                tuple(ttls),
                f"CNAME chain from {start} longer than {limit} steps: resolvers give up",
            )
        names.append(step.target)
        ttls.append(step.ttl)
    return Chain(tuple(names), tuple(ttls))


def _arrows(names: Sequence[dns.name.Name]) -> str:
    return " -> ".join(n.to_text() for n in names)


def alias_problem(
    server: ServerAnswer,
    alias: dns.name.Name,
    owner: dns.name.Name,
    zone: dns.name.Name,
    require_signed: bool,
) -> str | None:
    """None when ``server`` serves ``alias`` as a CNAME (chain) ending at ``owner``, every step
    validly signed (with ``require_signed``), else why not, in words. A server that did not
    answer is not judged here (the observation's lagging servers name it)."""
    if server.error:
        return None
    chain = follow(alias, server.cnames)
    where = f"{server.label}: {alias}"
    if chain.problem:
        return f"{server.label}: {chain.problem}"
    if not chain.steps:
        if server.rrsets.get(alias) is not None:
            return (
                f"{where} has its own TLSA RRset, not a CNAME to {owner}: its senders do not "
                "see the shared records"
            )
        return f"{where} is not a CNAME to {owner} (no such name or no records there)"
    if chain.end != owner:
        out = next((n for n in chain.names if not n.is_subdomain(zone)), None)
        if out is not None:
            return f"{where} leads out of zone {zone} to {out}, not to {owner}"
        return f"{where} is a CNAME to {chain.end}, not to {owner} ({chain.describe()})"
    if require_signed:
        for name in chain.names[:-1]:
            if server.signed.get(name) is False:
                return f"{server.label}: the CNAME at {name} has no valid RRSIG"
    return None


def alias_problems(
    servers: Sequence[ServerAnswer],
    aliases: Sequence[dns.name.Name],
    owner: dns.name.Name,
    zone: dns.name.Name,
    require_signed: bool,
) -> list[str]:
    """One line per (server, alias) where the alias does not lead to ``owner``."""
    out = []
    for s in servers:
        for alias in aliases:
            why = alias_problem(s, alias, owner, zone, require_signed)
            if why:
                out.append(why)
    return out


def max_ttl(servers: Sequence[ServerAnswer], aliases: Sequence[dns.name.Name]) -> int:
    """The largest CNAME TTL on the answering servers' chains from ``aliases`` (0: none)."""
    best = 0
    for s in servers:
        if s.error:
            continue
        for alias in aliases:
            best = max([best, *follow(alias, s.cnames).ttls])
    return best


def while_broken(st: State, ttl: int) -> State:
    """The state while an alias does not lead to the shared owner: what a resolver holds for
    that alias is unknown (another RRset, or none), so the current RRset does not count as
    visible, and an unknown RRset that caches may hold for ``ttl`` is remembered once: when
    every alias is right again, a swap waits until it has run out (phases.cache_rejects)."""
    unknown = [c for c in st.cached if c.records is None and c.until is None]
    cached = list(st.cached)
    if unknown:
        if unknown[0].ttl < ttl:
            cached[cached.index(unknown[0])] = replace(unknown[0], ttl=ttl)
    else:
        cached.append(CachedRRset(None, ttl))
    return st.with_(visible_since=None, cached=cached)


def propagating_or_broken(
    servers: Sequence[ServerAnswer],
    aliases: Sequence[dns.name.Name],
    owner: dns.name.Name,
    zone: dns.name.Name,
    require_signed: bool,
) -> tuple[list[str], list[str]]:
    """:func:`alias_problems` split in two: the lines of aliases that some answering server
    already serves right (a change still propagating: wait), and of those no server serves
    right (a mistake to fix: blocked)."""
    answering = [s for s in servers if not s.error]
    waiting: list[str] = []
    broken: list[str] = []
    for alias in aliases:
        lines = [
            w for s in answering if (w := alias_problem(s, alias, owner, zone, require_signed))
        ]
        (broken if len(lines) == len(answering) else waiting).extend(lines)
    return waiting, broken


def owner_is_alias(
    servers: Sequence[ServerAnswer], owners: Sequence[dns.name.Name], shared: bool = True
) -> list[str]:
    """One line per server and owner this service writes that the server serves as a CNAME:
    no TLSA can be published there (a server ignores other types at a CNAME, RFC 2136
    §3.4.2.2). ``shared``: the owner is a ``shared_owner`` (else the hint names it)."""
    out = []
    for s in servers:
        for o in owners:
            if s.error or o not in s.cnames:
                continue
            target = s.cnames[o].target
            what = f"the shared owner {o}" if shared else f"{o}"
            hint = "" if shared else f" (with shared_owner: {target} it may be a CNAME)"
            out.append(
                f"{s.label}: {what} is itself a CNAME to {target}: no TLSA records can be "
                f"published there{hint}"
            )
    return out


@dataclass(frozen=True)
class Aliases:
    """What the planner learns of a shared owner's aliases from one observation: lines of
    aliases still propagating (wait), of those broken everywhere and of a shared owner that is
    itself a CNAME (blocked), the largest TTL a cache may hold an alias's answer for."""

    waiting: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()  # the shared owner itself a CNAME: nothing can be written
    cname_ttl: int = 0  # the CNAMEs' largest TTL
    own_ttl: int = 0  # the largest TTL of an RRset a wrong alias holds itself

    @property
    def lagging(self) -> tuple[str, ...]:
        return (*self.owner, *self.waiting, *self.broken)


def observe_aliases(
    servers: Sequence[ServerAnswer],
    aliases: Sequence[dns.name.Name],
    owners: Sequence[dns.name.Name],
    zone: dns.name.Name,
    require_signed: bool,
) -> Aliases:
    """:class:`Aliases` of one observation (the shared owner is ``owners[0]``); without
    ``aliases`` (no shared owner), only whether an owner is itself a CNAME."""
    if not aliases:
        return Aliases(owner=tuple(owner_is_alias(servers, owners, shared=False)))
    owner = owners[0]
    waiting, broken = propagating_or_broken(servers, aliases, owner, zone, require_signed)
    own = [
        rr.ttl
        for s in servers
        if not s.error
        for a in aliases
        if (rr := s.rrsets.get(a)) is not None
    ]
    return Aliases(
        tuple(waiting),
        tuple(broken),
        tuple(owner_is_alias(servers, [owner])),
        max_ttl(servers, aliases),
        max(own, default=0),
    )
