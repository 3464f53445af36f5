"""Evaluate PromQL over the store on a grid of steps, vectorised with numpy.

The query is parsed by ``promql_parser`` (GreptimeTeam's Rust parser); this module walks its
AST. Every value covers the whole grid at once: an instant vector is a label list and a
``(series, steps)`` matrix with NaN where a series has no sample, a scalar is one row.
Semantics follow Prometheus 2.x (the Debian 2.42 the integration test compares against):

- a selector takes, at each step ``t``, the newest sample in ``[t - 5m, t]`` (a stale
  marker, stored as NULL, ends the series);
- a range selector ``x[r]`` takes the samples in ``[t - r, t]``;
- ``rate``/``increase`` correct counter resets and extrapolate towards the range's ends
  as Prometheus' ``extrapolatedRate`` does (never below zero); ``irate`` uses the last two;
- aggregations ``sum|avg|min|max|count`` with ``by``/``without``; ``histogram_quantile``
  interpolates linearly within the bucket, as ``bucketQuantile``;
- binary operators between scalars and vectors, and between vectors with one-to-one
  matching (``on``/``ignoring``), comparisons filter (or give 0/1 with ``bool``), ``and``,
  ``or`` and ``unless`` work per step.

Unsupported PromQL (subqueries, ``@``, ``group_left``/``group_right``, other functions)
raises ``PromQLError`` with ``bad_data``; the router turns it into Prometheus' error body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import promql_parser as pp

from api.promql import repository
from api.promql.repository import LabelMatcher
from core.store import Store

__all__ = [
    "LOOKBACK_MS",
    "Evaluator",
    "Matrix",
    "PromQLError",
    "Scalar",
    "Vector",
    "enum_name",
    "matchers_of",
    "parse",
]

LOOKBACK_MS = 300_000
Labels = dict[str, str]
_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


class PromQLError(Exception):
    """A query Prometheus would refuse; ``kind`` is its ``errorType`` (bad_data, execution)."""

    def __init__(self, message: str, kind: str = "bad_data") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class Scalar:
    """One value per step."""

    values: np.ndarray


@dataclass(slots=True)
class Vector:
    """An instant vector over the grid: ``values[i, j]`` is series ``i`` at step ``j`` (NaN: absent)."""

    labels: list[Labels]
    values: np.ndarray


@dataclass(slots=True)
class Matrix:
    """Raw samples of a range selector: by series then time (``t`` in ms), NaN-free."""

    labels: list[Labels]
    sidx: np.ndarray
    t: np.ndarray
    v: np.ndarray
    range_ms: int
    offset_ms: int


Value = Scalar | Vector | Matrix


def parse(query: str) -> Any:
    """Parse PromQL; a syntax error becomes ``PromQLError`` (bad_data).

    >>> type(parse('rate(x{job="a"}[5m])')).__name__
    'Call'
    """
    try:
        return pp.parse(query)
    except (ValueError, TypeError) as exc:
        raise PromQLError(f'invalid parameter "query": {exc}') from exc


def matchers_of(selector: Any) -> list[LabelMatcher]:
    """The label matchers of a parsed vector selector (its metric name as ``__name__=``)."""
    out = [LabelMatcher(m.name, _OPS[enum_name(m.op)], m.value) for m in selector.matchers.matchers]
    if selector.matchers.or_matchers:
        raise PromQLError("'or' inside a selector is not supported")
    if selector.name:
        out.insert(0, LabelMatcher("__name__", "=", selector.name))
    if not any(m.op in ("=", "=~") and m.value != "" for m in out) and not any(
        m.op == "!~" or (m.op == "!=" and m.value == "") for m in out
    ):
        raise PromQLError("vector selector must contain at least one non-empty matcher")
    return out


def enum_name(member: Any) -> str:
    """The member name of one of the parser's enums (they print as ``Type.Member``)."""
    return str(member).rsplit(".", 1)[-1]


def _ms(td: Any) -> int:
    return 0 if td is None else round(td.total_seconds() * 1000)


def _drop_name(labels: list[Labels]) -> list[Labels]:
    return [{k: v for k, v in lab.items() if k != "__name__"} for lab in labels]


