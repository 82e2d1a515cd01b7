"""Placeholder for the index component (later issues)."""
