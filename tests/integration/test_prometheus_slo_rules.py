"""A real Prometheus loads the generated SLO rule file and evaluates every rule without error.

Prometheus scrapes itself (so the SLO selectors see real series, including
``prometheus_http_requests_total`` as the counter SLI) and evaluates every second; the test
waits until every group has been evaluated, then reads ``/api/v1/rules``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.selectors import parse_selector
from slo.rules import dump_rules, prometheus_rules
from slo.spec import BudgetingMethod, RatioSli, Selector, SloSpec, ThresholdSli, TimeWindow
from tests.conftest import free_port
from tests.integration.processes import Process, answers
from tests.integration.test_prometheus_alertmanager import binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def sel(text: str) -> Selector:
    return Selector(text, parse_selector(text))


SPECS = [
    SloSpec(
        name="prometheus-api",
        service="prometheus",
        objective=0.999,
        window=TimeWindow("28d"),
        budgeting_method=BudgetingMethod.OCCURRENCES,
        sli=RatioSli(
            total=sel('prometheus_http_requests_total{job="self"}'),
            bad=sel('prometheus_http_requests_total{job="self",code=~"5.."}'),
            counter=True,
        ),
    ),
    SloSpec(
        name="scrape-samples",
        service="prometheus",
        objective=0.99,
        window=TimeWindow("1M", rolling=False),
        budgeting_method=BudgetingMethod.OCCURRENCES,
        sli=RatioSli(total=sel('scrape_samples_scraped{job="self"}'), good=sel('up{job="self"}')),
    ),
    SloSpec(
        name="scrape-latency",
        service="prometheus",
        objective=0.99,
        window=TimeWindow("30d"),
        budgeting_method=BudgetingMethod.TIMESLICES,
        sli=ThresholdSli(sel('scrape_duration_seconds{job="self"}'), "lte", 0.5),
        timeslice_target=1.0,
    ),
]


def evaluated(group: dict[str, Any]) -> bool:
    return not str(group.get("lastEvaluation", "")).startswith("0001-")


def test_prometheus_loads_and_evaluates_the_generated_rules(tmp_path: Path) -> None:
    prometheus = binary("prometheus")
    export = prometheus_rules(SPECS)
    rules_file = tmp_path / "slo-rules.yml"
    rules_file.write_text(dump_rules(export))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules_file)],
                "scrape_configs": [
                    {"job_name": "self", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                ],
            }
        )
    )
    prom = Process(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )
    prom.start()
    try:
        prom.wait_until("/-/ready", lambda: answers(f"{url}/-/ready"), 30)

        def groups() -> list[dict[str, Any]]:
            body = httpx.get(f"{url}/api/v1/rules", timeout=5).json()
            assert body["status"] == "success", body
            return list(body["data"]["groups"])

        def scraped() -> bool:
            query = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="self"}'}, timeout=5).json()
            return bool(query["data"]["result"])

        # Wait for series, then for one more evaluation of every group, so the rules see data.
        prom.wait_until("a scrape of itself", scraped, 30)
        before = {g["name"]: g.get("lastEvaluation") for g in groups()}
        prom.wait_until(
            "every group evaluated after the scrape",
            lambda: all(g.get("lastEvaluation") != before.get(g["name"]) for g in groups()),
            30,
        )
        loaded = groups()
        assert sorted(g["name"] for g in loaded) == sorted(g["name"] for g in export.document["groups"])
        assert all(evaluated(g) for g in loaded)
        rules = [r for g in loaded for r in g["rules"]]
        assert len(rules) == export.counts["rules"]
        bad = {r.get("name"): r.get("lastError") for r in rules if r["health"] not in ("ok", "unknown")}
        assert not bad, f"rules with errors: {bad}\n{prom.tail()}"
        alerts = sorted((r["name"], r["labels"]["sloth_severity"]) for r in rules if r["type"] == "alerting")
        assert alerts == sorted(
            (a["alert"], a["labels"]["sloth_severity"])
            for g in export.document["groups"]
            for a in g["rules"]
            if "alert" in a
        )
        assert len(alerts) == 2 * len(SPECS)
    finally:
        assert prom.stop(timeout=10), prom.tail()
