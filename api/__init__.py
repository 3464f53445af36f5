"""Interfaces: the FastAPI server, the CLI, and the one module where wire meets domain."""
