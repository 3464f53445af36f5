"""The dependency graph of configuration items: hop distances, callers, owners, tiers.

Correlation, priority, Diagnose and (soon) Resolve all read the same graph, so it lives here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from core.model import ConfigurationItem

__all__ = ["Topology"]


class Topology:
    """The dependency graph, for hop distances, owners, tiers and callers.

    >>> t = Topology([ConfigurationItem("web", depends_on=("api",)), ConfigurationItem("api", depends_on=("db",)),
    ...               ConfigurationItem("db")])
    >>> t.hops("web", "db"), t.hops("db", "web"), t.hops("web", "nope")
    (2, 2, None)
    >>> sorted(t.callers_of("db"))
    ['api', 'web']
    """

    def __init__(self, items: Iterable[ConfigurationItem] = ()) -> None:
        self.items: dict[str, ConfigurationItem] = {i.name: i for i in items}
        self._near: dict[str, set[str]] = {name: set() for name in self.items}
        self._callers: dict[str, set[str]] = {name: set() for name in self.items}
        for item in self.items.values():
            for dep in item.depends_on:
                self._near.setdefault(item.name, set()).add(dep)
                self._near.setdefault(dep, set()).add(item.name)
                self._callers.setdefault(dep, set()).add(item.name)
        self._cache: dict[str, dict[str, int]] = {}
        self._callers_cache: dict[str, frozenset[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.items)

    def distances(self, service: str) -> dict[str, int]:
        """Hop distance (undirected) from ``service`` to every service it reaches."""
        hit = self._cache.get(service)
        if hit is not None:
            return hit
        dist = {service: 0}
        queue = deque([service])
        while queue:
            cur = queue.popleft()
            for nxt in self._near.get(cur, ()):
                if nxt not in dist:
                    dist[nxt] = dist[cur] + 1
                    queue.append(nxt)
        self._cache[service] = dist
        return dist

    def hops(self, a: str, b: str) -> int | None:
        """Undirected hops between two services, or None when unconnected or unknown."""
        return self.distances(a).get(b)

    def callers_of(self, service: str) -> frozenset[str]:
        """Every service that calls ``service``, directly or through others (cached)."""
        hit = self._callers_cache.get(service)
        if hit is not None:
            return hit
        seen: set[str] = set()
        queue = deque([service])
        while queue:
            for caller in self._callers.get(queue.popleft(), ()):
                if caller not in seen:
                    seen.add(caller)
                    queue.append(caller)
        found = frozenset(seen)
        self._callers_cache[service] = found
        return found

    def depends_on(self, caller: str, callee: str) -> bool:
        """Whether ``caller`` calls ``callee``, directly or through others."""
        return caller in self.callers_of(callee)

    def owner(self, service: str) -> str:
        """The owning team, or '' when unknown."""
        item = self.items.get(service)
        return item.owner if item else ""

    def tier(self, service: str) -> int:
        """The service's tier (1 most critical); unknown services count as tier 3."""
        item = self.items.get(service)
        return item.tier if item else 3

    def consumer_facing(self, service: str) -> bool:
        """Whether consumers use this service directly."""
        item = self.items.get(service)
        return bool(item and item.consumer_facing)
