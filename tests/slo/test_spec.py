"""OpenSLO import/export, query and duration parsing, calendar windows (slo/spec.py)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from slo.spec import (
    AlertCondition,
    BudgetingMethod,
    EventRatioSli,
    RatioSli,
    Selector,
    SloSpec,
    ThresholdSli,
    TimeWindow,
    calendar_units,
    format_duration,
    load_openslo,
    parse_duration,
    parse_query,
    to_openslo,
    window_bounds,
)

FIXTURES = Path(__file__).with_name("fixtures")
BAD = sorted(FIXTURES.glob("bad-*.yaml"))

# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("6h", timedelta(hours=6)),
        ("28d", timedelta(days=28)),
        ("4w", timedelta(days=28)),
    ],
    ids=["minutes", "hours", "days", "weeks"],
)
def test_parse_duration_reads_fixed_units(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1M", "calendar duration"),
        ("1Q", "calendar duration"),
        ("1Y", "calendar duration"),
        ("5s", "not a duration"),
        ("0d", "must be positive"),
        ("d", "not a duration"),
        ("1.5h", "not a duration"),
        ("", "not a duration"),
    ],
    ids=["month", "quarter", "year", "seconds", "zero", "no-count", "fraction", "empty"],
)
def test_parse_duration_refuses_and_names_the_field(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"^spec\.window: .*{reason}"):
        parse_duration(text, "spec.window")


def test_calendar_units_splits_every_unit() -> None:
    assert [calendar_units(t) for t in ("1M", "2Q", "1Y", "30d", "5m")] == [
        (1, "M"),
        (2, "Q"),
        (1, "Y"),
        (30, "d"),
        (5, "m"),
    ]


@given(st.integers(1, 10**6))
def test_format_duration_round_trips(minutes: int) -> None:
    assert parse_duration(format_duration(timedelta(minutes=minutes))) == timedelta(minutes=minutes)


def test_format_duration_refuses_seconds() -> None:
    with pytest.raises(ValueError, match="whole number of minutes"):
        format_duration(timedelta(seconds=90))


# --------------------------------------------------------------------------- queries

SEL = 'http_requests_total{service="checkout",code!~"5.."}'


@pytest.mark.parametrize(
    ("query", "window"),
    [
        (SEL, ""),
        (f"rate({SEL}[5m])", "5m"),
        (f"sum(rate({SEL}[{{{{.window}}}}]))", "{{.window}}"),
        (f"sum(increase({SEL}[1h30m]))", "1h30m"),
        (f"sum by (service, code) (rate({SEL}[{{{{ .window }}}}]))", "{{.window}}"),
        (f"sum({SEL})", ""),
        (f"  sum ( rate ( {SEL} [ 5m ] ) ) ", "5m"),
        ('sum(rate(http_requests_total{ service = "checkout" , code !~ "5.." }[5m]))', "5m"),
    ],
    ids=["bare", "rate", "sum-rate", "sum-increase", "sum-by", "sum", "spaced", "spaced-matchers"],
)
def test_parse_query_accepts_the_ratio_forms(query: str, window: str) -> None:
    selector = parse_query(query, "q")
    assert selector.text == SEL
    assert selector.metric == "http_requests_total"
    assert [(m.name, m.op, m.value) for m in selector.matchers] == [
        ("__name__", "=", "http_requests_total"),
        ("service", "=", "checkout"),
        ("code", "!~", "5.."),
    ]
    assert selector.window == window


@pytest.mark.parametrize(
    "query",
    [
        f"histogram_quantile(0.99, sum by (le) (rate({SEL}[5m])))",
        f"sum(rate({SEL}[5m])) / sum(rate({SEL}[5m]))",
        f"avg(rate({SEL}[5m]))",
        f"rate({SEL})",
        f"rate({SEL}[five])",
        f"sum by (a-b) (rate({SEL}[5m]))",
        "{}",
        'x{a="b"',
        'x{a=~"("}',
    ],
    ids=["quantile", "division", "avg", "no-range", "bad-range", "bad-by", "empty", "unclosed", "bad-regex"],
)
def test_parse_query_refuses_other_forms_naming_the_field(query: str) -> None:
    with pytest.raises(ConfigError, match=r"^spec\.query: "):
        parse_query(query, "spec.query")


def test_parse_query_lists_the_accepted_forms() -> None:
    with pytest.raises(ConfigError, match=r"accepted forms: .*rate\(<sel>\[<w>\]\).*\{\{\.window\}\}"):
        parse_query("topk(3, x)", "q")


_names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_values = st.text(alphabet="abcxyz0189.-_ /:", max_size=8)
_matchers = st.lists(
    st.tuples(_names, st.sampled_from(["=", "!=", "=~", "!~"]), _values), min_size=0, max_size=4
)
_ranges = st.sampled_from(["{{.window}}", "5m", "1h", "30s", "1h30m", "2d"])
_spaces = st.sampled_from(["", " ", "  "])


@given(
    metric=st.one_of(st.just(""), st.from_regex(r"[a-z_:][a-z0-9_:]{0,12}", fullmatch=True)),
    matchers=_matchers,
    form=st.sampled_from(
        [
            "{s}",
            "rate({s}[{w}])",
            "sum(rate({s}[{w}]))",
            "sum(increase({s}[{w}]))",
            "sum by (a, b) (rate({s}[{w}]))",
            "sum({s})",
        ]
    ),
    window=_ranges,
    pad=_spaces,
)
def test_generated_selectors_round_trip_through_every_form(
    metric: str, matchers: list[tuple[str, str, str]], form: str, window: str, pad: str
) -> None:
    if not metric and not matchers:
        matchers = [("job", "=", "x")]

    def render(gap: str) -> str:
        body = ",".join(f'{name}{gap}{op}{gap}"{value}"' for name, op, value in matchers)
        return f"{metric}{{{gap}{body}{gap}}}" if matchers else metric

    selector = parse_query(pad + form.format(s=render(pad), w=window) + pad, "q")
    assert selector.text == render("")  # normalised: no spaces outside quoted values
    expected = ([("__name__", "=", metric)] if metric else []) + matchers
    assert [(m.name, m.op, m.value) for m in selector.matchers] == expected
    assert selector.window == ("" if "{w}" not in form else window)
    assert selector.metric == metric


# --------------------------------------------------------------------------- fixtures


def _sel(text: str, window: str = "") -> Selector:
    return parse_query(text if not window else f"rate({text}[{window}])", "q")


GOOD: dict[str, dict[str, Any]] = {
    "good-checkout.yaml": {
        "name": "checkout-availability",
        "display_name": "Checkout availability",
        "service": "checkout",
        "objective": 0.999,
        "window": TimeWindow("28d"),
        "budgeting_method": BudgetingMethod.OCCURRENCES,
        "sli": RatioSli(
            total=_sel('http_requests_total{job="checkout"}', "{{.window}}"),
            good=_sel('http_requests_total{job="checkout",code!~"5.."}', "{{.window}}"),
            counter=True,
        ),
        "alert_conditions": (AlertCondition("fast-burn", "page", 14.4, "1h", "5m"),),
        "timeslice_target": None,
    },
    "good-latency-timeslices.yaml": {
        "name": "search-latency",
        "description": "p95 latency of search stays under 300 ms",
        "objective": 0.95,
        "budgeting_method": BudgetingMethod.TIMESLICES,
        "sli": ThresholdSli(_sel('service:http_request_duration_seconds:p95{service="search"}'), "lte", 0.3),
        "timeslice_target": 1.0,
        "timeslice_window": timedelta(minutes=5),
        "exclude_maintenance": True,
        "missing": "bad",
        "labels": {"team": "search", "tier": "1,critical"},
    },
    "good-calendar-month.yaml": {
        "objective": 0.995,
        "window": TimeWindow("1M", False, datetime(2024, 1, 31), "America/New_York"),
        "budgeting_method": BudgetingMethod.RATIO_TIMESLICES,
        "sli": RatioSli(
            total=_sel('billing_requests_per_second{env="prod"}'),
            bad=_sel('billing_errors_per_second{env="prod"}'),
        ),
        "timeslice_window": timedelta(minutes=10),
        "min_events": 10,
    },
    "good-multi-doc-refs.yaml": {
        "name": "orders-availability",
        "objective": 0.995,
        "window": TimeWindow("30d"),
        "sli": RatioSli(
            total=_sel('http_requests_total{service="orders"}', "5m"),
            bad=_sel('http_requests_total{service="orders",code=~"5.."}', "5m"),
            counter=True,
        ),
        "alert_conditions": (
            AlertCondition("fast-burn", "page", 14.4, "1h", "5m"),
            AlertCondition("slow-burn", "ticket", 3.0, "1d", ""),
        ),
        "min_events": 50,
    },
}


@pytest.mark.parametrize("fixture", list(GOOD), ids=list(GOOD))
def test_good_fixture_reads_as_expected(fixture: str) -> None:
    spec = load_openslo((FIXTURES / fixture).read_text())[0]
    for attribute, expected in GOOD[fixture].items():
        assert getattr(spec, attribute) == expected, attribute


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("good-*.yaml")), ids=lambda p: p.stem)
def test_good_fixture_round_trips_through_export(path: Path) -> None:
    specs = load_openslo(path.read_text())
    assert specs
    for spec in specs:
        written = yaml.safe_dump_all(to_openslo(spec))
        assert load_openslo(written) == [spec]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_fixture_names_the_field(path: Path) -> None:
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# error: "), "each bad fixture states its error on line 1"
    with pytest.raises(ConfigError) as caught:
        load_openslo(text)
    assert first.removeprefix("# error: ") in caught.value.message


def test_multi_doc_resolves_refs_and_event_slis() -> None:
    specs = load_openslo((FIXTURES / "good-multi-doc-refs.yaml").read_text())
    assert [s.name for s in specs] == ["orders-availability", "orders-placed"]
    placed = specs[1]
    assert placed.sli == EventRatioSli("com.shop.order.", "com.shop.order.failed", "orders")
    assert (placed.timeslice_target, placed.timeslice_window) == (0.9, timedelta(hours=1))
    assert placed.window == TimeWindow("4w")
    kinds = [(d["kind"], d["metadata"]["name"]) for d in specs[0].source["documents"]]
    assert kinds[0] == ("SLO", "orders-availability")
    assert {
        ("Service", "orders"),
        ("SLI", "orders-non-5xx"),
        ("DataSource", "prometheus-main"),
        ("AlertPolicy", "orders-page"),
        ("AlertCondition", "fast-burn"),
        ("AlertPolicy", "orders-ticket"),
    } <= set(kinds)
    assert ("AlertNotificationTarget", "oncall") not in kinds


def test_json_object_and_list_read_like_yaml() -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "good-multi-doc-refs.yaml").read_text()))
    from_yaml = load_openslo((FIXTURES / "good-multi-doc-refs.yaml").read_text())
    assert load_openslo(json.dumps(docs)) == from_yaml
    assert load_openslo(docs) == from_yaml
    slo = docs[-1]
    assert load_openslo(json.dumps(slo)) == load_openslo(slo) == from_yaml[1:]
    assert load_openslo(json.dumps(slo).encode()) == from_yaml[1:]


def test_target_percent_is_the_exact_fraction() -> None:
    doc = yaml.safe_load((FIXTURES / "good-checkout.yaml").read_text())
    doc["spec"]["objectives"] = [{"targetPercent": 99.9}]
    assert load_openslo(doc)[0].objective == 0.999


def test_unparseable_text_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot read OpenSLO documents"):
        load_openslo("kind: [unclosed")
    with pytest.raises(ConfigError, match="cannot read OpenSLO documents"):
        load_openslo('{"kind": ')


# --------------------------------------------------------------------------- export round trip

_label_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_rfc1123 = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    metric = draw(st.from_regex(r"[a-z_][a-z0-9_:]{0,12}", fullmatch=True))
    pairs = draw(st.lists(st.tuples(_label_names, st.sampled_from(["=", "!=", "=~"]), _values), max_size=3))
    body = ",".join(f'{name}{op}"{value}"' for name, op, value in pairs)
    window = draw(st.sampled_from(["", "{{.window}}", "5m"]))
    text = f"{metric}{{{body}}}" if pairs else metric
    return parse_query(f"rate({text}[{window}])" if window else text, "q")


@st.composite
def windows(draw: st.DrawFn) -> TimeWindow:
    if draw(st.booleans()):
        return TimeWindow(draw(st.sampled_from(["5m", "1h", "7d", "28d", "30d", "4w"])))
    start = draw(
        st.none()
        | st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1)).map(lambda d: d.replace(microsecond=0))
    )
    zone = draw(st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]))
    return TimeWindow(
        draw(st.sampled_from(["1M", "1Q", "1Y", "1w", "1d"])), False, start, zone if start else "UTC"
    )


@st.composite
def specs(draw: st.DrawFn) -> SloSpec:
    method = draw(st.sampled_from(list(BudgetingMethod)))
    kind = draw(st.sampled_from(["good", "bad", "threshold", "events"]))
    sli: RatioSli | ThresholdSli | EventRatioSli
    if kind == "threshold":
        sli = ThresholdSli(
            draw(selectors()),
            draw(st.sampled_from(["lte", "lt", "gte", "gt"])),
            draw(st.floats(-1e6, 1e6, allow_nan=False)),
        )
    elif kind == "events":
        sli = EventRatioSli(
            draw(st.sampled_from(["com.shop.order.", "a."])),
            draw(st.sampled_from(["com.shop.order.failed", "a.bad"])),
            draw(st.sampled_from(["", "shop"])),
        )
    else:
        sli = RatioSli(total=draw(selectors()), counter=draw(st.booleans()), **{kind: draw(selectors())})
    target: float | None = None
    if method is BudgetingMethod.TIMESLICES and not isinstance(sli, ThresholdSli):
        target = draw(st.integers(1, 100)) / 100
    elif method is not BudgetingMethod.OCCURRENCES:
        target = draw(st.none() | st.integers(1, 100).map(lambda k: k / 100))
    conditions = draw(
        st.lists(
            st.builds(
                AlertCondition,
                _rfc1123,
                st.sampled_from(["page", "ticket"]),
                st.floats(0.1, 100),
                st.sampled_from(["5m", "1h", "1d"]),
                st.sampled_from(["", "5m"]),
            ),
            max_size=3,
        )
    )
    return SloSpec(
        name=draw(_rfc1123),
        service=draw(st.sampled_from(["checkout", "search api"])),
        objective=draw(st.integers(0, 99999)) / 100000,
        window=draw(windows()),
        budgeting_method=method,
        sli=sli,
        description=draw(st.sampled_from(["", "why it matters"])),
        display_name=draw(st.sampled_from(["", "Checkout availability"])),
        timeslice_target=target,
        timeslice_window=(
            timedelta(minutes=draw(st.integers(1, 1440)))
            if method is not BudgetingMethod.OCCURRENCES
            else timedelta(minutes=1)
        ),
        exclude_maintenance=draw(st.booleans()),
        missing=draw(st.sampled_from(["ignore", "good", "bad"])),
        min_events=draw(st.integers(0, 1000)),
        alert_conditions=tuple(conditions),
        labels=draw(st.dictionaries(_label_names, st.sampled_from(["a", "b,c", ""]), max_size=2)),
    )


@given(specs())
def test_export_then_load_gives_the_same_spec(spec: SloSpec) -> None:
    documents = to_openslo(spec)
    assert [d["kind"] for d in documents] == ["SLO"]
    assert "indicator" in documents[0]["spec"]
    assert load_openslo(documents) == [spec]
    assert load_openslo(yaml.safe_dump_all(documents)) == [spec]


# --------------------------------------------------------------------------- window bounds


@pytest.mark.parametrize(
    ("window", "at", "start", "end"),
    [
        (TimeWindow("28d"), datetime(2024, 3, 1, 12), datetime(2024, 2, 2, 12), datetime(2024, 3, 1, 12)),
        (TimeWindow("1M", False), datetime(2024, 2, 29, 23, 59), datetime(2024, 2, 1), datetime(2024, 3, 1)),
        (TimeWindow("1M", False), datetime(2024, 1, 31, 23), datetime(2024, 1, 1), datetime(2024, 2, 1)),
        (TimeWindow("1M", False), datetime(2024, 3, 1), datetime(2024, 3, 1), datetime(2024, 4, 1)),
        # anchored on the 31st: February periods end on the last day of February (leap or not)
        (
            TimeWindow("1M", False, datetime(2024, 1, 31)),
            datetime(2024, 2, 15),
            datetime(2024, 1, 31),
            datetime(2024, 2, 29),
        ),
        (
            TimeWindow("1M", False, datetime(2024, 1, 31)),
            datetime(2024, 3, 1),
            datetime(2024, 2, 29),
            datetime(2024, 3, 31),
        ),
        (
            TimeWindow("1M", False, datetime(2023, 1, 31)),
            datetime(2023, 2, 27),
            datetime(2023, 1, 31),
            datetime(2023, 2, 28),
        ),
        (
            TimeWindow("1M", False, datetime(2023, 1, 31)),
            datetime(2023, 2, 28, 12),
            datetime(2023, 2, 28),
            datetime(2023, 3, 31),
        ),
        (
            TimeWindow("1M", False, datetime(2023, 1, 31)),
            datetime(2023, 4, 30, 23),
            datetime(2023, 4, 30),
            datetime(2023, 5, 31),
        ),
        # New York: local midnight is 05:00 UTC in winter, 04:00 UTC in summer
        (
            TimeWindow("1M", False, timezone="America/New_York"),
            datetime(2024, 3, 15, 12),
            datetime(2024, 3, 1, 5),
            datetime(2024, 4, 1, 4),
        ),
        (
            TimeWindow("1M", False, timezone="America/New_York"),
            datetime(2024, 3, 1, 3),
            datetime(2024, 2, 1, 5),
            datetime(2024, 3, 1, 5),
        ),
        (
            TimeWindow("1d", False, timezone="America/New_York"),
            datetime(2024, 3, 10, 12),
            datetime(2024, 3, 10, 5),
            datetime(2024, 3, 11, 4),
        ),
        (
            TimeWindow("1M", False, datetime(2020, 1, 21, 12, 30), "America/New_York"),
            datetime(2024, 2, 21, 17, 29),
            datetime(2024, 1, 21, 17, 30),
            datetime(2024, 2, 21, 17, 30),
        ),
        (TimeWindow("1Q", False), datetime(2024, 5, 10), datetime(2024, 4, 1), datetime(2024, 7, 1)),
        (TimeWindow("1Y", False), datetime(2024, 12, 31, 23, 59), datetime(2024, 1, 1), datetime(2025, 1, 1)),
        (TimeWindow("1w", False), datetime(2024, 1, 10, 9), datetime(2024, 1, 8), datetime(2024, 1, 15)),
    ],
    ids=[
        "rolling",
        "leap-feb",
        "jan-31",
        "mar-1",
        "anchor-31-leap",
        "anchor-31-after-feb",
        "anchor-31-feb-2023",
        "anchor-31-feb-28",
        "anchor-31-april",
        "ny-dst-march",
        "ny-utc-vs-local",
        "ny-dst-day",
        "ny-anchored",
        "quarter",
        "year",
        "week-monday",
    ],
)
def test_window_bounds(window: TimeWindow, at: datetime, start: datetime, end: datetime) -> None:
    assert window_bounds(window, at) == (start, end)


@given(
    st.sampled_from(["1M", "2M", "1Q", "1Y", "1w", "1d", "6h"]),
    st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1)),
    st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
    st.datetimes(datetime(2001, 1, 1), datetime(2035, 1, 1)),
)
def test_calendar_period_contains_its_instant_and_abuts_the_next(
    duration: str, anchor: datetime | None, zone: str, at: datetime
) -> None:
    window = TimeWindow(duration, False, anchor, zone)
    start, end = window_bounds(window, at)
    assert start <= at < end
    assert window_bounds(window, end)[0] == end


def test_window_bounds_names_a_bad_zone() -> None:
    with pytest.raises(ConfigError, match=re.escape("timeWindow.timeZone")):
        window_bounds(TimeWindow("1M", False, timezone="Nowhere/Land"), datetime(2024, 1, 1))
