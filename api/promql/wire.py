"""Prometheus' HTTP API JSON shapes: sample values as strings, timestamps as Unix seconds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from api.promql.evaluate import Matrix, Scalar, Vector

__all__ = ["format_value", "instant_result", "range_result", "timestamp"]


def format_value(v: float) -> str:
    """A sample value as Prometheus writes it (Go's shortest 'f' format, +Inf, -Inf, NaN).

    >>> format_value(1.0), format_value(0.1), format_value(1e21), format_value(float("inf"))
    ('1', '0.1', '1000000000000000000000', '+Inf')
    """
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")


def timestamp(ms: int) -> float | int:
    """Unix seconds, an integer when the millisecond part is zero.

    >>> timestamp(1_500_000), timestamp(1_500)
    (1500, 1.5)
    """
    return ms // 1000 if ms % 1000 == 0 else ms / 1000.0


def instant_result(value: Scalar | Vector | Matrix, at_ms: int) -> dict[str, Any]:
    """``data`` of ``/api/v1/query``: vector, scalar or (for a range selector) matrix."""
    ts = timestamp(at_ms)
    if isinstance(value, Scalar):
        return {"resultType": "scalar", "result": [ts, format_value(float(value.values[0]))]}
    if isinstance(value, Vector):
        col = value.values[:, 0] if value.values.size else np.empty(0)
        result = [
            {"metric": lab, "value": [ts, format_value(float(v))]}
            for lab, v in zip(value.labels, col.tolist(), strict=True)
            if not math.isnan(v)
        ]
        return {"resultType": "vector", "result": result}
    out = []
    starts = np.searchsorted(value.sidx, np.arange(len(value.labels) + 1))
    for i, lab in enumerate(value.labels):
        a, b = int(starts[i]), int(starts[i + 1])
        if a == b:
            continue
        out.append(
            {
                "metric": lab,
                "values": [
                    [timestamp(t), format_value(v)]
                    for t, v in zip(value.t[a:b].tolist(), value.v[a:b].tolist(), strict=True)
                ],
            }
        )
    return {"resultType": "matrix", "result": out}


def range_result(value: Scalar | Vector, times_ms: np.ndarray) -> dict[str, Any]:
    """``data`` of ``/api/v1/query_range``: a matrix, absent steps left out, empty series dropped."""
    if isinstance(value, Scalar):
        labels: list[dict[str, str]] = [{}]
        values = value.values[None, :]
    else:
        labels, values = value.labels, value.values
    stamps = [timestamp(int(t)) for t in times_ms.tolist()]
    result = []
    for lab, row in zip(labels, values, strict=True):
        present = np.flatnonzero(~np.isnan(row))
        if len(present) == 0:
            continue
        result.append(
            {"metric": lab, "values": [[stamps[j], format_value(float(row[j]))] for j in present.tolist()]}
        )
    return {"resultType": "matrix", "result": result}
