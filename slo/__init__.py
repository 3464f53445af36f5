"""opsloop slo stage (filled by later issues)."""
