"""Prometheus rules for SLOs, the way Sloth writes them: SLO specs -> one rule file.

Per SLO, three rule groups (names in ``slo/conventions.py``):

* **SLI recordings**: ``slo:sli_error:ratio_rate<w>`` for every window of the alert-windows
  table (``5m`` .. ``3d``), plus the SLO period (``28d``, ``30d``...) computed Sloth's way, as
  the mean of the 5 m ratio over the period (cheap; exact only for steady traffic).
* **Metadata recordings**: objective, error budget, period in days, current and period burn
  rate, remaining budget, and ``opsloop_slo_info``.
* **Alerts**: one page and one ticket alert (multi-window, multi-burn-rate, SRE Workbook):
  for each row of the table, both the short and the long error ratio exceed
  ``factor * error_budget``, written ``(14.4 * 0.001)`` as Sloth does. The factor is
  recomputed for the SLO's period, ``budget_percent / 100 * period / long`` (Sloth does
  the same through its per-period window catalogs), so a 28-day SLO pages at 13.44x.

How each SLI becomes an error ratio over a window ``w``:

=====================  ==============================================================
RatioSli, counter      ``sum(rate(bad[w]))`` or ``sum(rate(total[w])) - sum(rate(good[w]))``,
                       over ``sum(rate(total[w]))``; a missing ``good``/``bad`` series
                       counts as 0 (``or vector(0)``) so that a counter that has not yet
                       appeared (no errors so far, or no success during an outage) does
                       not hide the ratio
RatioSli, gauge        the same with ``sum(sum_over_time(sel[w]))`` (the values are summed)
ThresholdSli           the fraction of slices (``timeslice_window``, 1 m by default) in
                       which the worst matching sample breaks the threshold:
                       ``1 - avg_over_time((max(max_over_time(sel[1m])) <= bool X)[w:1m])``
                       (``min`` for ``gte``/``gt``); slices without samples are ignored
EventRatioSli          no Prometheus source: skipped, reported in ``RuleExport.skipped``
                       and as a comment at the top of the file
=====================  ==============================================================

The ratio is the event ratio whatever the budgeting method (Sloth's model); opsloop's own
evaluation (``slo/evaluate.py``) applies Timeslices/RatioTimeslices exactly.

**Low-traffic guard.** With ``min_events > 0`` each (short, long) pair of an alert also
requires that many events in the long window, ``and on () (<events over long> >= N)``,
where events are ``sum(increase(total[long]))`` for counters,
``sum(sum_over_time(total[long]))`` for gauges, and the number of slices with samples for
threshold SLIs. ``on ()`` matches the single unlabelled guard series against every alert
series. A handful of errors out of a few requests then never pages.

Calendar periods (``1M``, ``1Q``, ``1Y``) cannot be aligned in PromQL: they are exported as
the rolling ``30d``/``90d``/``365d`` (per unit), which the info metric's ``opsloop_period``
label keeps visible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from core.errors import ConfigError
from slo import conventions as c
from slo.spec import EventRatioSli, RatioSli, Selector, SloSpec, ThresholdSli
from slo.windows import AlertWindow, load_windows

__all__ = [
    "RuleExport",
    "SkippedSlo",
    "dump_rules",
    "prometheus_rules",
    "promql_duration",
]


@dataclass(frozen=True, slots=True)
class SkippedSlo:
    """An SLO left out of the rule file, and why."""

    slo: str
    reason: str


@dataclass(frozen=True, slots=True)
class RuleExport:
    """The rule-file document (``{"groups": [...]}``, what Prometheus reads), the SLOs in it, and
    the SLOs skipped."""

    document: dict[str, Any]
    slos: tuple[str, ...] = ()
    skipped: tuple[SkippedSlo, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """Groups, rules (recording and alerting) and alerts in the document."""
        groups = self.document["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return {"groups": len(groups), "rules": len(rules), "alerts": sum("alert" in r for r in rules)}


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
#: calendar units of OpenSLO periods, exported as rolling days
_CALENDAR_DAYS = {"M": 30, "Q": 90, "Y": 365}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y|M|Q|Y)$")
_OPS = {"lte": ("<=", "max"), "lt": ("<", "max"), "gte": (">=", "min"), "gt": (">", "min")}


def promql_duration(value: str | timedelta) -> str:
    """A Prometheus duration for ``value``: OpenSLO calendar units become rolling days.

    >>> promql_duration("28d"), promql_duration("1M"), promql_duration(timedelta(minutes=90))
    ('28d', '30d', '90m')
    >>> promql_duration(timedelta(days=1))
    '1d'
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds <= 0 or seconds != int(seconds):
            raise ConfigError(f"window {value}: must be a positive whole number of seconds")
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{int(seconds // size)}{unit}"
        return f"{int(seconds)}s"
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"window {value!r}: expected a duration such as 5m, 1h, 28d or 1M")
    count, unit = int(match.group(1)), match.group(2)
    return f"{count * _CALENDAR_DAYS[unit]}d" if unit in _CALENDAR_DAYS else f"{count}{unit}"


def _seconds(value: str | timedelta) -> float:
    match = _DURATION.match(promql_duration(value))
    assert match is not None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _num(value: float) -> str:
    """A float as short PromQL text: 14.4, 6, 0.001 (no binary noise such as 0.0009999999999999432)."""
    return format(round(value, 12), ".12g")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _selector(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={_quote(v)}" for k, v in labels.items()) + "}"


def prometheus_rules(specs: Iterable[SloSpec], windows: Sequence[AlertWindow] | None = None) -> RuleExport:
    """Build the rule file for ``specs``: three groups per SLO, event SLIs skipped.

    ``windows`` is the alert-windows table (default: ``slo/windows.yaml``). Raises
    ``ConfigError`` on two SLOs with the same ``sloth_id`` (Prometheus rejects duplicate group
    names), an objective outside (0, 1), a bad period or threshold operator.

    Example
    -------
    >>> from core.selectors import parse_selector
    >>> from slo.spec import BudgetingMethod, RatioSli, Selector, TimeWindow
    >>> def sel(text):
    ...     return Selector(text, parse_selector(text))
    >>> sli = RatioSli(total=sel('http_requests_total{job="cart"}'),
    ...                bad=sel('http_requests_total{job="cart",code=~"5.."}'), counter=True)
    >>> spec = SloSpec("cart-availability", "cart", 0.999, TimeWindow("30d"),
    ...                BudgetingMethod.OCCURRENCES, sli)
    >>> export = prometheus_rules([spec])
    >>> export.counts
    {'groups': 3, 'rules': 17, 'alerts': 2}
    >>> page = export.document["groups"][2]["rules"][0]
    >>> page["labels"]["sloth_severity"], "(14.4 * 0.001)" in page["expr"]
    ('page', True)
    """
    table = tuple(windows) if windows is not None else load_windows()
    if not table:
        raise ConfigError("windows: the alert-windows table is empty")
    groups: list[dict[str, Any]] = []
    exported: list[str] = []
    skipped: list[SkippedSlo] = []
    seen: set[str] = set()
    for spec in specs:
        if isinstance(spec.sli, EventRatioSli):
            skipped.append(
                SkippedSlo(spec.name, "event-based SLI (CloudEvents in opsloop): no Prometheus source")
            )
            continue
        ident = c.slo_id(spec.service, spec.name)
        if ident in seen:
            raise ConfigError(f"SLO {spec.name}: {c.SLOTH_ID} {ident!r} appears twice")
        seen.add(ident)
        exported.append(spec.name)
        groups.extend(_SloRules(spec, table).groups())
    return RuleExport({"groups": groups}, tuple(exported), tuple(skipped))


class _SloRules:
    """The rules of one SLO (a class only to share the labels and the SLI between the groups)."""

    def __init__(self, spec: SloSpec, windows: Sequence[AlertWindow]) -> None:
        if not 0.0 < spec.objective < 1.0:
            raise ConfigError(f"SLO {spec.name}: objective {spec.objective} is not in (0, 1)")
        self.spec = spec
        self.windows = windows
        self.ident = c.slo_id(spec.service, spec.name)
        self.id_labels = {c.SLOTH_ID: self.ident, c.SLOTH_SERVICE: spec.service, c.SLOTH_SLO: spec.name}
        self.labels = dict(sorted({**spec.labels, **self.id_labels}.items()))
        self.period = promql_duration(spec.window.duration)
        self.period_s = _seconds(spec.window.duration)
        self.budget = _num(1.0 - spec.objective)
        self.slice = promql_duration(spec.timeslice_window)

    def groups(self) -> list[dict[str, Any]]:
        return [
            {
                "name": c.group_name(c.SLI_GROUP_PREFIX, self.spec.service, self.spec.name),
                "rules": self.sli(),
            },
            {
                "name": c.group_name(c.META_GROUP_PREFIX, self.spec.service, self.spec.name),
                "rules": self.meta(),
            },
            {
                "name": c.group_name(c.ALERT_GROUP_PREFIX, self.spec.service, self.spec.name),
                "rules": self.alerts(),
            },
        ]

    # --- SLI recordings ---

    def sli(self) -> list[dict[str, Any]]:
        texts = {promql_duration(t) for w in self.windows for t in (w.short, w.long)}
        rules = [
            self._record(c.sli_error_ratio(w), self.error_ratio(w), {c.SLOTH_WINDOW: w})
            for w in sorted(texts, key=_seconds)
        ]
        if self.period not in texts:
            base = min(texts, key=_seconds)
            five = c.sli_error_ratio(base) + _selector(self.id_labels)
            expr = (
                f"sum_over_time({five}[{self.period}])\n"
                f"/ ignoring ({c.SLOTH_WINDOW})\n"
                f"count_over_time({five}[{self.period}])\n"
            )
            rules.append(self._record(c.sli_error_ratio(self.period), expr, {c.SLOTH_WINDOW: self.period}))
        return rules

    def error_ratio(self, window: str) -> str:
        sli = self.spec.sli
        if isinstance(sli, ThresholdSli):
            return f"1 - avg_over_time(({self._slice_ok(sli)})[{window}:{self.slice}])\n"
        assert isinstance(sli, RatioSli)
        total = self._events(sli.total, window, sli.counter)
        if sli.bad is not None:
            error = f"{self._events(sli.bad, window, sli.counter)} or vector(0)"
        elif sli.good is not None:
            error = f"{total} - ({self._events(sli.good, window, sli.counter)} or vector(0))"
        else:
            raise ConfigError(f"SLO {self.spec.name}: a ratio SLI needs good or bad")
        return f"({error})\n/\n({total})\n"

    @staticmethod
    def _events(selector: Selector, window: str, counter: bool) -> str:
        fn = "rate" if counter else "sum_over_time"
        return f"sum({fn}({selector.text}[{window}]))"

    def _slice_ok(self, sli: ThresholdSli) -> str:
        """1 when the worst sample of the slice meets the threshold, else 0 (one series)."""
        try:
            op, worst = _OPS[sli.op]
        except KeyError:
            raise ConfigError(
                f"SLO {self.spec.name}: threshold op {sli.op!r} is not one of {sorted(_OPS)}"
            ) from None
        return f"{worst}({worst}_over_time({sli.metric.text}[{self.slice}])) {op} bool {_num(sli.threshold)}"

    # --- metadata recordings ---

    def meta(self) -> list[dict[str, Any]]:
        sel = _selector(self.id_labels)
        on = f"on({', '.join((c.SLOTH_ID, c.SLOTH_SLO, c.SLOTH_SERVICE))}) group_left"
        days = self.period_s / 86400
        sli = self.spec.sli
        if isinstance(sli, ThresholdSli):
            kind = "threshold"
        else:
            kind = "ratio-counter" if isinstance(sli, RatioSli) and sli.counter else "ratio-gauge"
        info = {
            c.INFO_OBJECTIVE: _num(self.spec.objective),
            c.INFO_PERIOD: self.spec.window.duration,
            c.INFO_BUDGETING_METHOD: str(self.spec.budgeting_method),
            c.INFO_SLI_KIND: kind,
        }
        return [
            self._record(c.OBJECTIVE_RATIO, f"vector({_num(self.spec.objective)})"),
            self._record(c.ERROR_BUDGET_RATIO, f"vector(1-{_num(self.spec.objective)})"),
            self._record(c.TIME_PERIOD_DAYS, f"vector({_num(days)})"),
            self._record(
                c.CURRENT_BURN_RATE,
                f"{c.sli_error_ratio(self._shortest())}{sel}\n/ {on}\n{c.ERROR_BUDGET_RATIO}{sel}\n",
            ),
            self._record(
                c.PERIOD_BURN_RATE,
                f"{c.sli_error_ratio(self.period)}{sel}\n/ {on}\n{c.ERROR_BUDGET_RATIO}{sel}\n",
            ),
            self._record(c.PERIOD_ERROR_BUDGET_REMAINING, f"1 - {c.PERIOD_BURN_RATE}{sel}"),
            self._record(c.INFO_METRIC, "vector(1)", info),
        ]

    def _shortest(self) -> str:
        return min((promql_duration(t) for w in self.windows for t in (w.short, w.long)), key=_seconds)

    # --- alerts ---

    def alerts(self) -> list[dict[str, Any]]:
        severities = list(dict.fromkeys(w.severity for w in self.windows))
        return [self._alert(sev, [w for w in self.windows if w.severity == sev]) for sev in severities]

    def _alert(self, severity: str, rows: Sequence[AlertWindow]) -> dict[str, Any]:
        sel = _selector(self.id_labels)
        pairs = []
        for row in rows:
            short, long = promql_duration(row.short), promql_duration(row.long)
            factor = _num(row.budget_percent / 100.0 * self.period_s / _seconds(long))
            lines = [
                f"    ({c.sli_error_ratio(short)}{sel} > ({factor} * {self.budget}))",
                f"    and ignoring ({c.SLOTH_WINDOW})",
                f"    ({c.sli_error_ratio(long)}{sel} > ({factor} * {self.budget}))",
            ]
            if self.spec.min_events > 0:
                lines += ["    and on ()", f"    ({self._long_events(long)} >= {self.spec.min_events})"]
            pairs.append("(\n" + "\n".join(lines) + "\n)")
        name = self.spec.display_name or self.spec.name
        annotations = {
            "summary": f"{name} ({self.spec.service}): the error budget is burning too fast",
            "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget burn rate is too fast.",
        }
        if self.spec.description:
            annotations["description"] = self.spec.description
        return {
            "alert": c.alert_name(self.spec.name),
            "expr": f"\nor ignoring ({c.SLOTH_WINDOW})\n".join(pairs) + "\n",
            "labels": {c.SERVICE: self.spec.service, c.SEVERITY: severity, c.SLOTH_SEVERITY: severity},
            "annotations": annotations,
        }

    def _long_events(self, window: str) -> str:
        sli = self.spec.sli
        if isinstance(sli, ThresholdSli):
            return f"count_over_time(({self._slice_ok(sli)})[{window}:{self.slice}])"
        assert isinstance(sli, RatioSli)
        fn = "increase" if sli.counter else "sum_over_time"
        return f"sum({fn}({sli.total.text}[{window}]))"

    def _record(self, record: str, expr: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
        labels = dict(sorted({**self.labels, **(extra or {})}.items()))
        return {"record": record, "expr": expr, "labels": labels}


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (PromQL reads as written), no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_rules(export: RuleExport | Mapping[str, Any]) -> str:
    """The rule file as stable YAML: a header, one comment line per skipped SLO, the groups."""
    document = export.document if isinstance(export, RuleExport) else dict(export)
    skipped = export.skipped if isinstance(export, RuleExport) else ()
    header = ["# Generated by opsloop (`opsloop slo rules`) from SLO specs. Do not edit: regenerate."]
    header += [f"# skipped SLO {s.slo}: {s.reason}" for s in skipped]
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    return "\n".join(header) + "\n" + body
