"""opsloop detect stage (filled by later issues)."""

from detect.changepoint import ChangePoint
from detect.ensemble import Ensemble
from detect.level_shift import LevelShift
from detect.likelihood import AnomalyLikelihood
from detect.river_adapter import RiverAdapter
from detect.robust_ewm import RobustEWM
from detect.seasonal import SeasonalBaseline

__all__ = [
    "AnomalyLikelihood",
    "ChangePoint",
    "Ensemble",
    "LevelShift",
    "RiverAdapter",
    "RobustEWM",
    "SeasonalBaseline",
]
