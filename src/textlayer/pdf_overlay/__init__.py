"""Searchable PDFs: an invisible text layer over the original pages."""

from __future__ import annotations

from textlayer.pdf_overlay.build import build_searchable_pdf
from textlayer.pdf_overlay.merge import pdfa_problems

__all__ = ["build_searchable_pdf", "pdfa_problems"]
