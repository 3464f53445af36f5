"""Resolve: runbooks and automated actions, verified restoration, problems and post-mortems.

Not built yet: the stage's place in the loop is ready (``api/loop.py`` wires stages in one
place), and it may import core, ingest, detect and diagnose, never slo or api.
"""

__all__: list[str] = []
