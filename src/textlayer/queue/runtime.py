"""Where a process finds the running stack: the data directory, the broker, the OCR servers."""

from __future__ import annotations

import os
from pathlib import Path

from textlayer.config import Settings
from textlayer.errors import TextlayerError
from textlayer.files import private_dir
from textlayer.ocr import PageReader
from textlayer.queue.pipeline import Pipeline, PipelineConfig

_PIPELINE: tuple[int, Pipeline] | None = None


def data_paths(data_dir: Path) -> dict[str, Path]:
    """Every piece of local state, under one directory."""
    return {
        "jobs": data_dir / "jobs.db",
        "index": data_dir / "index.db",
        "blobs": data_dir / "blobs",
        "redis": data_dir / "redis",
        "ocr_socket": data_dir / "ocr.sock",  # = Settings.ocr_socket
        "logs": data_dir / "logs",
    }


def broker_url(settings: Settings) -> str:
    """``REDIS_URL``, else the embedded Redis of a running ``textlayer up``.

    Raises:
        TextlayerError: neither is there.
    """
    if settings.redis_url:
        return settings.redis_url
    from textlayer.service.redis import EmbeddedRedis

    found = EmbeddedRedis.running_at(data_paths(settings.data_dir)["redis"])
    if found is None:
        raise TextlayerError(
            f"no textlayer stack is running for {settings.data_dir} (start one with `textlayer up`, or set REDIS_URL)",
            reason="stack_not_running",
        )
    # running_at() answers with redis-py's unix:// form; Celery/kombu spell it redis+socket://.
    return "redis+socket://" + found.removeprefix("unix://") if found.startswith("unix://") else found


def build_pipeline(settings: Settings, reader: PageReader | None = None) -> Pipeline:
    """The pipeline over this data directory; ``reader`` defaults to an OcrClient of the OCR servers.

    Its converter is jailed and starts on the first document this process runs, so building a
    pipeline only to submit jobs costs nothing.
    """
    from textlayer.conversion import JailedConverter, converter_policy, document_limits
    from textlayer.index import open_index
    from textlayer.store import BlobStore, SqliteJobStore

    paths = data_paths(settings.data_dir)
    private_dir(settings.data_dir)
    if reader is None:
        from textlayer.worker.client import OcrClient

        reader = OcrClient(
            settings.ocr_target(), token=settings.ocr_token, deadline_s=float(settings.sandbox_deadline_s)
        )
    return Pipeline(
        jobs=SqliteJobStore(paths["jobs"]),
        blobs=BlobStore(paths["blobs"]),
        index=open_index(paths["index"]),
        reader=reader,
        converter=JailedConverter(
            converter_policy(settings), document_limits(settings), quarantine_dir=settings.quarantine_dir
        ),
        config=PipelineConfig(
            lease_s=float(settings.job_lease_s),
            max_upload_bytes=settings.max_upload_mib * 1024 * 1024,
            max_document_s=float(settings.max_document_s),
            crash_on_filename=settings.crash_on_filename,
            output_type=settings.output_type,
        ),
    )


def pipeline_for_this_process() -> Pipeline:
    """One pipeline per process, built after the fork of a Celery pool child (sockets never cross a fork)."""
    global _PIPELINE
    if _PIPELINE is None or _PIPELINE[0] != os.getpid():
        try:
            settings = Settings.from_env(os.environ)
        except ValueError as exc:
            raise TextlayerError(f"bad setting: {exc}") from exc
        _PIPELINE = (os.getpid(), build_pipeline(settings))
    return _PIPELINE[1]
