"""The work queue: the Celery app (configured from Settings), thin tasks, the job recipe, the reconciler."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``celery -A textlayer.queue`` finds the app as the attribute ``celery``; Celery is imported only then.

    (``app`` here is the submodule ``textlayer.queue.app``, which Celery's lookup skips.)
    """
    if name == "celery":
        from textlayer.queue.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
