"""A lease names its owner's pid in the owner's pid namespace; only that namespace may free it by pid (gate item 7)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image

from textlayer.conversion import InProcessConverter
from textlayer.errors import InputDocumentError
from textlayer.index import open_index
from textlayer.media.limits import DocumentLimits
from textlayer.queue.pipeline import Pipeline, process_namespace
from textlayer.store import BlobStore, JobState, SqliteJobStore


class _RefusingReader:
    """Stands in for the OCR servers, which this test is not about: every page is refused."""

    def recognize(self, image: bytes, *, dpi: float | None = None, frame: int = 0):
        raise InputDocumentError("not read in this test", reason="corrupt_image")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def pipeline(tmp_path):
    return Pipeline(
        jobs=SqliteJobStore(tmp_path / "jobs.db"),
        blobs=BlobStore(tmp_path / "blobs"),
        index=open_index(tmp_path / "index.db"),
        reader=_RefusingReader(),
        converter=InProcessConverter(DocumentLimits()),
    )


def _running_job(pipeline: Pipeline, owner: str) -> str:
    png = io.BytesIO()
    Image.new("L", (40, 20), 255).save(png, format="PNG")
    job_id = pipeline.submit("t", png.getvalue(), filename="a.png", publish=lambda _: None)
    assert pipeline.jobs.claim(job_id, owner, lease_s=3600, max_attempts=5) is not None
    return job_id


@pytest.mark.parametrize("namespace", ["{host}", "{host}@00000000-1"])
def test_a_dead_owner_in_another_namespace_with_the_same_host_name_keeps_its_lease(pipeline, namespace):
    # Same host name, another machine or container: its pid is not ours to look up.
    host = process_namespace().partition("@")[0]
    owner = f"{namespace.format(host=host)}:{_dead_pid()}:1:1"
    job_id = _running_job(pipeline, owner)
    assert pipeline.process(job_id) is None
    job = pipeline.jobs.get(job_id)
    assert (job.state, job.lease_owner) == (JobState.RUNNING, owner)


def test_a_dead_owner_in_this_namespace_is_taken_over_at_once(pipeline):
    owner = f"{process_namespace()}:{_dead_pid()}:1:1"
    job_id = _running_job(pipeline, owner)
    assert pipeline.process(job_id) is not None
    job = pipeline.jobs.get(job_id)
    assert job.lease_owner != owner and job.state.terminal