class Evaluator:
    """Evaluate parsed expressions at ``times`` (Unix ms, ascending) against ``store``."""

    def __init__(self, store: Store, times_ms: np.ndarray, lookback_ms: int = LOOKBACK_MS) -> None:
        self.store = store
        self.times = np.asarray(times_ms, dtype=np.int64)
        self.lookback = lookback_ms

    # ------------------------------------------------------------------ entry

    def eval(self, node: Any) -> Value:
        """Evaluate one AST node."""
        kind = type(node).__name__
        handler: Callable[[Any], Value] | None = getattr(self, f"_eval_{kind}", None)
        if handler is None:
            raise PromQLError(f"{kind} is not supported by opsloop's PromQL")
        return handler(node)

    def _eval_ParenExpr(self, node: Any) -> Value:
        return self.eval(node.expr)

    def _eval_NumberLiteral(self, node: Any) -> Value:
        return Scalar(np.full(len(self.times), float(node.val)))

    def _eval_UnaryExpr(self, node: Any) -> Value:
        inner = self.eval(node.expr)
        if isinstance(inner, Scalar):
            return Scalar(-inner.values)
        if isinstance(inner, Vector):
            return Vector(_drop_name(inner.labels), -inner.values)
        raise PromQLError("unary minus needs a scalar or an instant vector")

    # ------------------------------------------------------------------ selectors

    def _fetch(self, selector: Any, range_ms: int) -> tuple[list[Labels], np.ndarray, np.ndarray, np.ndarray]:
        """Samples of a selector's series in ``[first step - range - offset, last step - offset]``."""
        if selector.at is not None:
            raise PromQLError("the @ modifier is not supported")
        offset = _ms(selector.offset)
        lo = int(self.times[0]) - range_ms - offset
        hi = int(self.times[-1]) - offset
        found = repository.select_series(self.store, matchers_of(selector))
        labels: list[Labels] = []
        sidx: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        by_source: dict[str, list[tuple[int, Labels]]] = {}
        for column, sid, _, lab in found:
            by_source.setdefault(column, []).append((sid, lab))
        start, end = _dt(lo), _dt(hi)
        for column, items in by_source.items():
            ids = np.array([sid for sid, _ in items], dtype=np.uint64)
            table = repository.samples(self.store, column, ids.tolist(), start, end)
            base = len(labels)
            labels.extend(lab for _, lab in items)
            got = table.column("series_id").to_numpy().astype(np.uint64)
            sidx.append(base + np.searchsorted(ids, got))
            ts.append(table.column("t").to_numpy().astype(np.int64))
            vs.append(table.column("value").to_numpy(zero_copy_only=False).astype(np.float64))
        if not sidx:
            empty = np.empty(0, dtype=np.int64)
            return labels, empty, empty, np.empty(0)
        s, t, v = np.concatenate(sidx).astype(np.int64), np.concatenate(ts), np.concatenate(vs)
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        # a re-delivered sample at the same timestamp counts once (the later one)
        keep = np.ones(len(s), dtype=bool)
        keep[:-1] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
        return labels, s[keep], t[keep], v[keep]

    def _eval_VectorSelector(self, node: Any) -> Value:
        labels, s, t, v = self._fetch(node, self.lookback)
        offset = _ms(node.offset)
        n, steps = len(labels), self.times - offset
        out = np.full((n, len(steps)), np.nan)
        if n == 0 or len(s) == 0:
            return Vector(labels, out)
        key, width, t0 = _keys(s, t, steps, self.lookback)
        q = np.arange(n)[:, None] * width + (steps[None, :] - t0)
        idx = np.searchsorted(key, q, side="right") - 1
        ok = idx >= 0
        idx = np.maximum(idx, 0)
        ok &= (s[idx] == np.arange(n)[:, None]) & (t[idx] >= steps[None, :] - self.lookback)
        out[ok] = v[idx[ok]]  # a NULL (stale marker) stays NaN: the series has ended
        return Vector(labels, out)

    def _eval_MatrixSelector(self, node: Any) -> Value:
        vs = node.vector_selector
        rng = _ms(node.range)
        labels, s, t, v = self._fetch(vs, rng)
        fine = ~np.isnan(v)
        return Matrix(labels, s[fine], t[fine], v[fine], rng, _ms(vs.offset))

    def _eval_SubqueryExpr(self, node: Any) -> Value:
        raise PromQLError("subqueries are not supported")

    # ------------------------------------------------------------------ functions

    def _eval_Call(self, node: Any) -> Value:
        name = node.func.name
        args = node.args
        if name in _RANGE_FUNCTIONS:
            m = self.eval(args[0])
            if not isinstance(m, Matrix):
                raise PromQLError(f"{name}: expected a range vector")
            return _range_function(name, m, self.times)
        if name == "histogram_quantile":
            q = self._scalar_arg(args[0], name)
            vec = self.eval(args[1])
            if not isinstance(vec, Vector):
                raise PromQLError("histogram_quantile: expected an instant vector")
            return histogram_quantile(q, vec)
        if name in _MATH:
            vec = self._vector_arg(args[0], name)
            return Vector(_drop_name(vec.labels), _MATH[name](vec.values))
        if name in ("clamp_min", "clamp_max"):
            vec = self._vector_arg(args[0], name)
            bound = self._scalar_arg(args[1], name)
            f = np.fmax if name == "clamp_min" else np.fmin
            vals = np.where(np.isnan(vec.values), np.nan, f(vec.values, bound[None, :]))
            return Vector(_drop_name(vec.labels), vals)
        if name == "time":
            return Scalar(self.times / 1000.0)
        if name == "vector":
            return Vector([{}], self._scalar_arg(args[0], name)[None, :].copy())
        if name == "scalar":
            vec = self._vector_arg(args[0], name)
            present = (~np.isnan(vec.values)).sum(axis=0)
            first = np.nan_to_num(vec.values, nan=0.0).sum(axis=0)
            return Scalar(np.where(present == 1, first, np.nan))
        raise PromQLError(f"function {name!r} is not supported by opsloop's PromQL")

    def _scalar_arg(self, node: Any, fn: str) -> np.ndarray:
        val = self.eval(node)
        if not isinstance(val, Scalar):
            raise PromQLError(f"{fn}: expected a scalar argument")
        return val.values

    def _vector_arg(self, node: Any, fn: str) -> Vector:
        val = self.eval(node)
        if not isinstance(val, Vector):
            raise PromQLError(f"{fn}: expected an instant vector argument")
        return val

    # ------------------------------------------------------------------ aggregation

    def _eval_AggregateExpr(self, node: Any) -> Value:
        op = str(node.op)
        if op not in ("sum", "avg", "min", "max", "count"):
            raise PromQLError(f"aggregation {op!r} is not supported by opsloop's PromQL")
        vec = self.eval(node.expr)
        if not isinstance(vec, Vector):
            raise PromQLError(f"{op}: expected an instant vector")
        mod = node.modifier
        by = mod is not None and enum_name(mod.type) == "By"
        names = set(mod.labels) if mod is not None else set()
        return aggregate(op, vec, names, by=by if mod is not None else True)

    # ------------------------------------------------------------------ binary operators

    def _eval_BinaryExpr(self, node: Any) -> Value:
        op = str(node.op)
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        mod = node.modifier
        return_bool = bool(mod is not None and mod.return_bool)
        if isinstance(lhs, Matrix) or isinstance(rhs, Matrix):
            raise PromQLError("binary operators need scalars or instant vectors")
        if op in ("and", "or", "unless"):
            if not isinstance(lhs, Vector) or not isinstance(rhs, Vector):
                raise PromQLError(f"set operator {op!r} needs instant vectors on both sides")
            return set_operation(op, lhs, rhs, _matching(mod))
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            if op in _COMPARISONS and not return_bool:
                raise PromQLError("comparisons between scalars must use the bool modifier")
            return Scalar(_apply(op, lhs.values, rhs.values, return_bool=True))
        if isinstance(lhs, Vector) and isinstance(rhs, Vector):
            if mod is not None and enum_name(mod.card) != "OneToOne":
                raise PromQLError("group_left/group_right are not supported by opsloop's PromQL")
            return vector_binary(op, lhs, rhs, _matching(mod), return_bool)
        vec, other, vec_left = (lhs, rhs, True) if isinstance(lhs, Vector) else (rhs, lhs, False)
        assert isinstance(vec, Vector) and isinstance(other, Scalar)
        sc = np.broadcast_to(other.values[None, :], vec.values.shape)
        a, b = (vec.values, sc) if vec_left else (sc, vec.values)
        out = _apply(op, a, b, return_bool)
        if op in _COMPARISONS and not return_bool:
            out = np.where(np.isnan(out), np.nan, vec.values)  # filtering keeps the vector's value
            return Vector(vec.labels, out)
        return Vector(_drop_name(vec.labels), out)


