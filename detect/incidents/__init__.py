"""The incident stage: alerts in, prioritised and assigned incidents out (Alertmanager's order).

An alert, from an anomaly (``alerts.py``) or another tool, passes dedup -> flap -> silence ->
maintenance -> deploy hold (``suppress.py``) -> correlate with topology inhibition
(``correlate.py``) -> promote -> priority (``priority.py``) -> notify (``notify.py``, an
outbox delivered with retries). ``pipeline.py`` runs that chain in event time and owns the
clock; ``repository.py`` holds the SQL of alerts, incidents, timelines, silences, windows and
notifications; ``scoring.py`` scores a replayed scenario against its truth.
"""

__all__ = ["alerts", "correlate", "notify", "pipeline", "priority", "repository", "scoring", "suppress"]
