"""One real stack for every HTTP API test: private Redis, OCR server, Celery worker, `textlayer api` (uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api_stack import ApiStack, Receiver, start_receiver, start_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    yield from start_stack(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="package")
def receiver() -> Iterator[Receiver]:
    yield from start_receiver()
