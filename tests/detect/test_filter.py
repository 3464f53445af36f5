"""AnomalyFilter: probability threshold, per-selector controls, warm-up, feedback within bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from core.selectors import parse_selector
from detect.base import PointBatch, Scores
from detect.filter import AnomalyFilter, Controls, Rule, load_rules, to_probability


def decide(f: AnomalyFilter, values: list[float], expected: float, prob: float = 0.9999) -> list[bool]:
    n = len(values)
    batch = PointBatch.of(slot=np.arange(n), ts=np.zeros(n), value=values)
    scores = Scores.from_expected(np.zeros(n), np.full(n, expected), 1.0)
    flags: list[bool] = f.decide(batch, scores, np.full(n, prob)).anomaly.tolist()
    return flags


@pytest.mark.parametrize(
    ("controls", "values", "expected_flags"),
    [
        (Controls(warmup_points=0), [50.0, 150.0], [True, True]),
        (Controls(direction="up", warmup_points=0), [50.0, 150.0], [False, True]),
        (Controls(direction="down", warmup_points=0), [50.0, 150.0], [True, False]),
        (Controls(min_abs_dev=60.0, warmup_points=0), [50.0, 170.0], [False, True]),
        (Controls(min_rel_dev=0.6, warmup_points=0), [30.0, 140.0], [True, False]),
    ],
    ids=["both", "up-only", "down-only", "min-abs-dev", "min-rel-dev"],
)
def test_controls_gate_deviations(
    controls: Controls, values: list[float], expected_flags: list[bool]
) -> None:
    f = AnomalyFilter(threshold=0.99, default=controls)
    assert decide(f, values, expected=100.0) == expected_flags


def test_probability_below_threshold_is_never_an_anomaly() -> None:
    f = AnomalyFilter(threshold=0.99, default=Controls(warmup_points=0))
    assert decide(f, [500.0], expected=100.0, prob=0.98) == [False]
    assert decide(f, [500.0], expected=100.0, prob=0.99) == [True]


def test_warmup_counts_points_per_series() -> None:
    f = AnomalyFilter(threshold=0.5, default=Controls(warmup_points=3))
    batch = PointBatch.of(slot=[0], ts=[0], value=[10.0])
    scores = Scores.from_expected(np.zeros(1), np.zeros(1), 1.0)
    flags = [bool(f.decide(batch, scores, np.ones(1)).anomaly[0]) for _ in range(5)]
    assert flags == [False, False, False, True, True]


def test_first_matching_rule_wins_and_unmatched_series_get_defaults() -> None:
    rules = [
        Rule.of('{service="checkout", __name__=~"http_.*"}', direction="up", warmup_points=0),
        Rule.of('{service="checkout"}', direction="down", warmup_points=0),
    ]
    f = AnomalyFilter(threshold=0.9, rules=rules, default=Controls(warmup_points=0, min_abs_dev=1e9))
    labels = [
        {"__name__": "http_latency", "service": "checkout"},
        {"__name__": "queue_depth", "service": "checkout"},
        {"__name__": "http_latency", "service": "search"},
    ]
    f.assign(np.arange(3), labels)
    up = decide(f, [200.0, 200.0, 200.0], expected=100.0)
    f.seen[:] = 0
    down = decide(f, [10.0, 10.0, 10.0], expected=100.0)
    assert up == [True, False, False]
    assert down == [False, True, False]


def test_rule_threshold_overrides_the_default() -> None:
    f = AnomalyFilter(threshold=0.99, rules=[Rule.of('{tier="1"}', threshold=0.6)])
    f.assign(np.array([0, 1]), [{"tier": "1"}, {"tier": "2"}])
    assert f.thresholds(np.array([0, 1])).tolist() == [0.6, 0.99]


def test_feedback_moves_the_threshold_on_the_tail_scale_within_bounds() -> None:
    f = AnomalyFilter(threshold=0.99, min_threshold=0.5, max_threshold=0.9999, step=2.0)
    before, after = f.feedback(3, "false_positive")
    assert (before, after) == (0.99, 0.995)
    assert f.feedback(3, "true_positive") == (0.995, 0.99)
    for _ in range(30):
        f.feedback(3, "false_positive")
    assert f.thresholds(np.array([3]))[0] == 0.9999
    for _ in range(30):
        f.feedback(3, "true_positive")
    assert f.thresholds(np.array([3]))[0] == 0.5
    assert f.thresholds(np.array([2]))[0] == 0.99  # other series untouched


@given(st.lists(st.sampled_from(["false_positive", "true_positive"]), max_size=40))
def test_feedback_always_stays_within_bounds(verdicts: list[str]) -> None:
    f = AnomalyFilter(threshold=0.999, min_threshold=0.5, max_threshold=0.99999)
    for v in verdicts:
        before, after = f.feedback(0, v)  # type: ignore[arg-type]
        assert 0.5 <= after <= 0.99999
        assert (after >= before) if v == "false_positive" else (after <= before)


def test_state_round_trip_keeps_counts_and_feedback() -> None:
    f = AnomalyFilter(threshold=0.9, default=Controls(warmup_points=2))
    decide(f, [1.0, 2.0], expected=0.0)
    f.feedback(1, "false_positive")
    g = AnomalyFilter(threshold=0.9, default=Controls(warmup_points=2))
    g.load_state(f.state_dict())
    assert g.seen[:2].tolist() == [1, 1]
    assert g.thresholds(np.array([0, 1])).tolist() == [0.9, 0.95]


@pytest.mark.parametrize(
    "text",
    ['{service="a"', "{service=a}", '{9bad="x"}', '{a=~"("}', "bad name{}"],
    ids=["unclosed", "unquoted", "bad-label", "bad-regex", "bad-metric"],
)
def test_bad_selectors_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_selector(text)


def test_selector_negative_matchers() -> None:
    rule = Rule.of('{env!="dev", code!~"2.."}')
    assert rule.matches({"env": "prod", "code": "500"})
    assert not rule.matches({"env": "dev", "code": "500"})
    assert not rule.matches({"env": "prod", "code": "200"})


def test_rules_load_from_yaml_strictly(tmp_path: Path) -> None:
    good = tmp_path / "controls.yaml"
    good.write_text("controls:\n  - selector: '{service=\"db\"}'\n    direction: up\n    min_rel_dev: 0.2\n")
    (rule,) = load_rules(good)
    assert rule.controls == Controls(direction="up", min_rel_dev=0.2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- selector: '{a=\"b\"}'\n  directoin: up\n")
    with pytest.raises(ConfigError, match="directoin"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="direction"):
        Controls(direction="sideways")  # type: ignore[arg-type]


@given(st.floats(min_value=0, max_value=50), st.floats(min_value=0, max_value=50))
def test_raw_scores_map_monotonically_into_unit_interval(a: float, b: float) -> None:
    pa_, pb = to_probability(np.array([a, b]), calibrated=False)
    assert 0.0 <= pa_ <= 1.0 and 0.0 <= pb <= 1.0
    assert (pa_ <= pb) == (a <= b) or pa_ == pb
