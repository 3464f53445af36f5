"""Thresholding: which scored points are anomalies, with per-series controls and feedback.

Detectors only score; deciding is a separate wrapper (river's ``QuantileFilter`` idea), so
one set of operator controls applies to every detector. :class:`AnomalyFilter` flags a
point when its anomaly probability reaches the series' threshold *and* the series' controls
allow it:

- ``direction``: only deviations above (``up``), below (``down``) or either side of the
  expected value count (a latency series rarely pages for being fast);
- ``min_abs_dev`` / ``min_rel_dev``: the deviation from the expected value must be at least
  this large, absolutely and relative to ``|expected|`` (a 0.1 % wobble of a flat series is
  statistically strange and operationally dull);
- ``warmup_points``: the first points of a series are never flagged while the model learns.

Controls come from a short list of :class:`Rule` s, each a Prometheus-style selector
(``{service="checkout", __name__=~"http_.*"}``); the first rule that matches a series wins,
the filter's defaults apply otherwise. Operator feedback moves one series' threshold within
``[min_threshold, max_threshold]`` on the *tail* scale: a false positive divides the tail
``1 - threshold`` by ``step`` (0.999 -> 0.9995 with the default step 2), a true positive
multiplies it (0.999 -> 0.998). Working on the tail keeps steps meaningful near 1, where a
linear step would either do nothing or jump past the bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray
from scipy.special import erf

from core.errors import ConfigError
from core.selectors import Matcher, parse_selector
from detect.base import F64, I64, PointBatch, Scores

__all__ = [
    "AnomalyFilter",
    "Controls",
    "Decision",
    "Direction",
    "Matcher",
    "Rule",
    "Verdict",
    "load_rules",
    "parse_selector",
    "rules_from",
    "to_probability",
]

Direction = Literal["up", "down", "both"]
Verdict = Literal["false_positive", "true_positive"]
_DIRECTIONS: tuple[Direction, ...] = ("both", "up", "down")


@dataclass(frozen=True, slots=True)
class Controls:
    """What an operator may tune per series: see the module docstring.

    ``threshold`` overrides the filter's default probability threshold for matching series.
    """

    direction: Direction = "both"
    min_abs_dev: float = 0.0
    min_rel_dev: float = 0.0
    warmup_points: int = 30
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ConfigError(f"direction must be one of up, down, both; got {self.direction!r}")
        if self.min_abs_dev < 0 or self.min_rel_dev < 0 or self.warmup_points < 0:
            raise ConfigError("min_abs_dev, min_rel_dev and warmup_points must be >= 0")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1); got {self.threshold}")


@dataclass(frozen=True, slots=True)
class Rule:
    """Controls for the series a selector matches."""

    selector: str
    controls: Controls
    matchers: tuple[Matcher, ...] = field(default=())

    @classmethod
    def of(cls, selector: str, **controls: Any) -> Rule:
        """Build a rule from a selector text and control values."""
        return cls(selector, Controls(**controls), parse_selector(selector))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher accepts ``labels``."""
        return all(m.matches(labels) for m in self.matchers)


def rules_from(items: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Rules from plain mappings (``selector`` plus control fields), checked strictly.

    >>> rules_from([{"selector": '{service="db"}', "direction": "up"}])[0].controls.direction
    'up'
    """
    rules = []
    allowed = set(Controls.__dataclass_fields__) | {"selector"}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "selector" not in item:
            raise ConfigError(f"controls[{i}]: each rule needs a 'selector'")
        unknown = set(item) - allowed
        if unknown:
            raise ConfigError(f"controls[{i}]: unknown field(s) {', '.join(sorted(unknown))}")
        fields = {k: v for k, v in item.items() if k != "selector"}
        try:
            rules.append(Rule.of(str(item["selector"]), **fields))
        except ConfigError as exc:
            raise ConfigError(f"controls[{i}]: {exc.message}") from exc
        except TypeError as exc:
            raise ConfigError(f"controls[{i}]: {exc}") from exc
    return rules


def load_rules(path: Path) -> list[Rule]:
    """Read rules from a YAML file: a list, or a mapping with a ``controls`` list."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read controls file {path}: {exc}") from exc
    if isinstance(doc, Mapping):
        doc = doc.get("controls", [])
    if not isinstance(doc, list):
        raise ConfigError(f"{path}: expected a list of rules")
    return rules_from(doc)


