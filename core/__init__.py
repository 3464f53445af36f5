"""opsloop core: what every stage shares.

The domain model (``model.py``), the DuckDB store and its migrations (``store.py``),
settings, the error tree, label selectors, the topology graph, wire helpers several stages
need (``wire.py``), telemetry, and the one background-worker loop (``worker.py``). Every
stage (ingest, detect, diagnose, resolve, slo, api) depends on this package and on the
stages before it, never the other way round.
"""
