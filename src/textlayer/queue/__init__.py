"""Placeholder for the queue component (later issues)."""
