from __future__ import annotations

import os

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def predictor():
    """The real default models, loaded once for the whole session."""
    from textlayer.worker.predictor import OcrPredictor

    return OcrPredictor.load(threads=2)
