"""Correlation: which alerts belong to one incident (time, topology, labels, changes, rules).

An alert joins an active group when it starts within ``window`` of the group's last activity
and it is *related* to the group: its service is within ``hops`` of a member service in the
dependency graph (either direction), or it shares a change id or one of ``share_labels``
with a member, or a YAML correlation rule puts both together. Otherwise it starts a group
of its own. A group becomes an incident once it holds ``min_alerts`` alerts, once a lone
alert has fired for ``single_hold``, when a critical alert is in it, or when a rule says so
(rules can also ask for "A and B together").

Rules file (``OPSLOOP_CORRELATION_RULES``)::

    rules:
      - name: database and its callers
        match: '{service=~"postgres|payments"}'   # alert labels, PromQL selector syntax
        window: 10m                                # optional, default: the global window
        min_alerts: 2                              # alerts matching before it opens an incident
        together: ['{alertname="DiskFull"}', '{alertname="HighLatency"}']  # all must be present
    defaults: {window: 15m, hops: 2, min_alerts: 2, single_hold: 5m, share_labels: [cluster]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from core.selectors import Matcher, parse_selector
from core.topology import Topology

__all__ = ["CorrelationConfig", "CorrelationRule", "Topology", "load_correlation", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float | int, where: str = "duration") -> timedelta:
    """Parse a Prometheus-style duration (``90s``, ``15m``, ``1h30m``) or a number of seconds.

    >>> parse_duration("1h30m"), parse_duration(45)
    (datetime.timedelta(seconds=5400), datetime.timedelta(seconds=45))
    """
    if isinstance(text, bool):
        raise ConfigError(f"{where}: expected a duration, got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ConfigError(f"{where}: a duration cannot be negative")
        return timedelta(seconds=float(text))
    s = str(text).strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ConfigError(f"{where}: cannot parse duration {text!r} (use e.g. 90s, 15m, 1h30m)")
    return timedelta(seconds=total)


@dataclass(frozen=True, slots=True)
class CorrelationRule:
    """Alerts matching ``match`` within ``window`` group together; ``min_alerts`` of them open
    an incident; ``together`` lists selectors that must all be present first."""

    name: str
    match: tuple[Matcher, ...]
    window: timedelta | None = None
    min_alerts: int = 1
    together: tuple[tuple[Matcher, ...], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert's labels satisfy the rule's ``match`` selector."""
        return all(m.matches(labels) for m in self.match)

    def satisfied(self, alert_labels: Sequence[Mapping[str, str]]) -> bool:
        """Whether a group's alerts meet the rule: enough matches and every ``together`` part."""
        matching = [lab for lab in alert_labels if self.matches(lab)]
        if len(matching) < self.min_alerts:
            return False
        return all(any(all(m.matches(lab) for m in part) for lab in matching) for part in self.together)


@dataclass(frozen=True, slots=True)
class CorrelationConfig:
    """How alerts are grouped and when a group becomes an incident."""

    window: timedelta = timedelta(minutes=15)
    hops: int = 2
    min_alerts: int = 2
    single_hold: timedelta = timedelta(minutes=5)
    share_labels: tuple[str, ...] = ()
    rules: tuple[CorrelationRule, ...] = field(default=())


def _rule(entry: Any, where: str) -> CorrelationRule:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: a rule must be a mapping")
    unknown = set(entry) - {"name", "match", "window", "min_alerts", "together"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: required")
    match = entry.get("match", "{}")
    if not isinstance(match, str):
        raise ConfigError(f"{where}.match: expected a selector string")
    try:
        matchers = parse_selector(match)
        together_raw = entry.get("together", [])
        if not isinstance(together_raw, list):
            raise ConfigError(f"{where}.together: expected a list of selectors")
        together = tuple(parse_selector(str(t)) for t in together_raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    min_alerts = entry.get("min_alerts", 1)
    if not isinstance(min_alerts, int) or isinstance(min_alerts, bool) or min_alerts < 1:
        raise ConfigError(f"{where}.min_alerts: expected an integer >= 1")
    window = parse_duration(entry["window"], f"{where}.window") if "window" in entry else None
    return CorrelationRule(name, matchers, window, min_alerts, together)


def correlation_from(document: Any, where: str = "correlation") -> CorrelationConfig:
    """Build the config from a parsed YAML document (``rules`` and ``defaults``), strictly."""
    if document is None:
        return CorrelationConfig()
    if not isinstance(document, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'rules' and/or 'defaults'")
    unknown = set(document) - {"rules", "defaults"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    d = document.get("defaults") or {}
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}.defaults: expected a mapping")
    bad = set(d) - {"window", "hops", "min_alerts", "single_hold", "share_labels"}
    if bad:
        raise ConfigError(f"{where}.defaults: unknown field(s) {sorted(bad)}")
    base = CorrelationConfig()
    hops = d.get("hops", base.hops)
    min_alerts = d.get("min_alerts", base.min_alerts)
    for key, val in (("hops", hops), ("min_alerts", min_alerts)):
        if not isinstance(val, int) or isinstance(val, bool) or val < (0 if key == "hops" else 1):
            raise ConfigError(f"{where}.defaults.{key}: expected a non-negative integer")
    share = d.get("share_labels", [])
    if not isinstance(share, list) or not all(isinstance(x, str) for x in share):
        raise ConfigError(f"{where}.defaults.share_labels: expected a list of label names")
    rules_raw = document.get("rules") or []
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{where}.rules: expected a list")
    return CorrelationConfig(
        window=parse_duration(d["window"], f"{where}.defaults.window") if "window" in d else base.window,
        hops=hops,
        min_alerts=min_alerts,
        single_hold=(
            parse_duration(d["single_hold"], f"{where}.defaults.single_hold")
            if "single_hold" in d
            else base.single_hold
        ),
        share_labels=tuple(share),
        rules=tuple(_rule(r, f"{where}.rules[{i}]") for i, r in enumerate(rules_raw)),
    )


def load_correlation(path: Path | None) -> CorrelationConfig:
    """Read the correlation YAML file, or the defaults when there is none."""
    if path is None:
        return CorrelationConfig()
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read correlation rules {path}: {exc}") from exc
    return correlation_from(document, str(path))
