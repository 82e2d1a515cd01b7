"""``python -m textlayer`` runs the command line."""

from __future__ import annotations

from textlayer.cli import main

raise SystemExit(main())
