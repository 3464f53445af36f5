"""Interfaces: the FastAPI server, the CLI (``api/cli/``), the loop's one assembly (``loop.py``),
replay and demo, and the one module where wire meets domain (``convert.py``)."""
