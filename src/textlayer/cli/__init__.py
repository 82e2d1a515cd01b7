"""The ``textlayer`` command line: ``main`` parses, builds Settings once and calls a recipe.

``main`` (parser, ocr, ocr-server, sandbox, models), ``jobs`` (the service commands: up, worker,
submit, status, get, search, ingest, demo, reindex), ``settings`` (environment + flags -> Settings).
"""

from __future__ import annotations

from textlayer.cli.main import main

__all__ = ["main"]
