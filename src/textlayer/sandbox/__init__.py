"""Placeholder for the sandbox component (later issues)."""
