"""Stable series ids: metric name + sorted labels -> a 63-bit integer that never changes.

The id is a hash (XXH3-64 of the canonical text, top bit cleared so it fits a signed
BIGINT too), not a counter, so every process (server, CLI, notebook, another machine)
computes the same id for the same series without asking the store; the store's series
dictionary maps it back to the name and labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import xxhash

_SEP = "\x00"
_MASK63 = (1 << 63) - 1


def canonical_key(name: str, labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Return the canonical text of a series: name, then labels sorted by name.

    >>> canonical_key("up", {"job": "node", "instance": "a:9100"})
    'up\\x00instance=a:9100\\x00job=node'
    """
    items = labels.items() if isinstance(labels, Mapping) else labels
    parts = [name]
    parts.extend(f"{k}={v}" for k, v in sorted(items))
    return _SEP.join(parts)


def series_id(name: str, labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
    """Return the stable id of a series (label order does not matter).

    >>> series_id("up", {"a": "1", "b": "2"}) == series_id("up", {"b": "2", "a": "1"})
    True
    >>> series_id("up", {"a": "1"}) != series_id("up", {"a": "2"})
    True
    """
    return int(xxhash.xxh3_64_intdigest(canonical_key(name, labels).encode())) & _MASK63
