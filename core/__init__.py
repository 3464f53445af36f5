"""opsloop core: the shared domain model, the DuckDB store, settings and errors.

Every stage (ingest, detect, diagnose, resolve, slo, api) depends on this package and on
the stages before it, never the other way round.
"""
