"""Placeholder for the pdf_overlay component (later issues)."""
