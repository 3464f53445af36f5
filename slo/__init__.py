"""SLOs and error budgets: OpenSLO specs -> maths -> burn-rate alerts -> backlog items.

``spec.py`` reads OpenSLO documents into the model, ``maths.py`` holds the pure budget and
burn-rate functions, alert windows are data (``windows.yaml``), ``evaluate.py`` computes
SLIs from the store in one vectorised pass, ``engine.py`` evaluates on a schedule and sends
burn-rate alerts to the incident stage, ``policy.py`` turns budget burn and recurring
problems into prioritised backlog items that ``trackers.py`` delivers, and ``rules.py``
exports Prometheus recording and alerting rules.
"""

from slo.engine import SloEngine
from slo.spec import SloSpec

__all__ = ["SloEngine", "SloSpec"]
