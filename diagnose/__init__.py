"""Diagnose: ranked contributing factors with evidence, and a course of action, for each incident.

``diagnoser.py`` gathers evidence over the incident's suspects (metric deviations ranked on the
call graph in ``rank.py``, recent changes, novel or surging log templates mined by
``templates.py``, anomaly onset order, similar past incidents and known errors) and ranks
hypotheses, never a bare verdict; ``recommend.py`` says what to do first; ``runner.py``
re-diagnoses incidents as they open and gain alerts.
"""

from diagnose.diagnoser import Diagnoser, Diagnosis
from diagnose.runner import DiagnosisRunner

__all__ = ["Diagnoser", "Diagnosis", "DiagnosisRunner"]
