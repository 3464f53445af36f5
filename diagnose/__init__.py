"""opsloop diagnose stage (filled by later issues)."""
