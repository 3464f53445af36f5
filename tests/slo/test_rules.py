"""Prometheus rules export: golden files, promtool (syntax and rule unit tests), the CLI.

Golden files: ``golden/in-<name>.yaml`` (OpenSLO) -> ``golden/out-<name>.yaml``. After an
intended change, regenerate with ``OPSLOOP_UPDATE_GOLDEN=1 pytest tests/slo/test_rules.py``
and review the diff; otherwise any difference fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from core.errors import ConfigError
from core.selectors import parse_selector
from slo import conventions as c
from slo.rules import dump_rules, prometheus_rules, promql_duration
from slo.spec import (
    BudgetingMethod,
    EventRatioSli,
    RatioSli,
    Selector,
    SloSpec,
    ThresholdSli,
    TimeWindow,
)
from slo.windows import load_windows

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removeprefix("in-").removesuffix(".yaml") for p in GOLDEN.glob("in-*.yaml"))
WINDOWS = load_windows()
UPDATE = os.environ.get("OPSLOOP_UPDATE_GOLDEN") == "1"


def sel(text: str) -> Selector:
    return Selector(text, parse_selector(text))


def checkout(**changes: Any) -> SloSpec:
    """The checkout example, built directly (no parser involved)."""
    fields: dict[str, Any] = {
        "name": "checkout-availability",
        "service": "checkout",
        "objective": 0.999,
        "window": TimeWindow("30d"),
        "budgeting_method": BudgetingMethod.OCCURRENCES,
        "sli": RatioSli(
            total=sel('http_requests_total{job="checkout"}'),
            good=sel('http_requests_total{job="checkout",code!~"5.."}'),
            counter=True,
        ),
    }
    return SloSpec(**{**fields, **changes})


def latency() -> SloSpec:
    return SloSpec(
        name="api-latency",
        service="api",
        objective=0.99,
        window=TimeWindow("30d"),
        budgeting_method=BudgetingMethod.TIMESLICES,
        sli=ThresholdSli(sel('api_p95_seconds{service="api"}'), "lte", 0.3),
        timeslice_target=1.0,
    )


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not installed: run `make integration-deps` (Debian package `prometheus` "
            "provides /usr/bin/promtool)"
        )
    return path


# --- golden files ---


def test_the_golden_cases_cover_each_kind_of_sli() -> None:
    assert {
        "checkout-availability",  # counter ratio, good/total (wire-formats 5a)
        "payments-errors",  # counter ratio, bad/total
        "billing-jobs",  # gauge ratio
        "api-latency",  # threshold
        "orders-events",  # event SLI: skipped
    } <= set(CASES)


@pytest.mark.parametrize("name", CASES, ids=CASES)
def test_golden(name: str) -> None:
    from slo.spec import load_openslo

    specs = load_openslo((GOLDEN / f"in-{name}.yaml").read_text())
    got = dump_rules(prometheus_rules(specs))
    out = GOLDEN / f"out-{name}.yaml"
    if UPDATE:
        out.write_text(got)
    assert out.exists(), f"{out.name} missing: run with OPSLOOP_UPDATE_GOLDEN=1"
    assert got == out.read_text(), f"{out.name} differs: review, then regenerate with OPSLOOP_UPDATE_GOLDEN=1"


def test_promtool_accepts_every_golden_output() -> None:
    outputs = sorted(GOLDEN.glob("out-*.yaml"))
    assert len(outputs) == len(CASES)
    run = subprocess.run([promtool(), "check", "rules", *map(str, outputs)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("SUCCESS") == len(outputs)


# --- what the rules say ---


def rules_of(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for g in document["groups"] for r in g["rules"] if kind in r]


def test_groups_windows_and_names_follow_sloth() -> None:
    export = prometheus_rules([checkout(labels={"team": "shop"})], WINDOWS)
    doc = export.document
    assert [g["name"] for g in doc["groups"]] == [
        "opsloop-slo-sli-recordings-checkout-checkout-availability",
        "opsloop-slo-meta-recordings-checkout-checkout-availability",
        "opsloop-slo-alerts-checkout-checkout-availability",
    ]
    records = [r["record"] for r in rules_of(doc, "record")]
    windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
    assert records[: len(windows)] == [f"slo:sli_error:ratio_rate{w}" for w in windows]
    assert set(records[len(windows) :]) == {
        c.OBJECTIVE_RATIO,
        c.ERROR_BUDGET_RATIO,
        c.TIME_PERIOD_DAYS,
        c.CURRENT_BURN_RATE,
        c.PERIOD_BURN_RATE,
        c.PERIOD_ERROR_BUDGET_REMAINING,
        c.INFO_METRIC,
    }
    for rule in rules_of(doc, "record"):
        assert rule["labels"]["sloth_id"] == "checkout-checkout-availability"
        assert rule["labels"]["team"] == "shop"
    alerts = rules_of(doc, "alert")
    assert [a["labels"]["sloth_severity"] for a in alerts] == ["page", "ticket"]
    assert {a["alert"] for a in alerts} == {"CheckoutAvailabilitySLOBurnRate"}
    assert export.slos == ("checkout-availability",)
    assert export.counts == {"groups": 3, "rules": 17, "alerts": 2}


def factors(expr: str) -> list[tuple[float, float]]:
    return [(float(f), float(b)) for f, b in re.findall(r"> \(([\d.e-]+) \* ([\d.e-]+)\)", expr)]


@pytest.mark.parametrize(
    ("period", "page", "ticket"),
    [("30d", [14.4, 6.0], [3.0, 1.0]), ("28d", [13.44, 5.6], [2.8, 0.9333]), ("1M", [14.4, 6.0], [3.0, 1.0])],
    ids=["30d-workbook", "28d-rescaled", "calendar-month-as-30d"],
)
def test_burn_factors_consume_the_table_budget_share_of_the_period(
    period: str, page: list[float], ticket: list[float]
) -> None:
    doc = prometheus_rules([checkout(window=TimeWindow(period))], WINDOWS).document
    page_alert, ticket_alert = rules_of(doc, "alert")
    for alert, expected in ((page_alert, page), (ticket_alert, ticket)):
        found = factors(alert["expr"])
        assert len(found) == 2 * len(expected)  # short and long of each row
        assert [f for f, _ in found[::2]] == pytest.approx(expected, abs=1e-4)
        assert [b for _, b in found] == pytest.approx([0.001] * len(found))


def test_the_30d_factors_are_the_table_factors() -> None:
    doc = prometheus_rules([checkout()], WINDOWS).document
    found = [f for a in rules_of(doc, "alert") for f, _ in factors(a["expr"])[::2]]
    assert found == [w.factor for w in WINDOWS]


@pytest.mark.parametrize(
    ("sli", "guard"),
    [
        (checkout().sli, 'sum(increase(http_requests_total{job="checkout"}[1h])) >= 25'),
        (
            RatioSli(total=sel('jobs_per_second{q="a"}'), bad=sel('failed_per_second{q="a"}')),
            'sum(sum_over_time(jobs_per_second{q="a"}[1h])) >= 25',
        ),
        (latency().sli, "count_over_time((max(max_over_time(api_p95_seconds"),
    ],
    ids=["counter", "gauge", "threshold"],
)
def test_low_traffic_guard_counts_events_in_the_long_window(sli: Any, guard: str) -> None:
    guarded = prometheus_rules([checkout(sli=sli, min_events=25)], WINDOWS).document
    page = rules_of(guarded, "alert")[0]["expr"]
    assert page.count("and on ()") == 2
    assert guard in page
    unguarded = prometheus_rules([checkout(sli=sli, min_events=0)], WINDOWS).document
    assert "and on ()" not in rules_of(unguarded, "alert")[0]["expr"]


def test_event_slis_are_skipped_and_reported() -> None:
    orders = checkout(name="orders", sli=EventRatioSli("com.shop.order.", "com.shop.order.failed"))
    export = prometheus_rules([orders, checkout()], WINDOWS)
    assert export.slos == ("checkout-availability",)
    assert [s.slo for s in export.skipped] == ["orders"]
    text = dump_rules(export)
    assert "# skipped SLO orders: event-based SLI" in text
    assert yaml.safe_load(text) == export.document


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([checkout(), checkout()], "appears twice"),
        ([checkout(objective=1.0)], "objective"),
        ([checkout(window=TimeWindow("soon"))], "window 'soon'"),
        ([checkout(sli=ThresholdSli(sel("x"), "eq", 1.0))], "threshold op 'eq'"),
    ],
    ids=["duplicate-id", "objective-100%", "bad-period", "bad-op"],
)
def test_invalid_specs_raise_config_errors(specs: list[SloSpec], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        prometheus_rules(specs, WINDOWS)


def test_label_values_are_escaped() -> None:
    doc = prometheus_rules([checkout(service='we"ird\\svc')], WINDOWS).document
    expr = rules_of(doc, "alert")[0]["expr"]
    assert 'sloth_service="we\\"ird\\\\svc"' in expr


@given(st.integers(min_value=1, max_value=400 * 86400))
def test_promql_duration_keeps_the_length(seconds: int) -> None:
    text = promql_duration(timedelta(seconds=seconds))
    count, unit = re.fullmatch(r"(\d+)([smhd])", text).groups()  # type: ignore[union-attr]
    assert int(count) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] == seconds


# --- promtool: the rules do what they say on synthetic series ---


def alert_case(
    eval_time: str, series: dict[str, str], expected: list[dict[str, str]], name: str
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": k, "values": v} for k, v in series.items()],
        "alert_rule_test": [
            {
                "eval_time": eval_time,
                "alertname": name,
                "exp_alerts": [
                    {
                        "exp_labels": labels,
                        "exp_annotations": {
                            "summary": f"{labels['sloth_slo']} ({labels['sloth_service']}): "
                            "the error budget is burning too fast",
                            "title": f"({labels['sloth_severity']}) {labels['sloth_service']} "
                            f"{labels['sloth_slo']} SLO error budget burn rate is too fast.",
                        },
                    }
                    for labels in expected
                ],
            }
        ],
    }


def fired(spec: SloSpec, severity: str, window: str) -> dict[str, str]:
    return {
        "sloth_id": f"{spec.service}-{spec.name}",
        "sloth_service": spec.service,
        "sloth_slo": spec.name,
        "sloth_window": window,
        "service": spec.service,
        "severity": severity,
        "sloth_severity": severity,
    }


def test_promtool_rule_tests_fire_page_and_ticket_only_when_they_should(tmp_path: Path) -> None:
    """Unit tests run by promtool on the generated rules:

    * checkout at 100 req/s with 2 % errors (20x a 99.9 % budget): page and ticket fire;
    * the same at 0.05 % errors (half the budget rate): nothing fires;
    * 50 % errors but 0.1 request per minute (6 per hour, under min_events = 10): nothing fires;
    * p95 latency above its 300 ms threshold for the last 70 minutes: page and ticket fire.
    """
    spec, slow = checkout(), latency()
    rules = tmp_path / "rules.yml"
    rules.write_text(dump_rules(prometheus_rules([spec, slow], WINDOWS)))
    ok, bad = (
        'http_requests_total{job="checkout",code="200"}',
        'http_requests_total{job="checkout",code="500"}',
    )
    name, slow_name = c.alert_name(spec.name), c.alert_name(slow.name)
    both = [fired(spec, "page", "5m"), fired(spec, "ticket", "2h")]
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "5m",  # fewer evaluations: the 3d subqueries dominate the runtime
        "tests": [
            alert_case("70m", {ok: "0+5880x100", bad: "0+120x100"}, both, name),
            alert_case("70m", {ok: "0+5997x100", bad: "0+3x100"}, [], name),
            alert_case("70m", {ok: "0+0.05x100", bad: "0+0.05x100"}, [], name),
            alert_case(
                "80m",
                {'api_p95_seconds{service="api"}': "0.2x9 0.5x90"},
                [fired(slow, "page", "5m"), fired(slow, "ticket", "2h")],
                slow_name,
            ),
            alert_case("80m", {'api_p95_seconds{service="api"}': "0.2x100"}, [], slow_name),
        ],
    }
    unit = tmp_path / "tests.yml"
    unit.write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run(
        [promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr


# --- the CLI ---


@pytest.fixture
def cli() -> CliRunner:
    from api.cli import app
    from api.cli.slo import register

    if not any(group.name == "slo" for group in app.registered_groups):
        register(app)
    return CliRunner()


def test_cli_writes_rules_from_spec_files(cli: CliRunner, tmp_path: Path) -> None:
    from api.cli import app

    out = tmp_path / "slo-rules.yml"
    specs = [str(GOLDEN / "in-checkout-availability.yaml"), str(GOLDEN / "in-orders-events.yaml")]
    result = cli.invoke(app, ["slo", "rules", str(out), "--json", *[a for s in specs for a in ("--spec", s)]])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    document = yaml.safe_load(out.read_text())
    rules = [r for g in document["groups"] for r in g["rules"]]
    assert summary["file"] == str(out)
    assert summary["slos"] == 1 and [s["slo"] for s in summary["skipped"]] == ["orders-placed"]
    assert (summary["groups"], summary["rules"], summary["alerts"]) == (
        len(document["groups"]),
        len(rules),
        sum("alert" in r for r in rules),
    )
    plain = cli.invoke(app, ["slo", "rules", str(out), "--spec", specs[0]])
    assert plain.exit_code == 0 and f"wrote {out}: 1 SLOs, 3 groups" in plain.stdout


def test_cli_reads_the_slos_stored_in_the_db(cli: CliRunner, tmp_path: Path) -> None:
    from api.cli import app
    from core.store import Store
    from slo.repository import save_specs
    from slo.spec import load_openslo

    db = str(tmp_path / "slo.duckdb")
    names = ("checkout-availability", "api-latency")
    specs = [s for n in names for s in load_openslo((GOLDEN / f"in-{n}.yaml").read_text())]
    with Store(db) as store:
        save_specs(store, specs, datetime.now(UTC).replace(tzinfo=None))
    from_db, from_files = tmp_path / "db.yml", tmp_path / "files.yml"
    result = cli.invoke(app, ["slo", "rules", str(from_db), "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["slos"] == 2
    files = [a for n in names for a in ("--spec", str(GOLDEN / f"in-{n}.yaml"))]
    assert cli.invoke(app, ["slo", "rules", str(from_files), *files]).exit_code == 0
    by_group = {g["name"]: g for g in yaml.safe_load(from_db.read_text())["groups"]}
    assert by_group == {g["name"]: g for g in yaml.safe_load(from_files.read_text())["groups"]}


def test_cli_names_the_file_of_a_bad_spec(cli: CliRunner, tmp_path: Path) -> None:
    from api.cli import app

    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: Not_Valid}\nspec: {}\n")
    out = tmp_path / "never.yml"
    result = cli.invoke(app, ["slo", "rules", str(out), "--spec", str(broken)])
    assert result.exit_code == 1
    assert str(broken) in result.output
    assert not out.exists()
