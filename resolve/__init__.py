"""opsloop resolve stage (filled by later issues)."""
