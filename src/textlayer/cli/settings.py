"""Settings of one command: the ``TEXTLAYER_*`` environment, then the command line's own flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from textlayer.config import Settings
from textlayer.errors import UsageError


def _megapixels(value: float | None) -> int | None:
    return None if value is None else max(1, int(value * 1_000_000))


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings of this command: the environment, overridden by the flags that were given."""
    try:
        base = Settings.from_env(os.environ)
    except ValueError as exc:
        raise UsageError(f"bad setting: {exc}") from exc
    overrides: dict[str, Any] = {
        "model": getattr(args, "model", None),
        "pdf_dpi": getattr(args, "dpi", None),
        "max_pixels": getattr(args, "max_pixels", None) or _megapixels(getattr(args, "max_image_mpixels", None)),
        "threads": getattr(args, "threads", None),
        "api_url": getattr(args, "api", None),
    }
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir.resolve()
    if getattr(args, "tenant", None) is not None:
        overrides["tenant"] = args.tenant
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