def to_probability(score: F64, calibrated: bool) -> F64:
    """Probability that a point is anomalous, from a detector's score.

    A calibrated score (e.g. an anomaly likelihood) already is one; a raw score measured in
    standard deviations becomes the two-sided Gaussian probability ``P(|Z| < score)``.

    >>> to_probability(np.array([0.0, 1.96]), calibrated=False).round(3).tolist()
    [0.0, 0.95]
    """
    s = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0, posinf=np.inf)
    if calibrated:
        return np.clip(s, 0.0, 1.0)
    out: F64 = erf(np.maximum(s, 0.0) / math.sqrt(2.0))
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The filter's answer for each point of a batch, in batch order."""

    anomaly: NDArray[np.bool_]
    upward: NDArray[np.bool_]
    threshold: F64


class AnomalyFilter:
    """Flag points whose anomaly probability reaches their series' threshold, under controls.

    Per-series state (points seen, threshold set by feedback, matching rule) is held in
    arrays indexed by the detector's dense slots, so a batch is decided without a Python
    loop. Like a detector it is prequential: a point is decided, then counted.

    Parameters
    ----------
    threshold
        Default probability threshold.
    rules
        Controls by selector; the first match wins (see :meth:`assign`).
    default
        Controls for series no rule matches.
    min_threshold, max_threshold
        Bounds within which feedback moves a series' threshold.
    step
        Factor by which feedback shrinks (false positive) or grows (true positive) the tail
        ``1 - threshold``.

    Example
    -------
    >>> f = AnomalyFilter(threshold=0.99, rules=[Rule.of('{kind="latency"}', direction="up")],
    ...                   default=Controls(warmup_points=0))
    >>> f.assign(np.array([0, 1]), [{"kind": "latency"}, {"kind": "errors"}])
    >>> b = PointBatch.of(slot=[0, 1], ts=[0, 0], value=[1.0, 1.0])
    >>> s = Scores.from_expected(np.zeros(2), np.array([5.0, 5.0]), 1.0)  # both far below
    >>> f.decide(b, s, np.array([0.999, 0.999])).anomaly.tolist()
    [False, True]
    >>> f.feedback(1, "false_positive")
    (0.99, 0.995)
    """

    def __init__(
        self,
        threshold: float = 0.999,
        rules: Sequence[Rule] = (),
        default: Controls | None = None,
        min_threshold: float = 0.5,
        max_threshold: float = 0.99999,
        step: float = 2.0,
    ) -> None:
        if not 0.0 < min_threshold <= max_threshold < 1.0:
            raise ConfigError("need 0 < min_threshold <= max_threshold < 1")
        if step <= 1.0:
            raise ConfigError("step must be > 1")
        self.threshold = threshold
        self.rules = list(rules)
        self.default = default or Controls()
        self.min_threshold = min_threshold
        self.max_threshold = max_threshold
        self.step = step
        self._tables()
        self.seen = np.zeros(0, dtype=np.int64)
        self.override = np.zeros(0, dtype=np.float64)  # NaN: no feedback yet
        self.rule = np.zeros(0, dtype=np.int64)  # index into the control tables; 0 = default

    def _tables(self) -> None:
        controls = [self.default, *(r.controls for r in self.rules)]
        self._dir = np.array([_DIRECTIONS.index(c.direction) for c in controls], dtype=np.int64)
        self._abs = np.array([c.min_abs_dev for c in controls], dtype=np.float64)
        self._rel = np.array([c.min_rel_dev for c in controls], dtype=np.float64)
        self._warm = np.array([c.warmup_points for c in controls], dtype=np.int64)
        self._thr = np.array(
            [self.threshold if c.threshold is None else c.threshold for c in controls], dtype=np.float64
        )

    def _grow(self, need: int) -> None:
        have = len(self.seen)
        if need <= have:
            return
        size = max(need, 2 * have, 16)
        self.seen = np.concatenate([self.seen, np.zeros(size - have, dtype=np.int64)])
        self.override = np.concatenate([self.override, np.full(size - have, np.nan)])
        self.rule = np.concatenate([self.rule, np.zeros(size - have, dtype=np.int64)])

    def assign(self, slots: I64, labels: Sequence[Mapping[str, str]]) -> None:
        """Resolve which rule governs each slot from its series' labels (``__name__`` included).

        Called once per new series (a Python loop over *new series*, not over points).
        """
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots):
            self._grow(int(slots.max()) + 1)
        for slot, lab in zip(slots.tolist(), labels, strict=True):
            self.rule[slot] = next((i + 1 for i, r in enumerate(self.rules) if r.matches(lab)), 0)

    def thresholds(self, slots: I64) -> F64:
        """The probability threshold in force for each slot."""
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots):
            self._grow(int(slots.max()) + 1)
        own = self.override[slots]
        return np.where(np.isnan(own), self._thr[self.rule[slots]], own)

    def decide(self, batch: PointBatch, scores: Scores, probability: F64) -> Decision:
        """Decide every point of ``batch`` (each slot at most once), then count the points."""
        slot = batch.slot
        if len(slot):
            self._grow(int(slot.max()) + 1)
        rule = self.rule[slot]
        threshold = self.thresholds(slot)
        dev = batch.value - scores.expected
        size = np.abs(dev)
        direction = self._dir[rule]
        with np.errstate(invalid="ignore"):
            aimed = (direction == 0) | ((direction == 1) & (dev > 0)) | ((direction == 2) & (dev < 0))
            anomaly = (
                (probability >= threshold)
                & (self.seen[slot] >= self._warm[rule])
                & aimed
                & (size >= self._abs[rule])
                & (size >= self._rel[rule] * np.abs(scores.expected))
                & np.isfinite(dev)
            )
        np.add.at(self.seen, slot, 1)
        return Decision(anomaly, dev > 0, threshold)

    def feedback(self, slot: int, verdict: Verdict) -> tuple[float, float]:
        """Apply an operator's verdict to one series; return its (old, new) threshold."""
        if verdict not in ("false_positive", "true_positive"):
            raise ConfigError(f"verdict must be false_positive or true_positive; got {verdict!r}")
        before = float(self.thresholds(np.array([slot]))[0])
        tail = 1.0 - before
        tail = tail / self.step if verdict == "false_positive" else tail * self.step
        after = min(max(1.0 - tail, self.min_threshold), self.max_threshold)
        after = round(after, 12)  # keep 0.995 from printing as 0.9950000000000001
        self.override[slot] = after
        return before, after

    def set_threshold(self, slots: I64, values: F64) -> None:
        """Set thresholds decided earlier (feedback replayed from the store), within bounds."""
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots):
            self._grow(int(slots.max()) + 1)
            self.override[slots] = np.clip(values, self.min_threshold, self.max_threshold)

    def state_dict(self) -> dict[str, NDArray[Any]]:
        """The learned per-slot state (rules are configuration and are re-resolved on load)."""
        return {"seen": self.seen.copy(), "override": self.override.copy()}

    def load_state(self, state: Mapping[str, NDArray[Any]]) -> None:
        """Restore :meth:`state_dict` output; call :meth:`assign` for the slots afterwards."""
        self.seen = np.asarray(state["seen"], dtype=np.int64).copy()
        self.override = np.asarray(state["override"], dtype=np.float64).copy()
        self.rule = np.zeros(len(self.seen), dtype=np.int64)
