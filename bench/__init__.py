"""Benchmarks that print figures (``opsloop bench ...``); tests never assert on timings."""
