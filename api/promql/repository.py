"""Reads for the PromQL evaluator: series by label matchers, their samples, label names and values.

Matchers become SQL over the ``series`` dictionary (regexes are RE2, fully anchored, as in
Prometheus); samples come back as Arrow, sorted by series then time, for numpy to work on.
The band series ``opsloop_band_lower``/``_upper`` and ``opsloop_score`` are read from the
``bands`` table with the scored series' labels plus ``opsloop_metric`` (its name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from core.store import Store

#: Band series name -> column of ``bands``.
BAND_COLUMNS = {"opsloop_band_lower": "lower", "opsloop_band_upper": "upper", "opsloop_score": "score"}
#: The label that carries the scored series' own name on band series.
BAND_METRIC_LABEL = "opsloop_metric"


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """One PromQL label matcher: ``op`` is one of ``=``, ``!=``, ``=~``, ``!~``."""

    name: str
    op: str
    value: str


def _condition(m: LabelMatcher, expr: str, params: list[Any]) -> str:
    """SQL that is true where ``expr`` (empty when the label is absent) satisfies ``m``."""
    params.append(m.value)
    text = f"coalesce({expr}, '')"
    return {
        "=": f"{text} = ?",
        "!=": f"{text} <> ?",
        "=~": f"regexp_full_match({text}, ?)",
        "!~": f"NOT regexp_full_match({text}, ?)",
    }[m.op]


def _where(matchers: Sequence[LabelMatcher], band: str | None, params: list[Any]) -> str:
    parts = []
    for m in matchers:
        if m.name == "__name__":
            if band is None:
                expr = "name"
            else:
                expr = "?"
                params.append(band)
        elif band is not None and m.name == BAND_METRIC_LABEL:
            expr = "name"
        else:
            expr = "labels[?]"
            params.append(m.name)
        parts.append(_condition(m, expr, params))
    return " AND ".join(parts) or "true"


def _name_may_be(band: str, matchers: Sequence[LabelMatcher]) -> bool:
    """Whether the ``__name__`` matchers accept a band series' name.

    >>> _name_may_be("opsloop_score", [LabelMatcher("__name__", "=", "node_load1")])
    False
    >>> _name_may_be("opsloop_score", [LabelMatcher("__name__", "=~", "opsloop_.*")])
    True
    """
    for m in matchers:
        if m.name != "__name__":
            continue
        try:
            hit = band == m.value if m.op in ("=", "!=") else re.fullmatch(m.value, band) is not None
        except re.error:  # RE2 syntax Python lacks: let DuckDB (RE2) decide
            continue
        if hit != (m.op in ("=", "=~")):
            return False
    return True


def select_series(
    store: Store, matchers: Sequence[LabelMatcher]
) -> list[tuple[str, int, str, dict[str, str]]]:
    """Series matching every matcher: (source column or '' for points, id, name, labels)."""
    out: list[tuple[str, int, str, dict[str, str]]] = []
    params: list[Any] = []
    sql = f"SELECT series_id, name, labels FROM series WHERE {_where(matchers, None, params)} ORDER BY series_id"
    for sid, name, labels in store.query(sql, params):
        out.append(("", int(sid), name, {"__name__": name, **dict(labels or {})}))
    for band, column in BAND_COLUMNS.items():
        if not _name_may_be(band, matchers):
            continue  # the common case: no scan of the (large) bands table
        params = []
        where = _where(matchers, band, params)
        sql = (
            "SELECT series_id, name, labels FROM series WHERE series_id IN (SELECT DISTINCT series_id FROM bands) "
            f"AND {where} ORDER BY series_id"
        )
        for sid, name, labels in store.query(sql, params):
            lab = {**dict(labels or {}), BAND_METRIC_LABEL: name, "__name__": band}
            out.append((column, int(sid), band, lab))
    return out


def samples(store: Store, column: str, ids: Sequence[int], start: datetime, end: datetime) -> pa.Table:
    """Samples (series_id, t in ms, value) of ``ids`` in ``[start, end]``, by series then time."""
    table, value = ("points", "value") if column == "" else ("bands", column)
    return store.arrow(
        f"SELECT series_id, epoch_ms(ts) AS t, {value} AS value FROM {table} "
        "WHERE series_id IN (SELECT unnest(?::UBIGINT[])) AND ts >= ? AND ts <= ? ORDER BY series_id, ts",
        [list(ids), start, end],
    )


def label_names(store: Store, ids: Sequence[int] | None) -> list[str]:
    """Label names of the given series (all when None), ``__name__`` included."""
    where, params = (
        ("WHERE series_id IN (SELECT unnest(?::UBIGINT[]))", [list(ids)]) if ids is not None else ("", [])
    )
    rows = store.query(f"SELECT DISTINCT unnest(map_keys(labels)) FROM series {where}", params)
    return sorted({"__name__", *(r[0] for r in rows if r[0])})


def label_values(store: Store, name: str, ids: Sequence[int] | None) -> list[str]:
    """Distinct values of label ``name`` over the given series (all when None)."""
    expr = "name" if name == "__name__" else "labels[?]"
    params: list[Any] = [] if name == "__name__" else [name]
    where = "WHERE series_id IN (SELECT unnest(?::UBIGINT[]))" if ids is not None else ""
    if ids is not None:
        params.append(list(ids))
    rows = store.query(f"SELECT DISTINCT {expr} AS v FROM series {where}", params)
    values = {r[0] for r in rows if r[0]}
    if name == "__name__" and ids is None and store.query("SELECT count(*) FROM bands")[0][0]:
        values.update(BAND_COLUMNS)
    return sorted(values)


def series_with_samples(store: Store, ids: Sequence[int], start: datetime, end: datetime) -> set[int]:
    """Which of ``ids`` have a point in ``[start, end]``."""
    rows = store.query(
        "SELECT DISTINCT series_id FROM points WHERE series_id IN (SELECT unnest(?::UBIGINT[])) "
        "AND ts >= ? AND ts <= ?",
        [list(ids), start, end],
    )
    return {int(r[0]) for r in rows}


def metadata(store: Store) -> list[tuple[str, str, str]]:
    """(name, kind, unit) of every metric name, for ``/api/v1/metadata``."""
    return [
        (r[0], r[1] or "unknown", r[2] or "")
        for r in store.query(
            "SELECT name, any_value(kind), any_value(unit) FROM series GROUP BY name ORDER BY name"
        )
    ]
