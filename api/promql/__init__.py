"""PromQL over the store: parse with ``promql_parser``, evaluate with numpy, answer as Prometheus."""

from api.promql.evaluate import Evaluator, Matrix, PromQLError, Scalar, Vector, evaluate, grid, parse

__all__ = ["Evaluator", "Matrix", "PromQLError", "Scalar", "Vector", "evaluate", "grid", "parse"]