# ---------------------------------------------------------------------- helpers


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC).replace(tzinfo=None)


def _keys(s: np.ndarray, t: np.ndarray, steps: np.ndarray, reach: int) -> tuple[np.ndarray, int, int]:
    """Composite sort keys ``series * width + (t - t0)``, so one searchsorted finds every window."""
    t0 = int(min(t.min(), steps.min() - reach))
    width = int(max(t.max(), steps.max()) - t0 + 1)
    return s * width + (t - t0), width, t0


def _windows(m: Matrix, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (series, step): index of the first and last sample in ``[t - range, t]``, count, end times."""
    n = len(m.labels)
    ends = times - m.offset_ms
    if len(m.sidx) == 0:
        zero = np.zeros((n, len(times)), dtype=np.int64)
        return zero, zero - 1, zero, ends
    key, width, t0 = _keys(m.sidx, m.t, ends, m.range_ms)
    rows = np.arange(n)[:, None] * width
    first = np.searchsorted(key, rows + (ends[None, :] - m.range_ms - t0), side="left")
    last = np.searchsorted(key, rows + (ends[None, :] - t0), side="right") - 1
    return first, last, last - first + 1, ends


def _range_function(name: str, m: Matrix, times: np.ndarray) -> Vector:
    first, last, count, ends = _windows(m, times)
    out = np.full(first.shape, np.nan)
    labels = _drop_name(m.labels)
    if len(m.sidx) == 0:
        return Vector(labels, out)
    f, lst = np.clip(first, 0, len(m.v) - 1), np.clip(last, 0, len(m.v) - 1)
    v, t = m.v, m.t
    if name in ("rate", "increase", "delta"):
        ok = count >= 2
        if name == "delta":
            raw = v[lst] - v[f]
        else:
            # a drop is a counter reset: the counter restarted from zero, so add what it had
            prev_same = np.zeros(len(v), dtype=bool)
            prev_same[1:] = m.sidx[1:] == m.sidx[:-1]
            reset = prev_same & np.concatenate([[False], v[1:] < v[:-1]])
            corr = np.cumsum(np.where(reset, np.concatenate([[0.0], v[:-1]]), 0.0))
            raw = v[lst] - v[f] + corr[lst] - corr[f]
        out[ok] = _extrapolate(
            raw[ok],
            v[f][ok],
            t[f][ok],
            t[lst][ok],
            count[ok],
            np.broadcast_to(ends, first.shape)[ok],
            m.range_ms,
            counter=name != "delta",
            per_second=name == "rate",
        )
        return Vector(labels, out)
    if name == "irate":
        ok = count >= 2
        prev = np.clip(lst - 1, 0, len(v) - 1)
        dv = np.where(v[lst] < v[prev], v[lst], v[lst] - v[prev])
        dt = (t[lst] - t[prev]) / 1000.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out[ok] = (dv / dt)[ok]
        return Vector(labels, out)
    ok = count >= 1
    if name == "count_over_time":
        out[ok] = count[ok]
        return Vector(labels, out)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    total = csum[lst + 1] - csum[f]
    if name == "sum_over_time":
        out[ok] = total[ok]
    elif name == "avg_over_time":
        out[ok] = (total / np.maximum(count, 1))[ok]
    else:  # min/max over time: reduceat over each window's segment
        ufunc = np.minimum if name == "min_over_time" else np.maximum
        idx = np.flatnonzero(ok)
        if len(idx):
            starts, stops = f.ravel()[idx], lst.ravel()[idx] + 1
            vals = np.array(
                [ufunc.reduce(v[a:b]) for a, b in zip(starts.tolist(), stops.tolist(), strict=True)]
            )
            out.ravel()[idx] = vals
    return Vector(labels, out)


def _extrapolate(
    delta: np.ndarray,
    first_v: np.ndarray,
    first_t: np.ndarray,
    last_t: np.ndarray,
    count: np.ndarray,
    end: np.ndarray,
    range_ms: int,
    *,
    counter: bool,
    per_second: bool,
) -> np.ndarray:
    """Prometheus' ``extrapolatedRate``: extend the sampled change towards the window's edges."""
    start = end - range_ms
    to_start = (first_t - start) / 1000.0
    to_end = (end - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    avg_gap = sampled / (count - 1)
    if counter:  # a counter cannot have been below zero: stop extrapolating where it would hit 0
        with np.errstate(divide="ignore", invalid="ignore"):
            to_zero = sampled * (first_v / delta)
        shrink = (delta > 0) & (first_v >= 0) & (to_zero < to_start)
        to_start = np.where(shrink, to_zero, to_start)
    threshold = avg_gap * 1.1
    interval = sampled + np.where(to_start < threshold, to_start, avg_gap / 2)
    interval += np.where(to_end < threshold, to_end, avg_gap / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.asarray(delta * (interval / sampled), dtype=np.float64)
    return result / (range_ms / 1000.0) if per_second else result


_RANGE_FUNCTIONS = {
    "rate", "increase", "irate", "delta",
    "avg_over_time", "sum_over_time", "count_over_time", "min_over_time", "max_over_time",
}  # fmt: skip
_MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "sqrt": np.sqrt,
    "ln": np.log, "log2": np.log2, "log10": np.log10,
}  # fmt: skip
_COMPARISONS = ("==", "!=", ">", "<", ">=", "<=")
_ARITH: dict[str, Any] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.fmod, "^": np.power,
    "atan2": np.arctan2,
}  # fmt: skip
_COMPARE: dict[str, Any] = {
    "==": np.equal, "!=": np.not_equal, ">": np.greater, "<": np.less, ">=": np.greater_equal,
    "<=": np.less_equal,
}  # fmt: skip


def _apply(op: str, a: np.ndarray, b: np.ndarray, return_bool: bool) -> np.ndarray:
    """Element-wise operator; comparisons give 1/0 (``return_bool``) or 1/NaN (filter)."""
    arith = _ARITH.get(op)
    compare = _COMPARE.get(op)
    if arith is not None:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(arith(a, b), dtype=np.float64)
    if compare is None:
        raise PromQLError(f"operator {op!r} is not supported by opsloop's PromQL")
    truth = compare(a, b)
    missing = np.isnan(a) | np.isnan(b) if return_bool else np.isnan(a) | np.isnan(b) | ~truth
    return np.where(missing, np.nan, truth.astype(np.float64))


def _matching(mod: Any) -> tuple[bool, frozenset[str]] | None:
    """(on?, labels) of a binary operator's matching clause, None for the default."""
    if mod is None or mod.matching is None:
        return None
    return enum_name(mod.matching.type) == "Include", frozenset(mod.matching.labels)


def _signature(lab: Labels, matching: tuple[bool, frozenset[str]] | None) -> tuple[tuple[str, str], ...]:
    if matching is None:
        return tuple(sorted((k, v) for k, v in lab.items() if k != "__name__"))
    on, names = matching
    if on:
        return tuple(sorted((k, v) for k, v in lab.items() if k in names))
    return tuple(sorted((k, v) for k, v in lab.items() if k not in names and k != "__name__"))


def _collapse(
    vec: Vector, matching: tuple[bool, frozenset[str]] | None, side: str
) -> tuple[dict[Any, int], np.ndarray]:
    """One row per matching signature; two series of one signature at one step is an error."""
    sigs = [_signature(lab, matching) for lab in vec.labels]
    index: dict[Any, int] = {}
    rows = np.array([index.setdefault(s, len(index)) for s in sigs], dtype=np.int64)
    present = ~np.isnan(vec.values)
    counts = np.zeros((len(index), vec.values.shape[1]), dtype=np.int64)
    np.add.at(counts, rows, present.astype(np.int64))
    if (counts > 1).any():
        raise PromQLError(
            f"found duplicate series for the match group on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
            "execution",
        )
    merged = np.full((len(index), vec.values.shape[1]), np.nan)
    np.fmax.at(merged, rows, vec.values)
    return index, merged


def vector_binary(
    op: str, lhs: Vector, rhs: Vector, matching: tuple[bool, frozenset[str]] | None, return_bool: bool
) -> Vector:
    """One-to-one vector matching: each left series meets the right series of its signature."""
    r_index, r_vals = _collapse(rhs, matching, "right")
    _collapse(lhs, matching, "left")  # the left side must be unique per step as well
    labels: list[Labels] = []
    rows: list[np.ndarray] = []
    filtering = op in _COMPARISONS and not return_bool
    for lab, vals in zip(lhs.labels, lhs.values, strict=True):
        j = r_index.get(_signature(lab, matching))
        if j is None:
            continue
        out = _apply(op, vals, r_vals[j], return_bool)
        if filtering:
            out = np.where(np.isnan(out), np.nan, vals)
            labels.append(dict(lab))
        else:
            labels.append(_result_labels(lab, matching))
        rows.append(out)
    values = np.vstack(rows) if rows else np.empty((0, lhs.values.shape[1]))
    return Vector(labels, values)


def _result_labels(lab: Labels, matching: tuple[bool, frozenset[str]] | None) -> Labels:
    out = {k: v for k, v in lab.items() if k != "__name__"}
    if matching is not None:
        on, names = matching
        out = {k: v for k, v in out.items() if (k in names) == on}
    return out


def set_operation(op: str, lhs: Vector, rhs: Vector, matching: tuple[bool, frozenset[str]] | None) -> Vector:
    """``and``, ``or``, ``unless`` per step, matched on signatures."""
    steps = lhs.values.shape[1]
    r_present: dict[Any, np.ndarray] = {}
    for lab, vals in zip(rhs.labels, rhs.values, strict=True):
        sig = _signature(lab, matching)
        r_present[sig] = r_present.get(sig, np.zeros(steps, dtype=bool)) | ~np.isnan(vals)
    none = np.zeros(steps, dtype=bool)
    if op in ("and", "unless"):
        rows = []
        for lab, vals in zip(lhs.labels, lhs.values, strict=True):
            hit = r_present.get(_signature(lab, matching), none)
            keep = hit if op == "and" else ~hit
            rows.append(np.where(keep, vals, np.nan))
        return Vector(list(lhs.labels), np.vstack(rows) if rows else np.empty((0, steps)))
    l_present: dict[Any, np.ndarray] = {}
    for lab, vals in zip(lhs.labels, lhs.values, strict=True):
        sig = _signature(lab, matching)
        l_present[sig] = l_present.get(sig, np.zeros(steps, dtype=bool)) | ~np.isnan(vals)
    extra = [
        np.where(l_present.get(_signature(lab, matching), none), np.nan, vals)
        for lab, vals in zip(rhs.labels, rhs.values, strict=True)
    ]
    values = np.vstack([lhs.values, *extra]) if extra else lhs.values
    return Vector([*lhs.labels, *rhs.labels], values)


def aggregate(op: str, vec: Vector, names: set[str], *, by: bool) -> Vector:
    """``sum|avg|min|max|count`` by (keep ``names``) or without (drop them and ``__name__``).

    >>> v = Vector([{"__name__": "x", "a": "1", "b": "p"}, {"__name__": "x", "a": "1", "b": "q"}],
    ...            np.array([[1.0, np.nan], [2.0, 4.0]]))
    >>> r = aggregate("sum", v, {"a"}, by=True)
    >>> r.labels, r.values.tolist()
    ([{'a': '1'}], [[3.0, 4.0]])
    """
    keys = []
    for lab in vec.labels:
        if by:
            keys.append(tuple(sorted((k, v) for k, v in lab.items() if k in names and k != "__name__")))
        else:
            keys.append(tuple(sorted((k, v) for k, v in lab.items() if k not in names and k != "__name__")))
    index: dict[Any, int] = {}
    rows = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    g, steps = len(index), vec.values.shape[1]
    present = ~np.isnan(vec.values)
    count = np.zeros((g, steps))
    np.add.at(count, rows, present.astype(np.float64))
    if op == "count":
        out = count
    elif op in ("sum", "avg"):
        total = np.zeros((g, steps))
        np.add.at(total, rows, np.nan_to_num(vec.values, nan=0.0))
        out = total if op == "sum" else total / np.maximum(count, 1)
    else:
        out = np.full((g, steps), np.nan)
        (np.fmin if op == "min" else np.fmax).at(out, rows, vec.values)
    out = np.where(count > 0, out, np.nan)
    return Vector([dict(k) for k in index], out)


def histogram_quantile(q: np.ndarray, vec: Vector) -> Vector:
    """Prometheus' ``bucketQuantile`` per group of ``le`` buckets and per step.

    >>> v = Vector([{"le": "1"}, {"le": "2"}, {"le": "+Inf"}], np.array([[5.0], [10.0], [10.0]]))
    >>> histogram_quantile(np.array([0.75]), v).values.tolist()
    [[1.5]]
    """
    groups: dict[Any, list[tuple[float, int]]] = {}
    for i, lab in enumerate(vec.labels):
        if "le" not in lab:
            continue
        try:
            upper = float(lab["le"])
        except ValueError:
            continue
        key = tuple(sorted((k, v) for k, v in lab.items() if k not in ("le", "__name__")))
        groups.setdefault(key, []).append((upper, i))
    steps = vec.values.shape[1]
    labels: list[Labels] = []
    rows: list[np.ndarray] = []
    for key, members in groups.items():
        uppers = np.array(sorted({u for u, _ in members}))
        counts = np.full((len(uppers), steps), np.nan)
        for u, i in members:  # buckets of the same bound add up (coalesceBuckets)
            j = int(np.searchsorted(uppers, u))
            counts[j] = np.where(np.isnan(counts[j]), vec.values[i], np.nan_to_num(counts[j]) + vec.values[i])
        labels.append(dict(key))
        rows.append(_bucket_quantile(q, uppers, counts))
    return Vector(labels, np.vstack(rows) if rows else np.empty((0, steps)))


def _bucket_quantile(q: np.ndarray, uppers: np.ndarray, counts: np.ndarray) -> np.ndarray:
    steps = counts.shape[1]
    out = np.full(steps, np.nan)
    for j in range(steps):  # per step: the present buckets differ from step to step
        have = ~np.isnan(counts[:, j])
        if not have.any():
            continue
        ub, c = uppers[have], counts[have, j]
        if q[j] < 0:
            out[j] = -np.inf
            continue
        if q[j] > 1:
            out[j] = np.inf
            continue
        if np.isnan(q[j]) or not np.isinf(ub[-1]) or len(ub) < 2:
            continue
        c = np.maximum.accumulate(c)  # ensureMonotonic
        total = c[-1]
        if total == 0:
            continue
        rank = q[j] * total
        b = int(np.searchsorted(c[:-1], rank, side="left"))
        if b == len(ub) - 1:
            out[j] = ub[-2]
            continue
        if b == 0 and ub[0] <= 0:
            out[j] = ub[0]
            continue
        start, end, count = 0.0, ub[b], c[b]
        if b > 0:
            start = ub[b - 1]
            count -= c[b - 1]
            rank -= c[b - 1]
        out[j] = start + (end - start) * (rank / count)
    return out


def grid(start_ms: int, end_ms: int, step_ms: int) -> np.ndarray:
    """Evaluation times ``start, start + step, ...`` up to ``end`` (as Prometheus, no alignment).

    >>> grid(0, 25_000, 10_000).tolist()
    [0, 10000, 20000]
    """
    return np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)


def evaluate(store: Store, query: str, times_ms: Sequence[int] | np.ndarray) -> Value:
    """Parse and evaluate ``query`` at ``times_ms``."""
    return Evaluator(store, np.asarray(times_ms, dtype=np.int64)).eval(parse(query))
