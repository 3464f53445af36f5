"""opsloop detect stage (filled by later issues)."""
