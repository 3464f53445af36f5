"""Label matchers and Prometheus-style selectors, shared by detection rules, silences, SLOs and runbooks.

A selector is ``name{label="v", other=~"re"}``; each matcher tests one label with ``=``,
``!=``, ``=~`` or ``!~`` (regexes anchored, as in PromQL), and a missing label reads as ``""``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import ConfigError

__all__ = ["Matcher", "parse_selector"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher of a selector: ``name op value`` with op in ``= != =~ !~``."""

    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher (a missing label reads as ``""``, as in PromQL)."""
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self.pattern is not None
        hit = self.pattern.fullmatch(got) is not None
        return hit if self.op == "=~" else not hit


_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_selector(text: str) -> tuple[Matcher, ...]:
    """Parse ``name{label="v", other=~"re"}`` (the name part and braces are optional).

    >>> [(m.name, m.op, m.value) for m in parse_selector('http_errors{service="api", code=~"5.."}')]
    [('__name__', '=', 'http_errors'), ('service', '=', 'api'), ('code', '=~', '5..')]
    >>> parse_selector("{}")
    ()
    """
    text = text.strip()
    name, brace, rest = text.partition("{")
    matchers: list[Matcher] = []
    if name.strip():
        if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", name.strip()):
            raise ConfigError(f"bad metric name in selector {text!r}")
        matchers.append(Matcher("__name__", "=", name.strip()))
    if not brace:
        return tuple(matchers)
    if not rest.rstrip().endswith("}"):
        raise ConfigError(f"selector {text!r} lacks its closing brace")
    body = rest.rstrip()[:-1].strip()
    pos = 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise ConfigError(f"cannot parse selector {text!r} at {body[pos:]!r}")
        label, op, raw = m.groups()
        value = raw.encode().decode("unicode_escape") if "\\" in raw else raw
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise ConfigError(f"bad regex {value!r} in selector {text!r}: {exc}") from exc
        matchers.append(Matcher(label, op, value, pattern))
        pos = m.end()
    return tuple(matchers)
