"""Detect: learn each series' normal range and flag what leaves it, then turn signals into incidents.

Two rooms:

- anomaly detection (this package): batch-first detectors with one protocol (``base.py``,
  one per file, a conformance suite in ``checks.py``), thresholding as a wrapper
  (``filter.py``), and the streaming ``engine.py`` that scores each committed batch
  prequentially and stores bands and anomalies (``repository.py``);
- the incident stage (``detect/incidents/``): alerts from anomalies and from other tools
  pass a chain of small stages (dedup, flap, silence, maintenance, deploy hold, correlate,
  promote, priority, notify) and become prioritised, assigned incidents.
"""

from detect.changepoint import ChangePoint
from detect.ensemble import Ensemble
from detect.filter import AnomalyFilter, Controls
from detect.level_shift import LevelShift
from detect.likelihood import AnomalyLikelihood
from detect.river_adapter import RiverAdapter
from detect.robust_ewm import RobustEWM
from detect.seasonal import SeasonalBaseline

__all__ = [
    "AnomalyFilter",
    "AnomalyLikelihood",
    "ChangePoint",
    "Controls",
    "Ensemble",
    "LevelShift",
    "RiverAdapter",
    "RobustEWM",
    "SeasonalBaseline",
]
