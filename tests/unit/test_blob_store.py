"""The blob store: layout, id validation (no path escapes the root), atomic writes, page listing."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from textlayer.errors import TextlayerError
from textlayer.store import BLOB_NAMES, BlobError, BlobStore

BAD_IDS = [
    "../x",
    "a/b",
    "..",
    ".",
    "",
    "/etc",
    "/tmp/abs",
    "a" * 65,
    "a\x00b",
    "\x00",
    ".hidden",
    "-dash-first",
    "a b",
    "a\\b",
    "x\n",
    "é",
    "a/../../b",
    "~",
    None,
    5,
]


def _everything(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "root")


def test_layout_and_round_trip(blobs: BlobStore, tmp_path: Path) -> None:
    root = tmp_path / "root"
    path = blobs.put("acme", "job1", "input", b"%PDF-1.7 data")
    assert path == root / "acme" / "job1" / "input" == blobs.path("acme", "job1", "input")
    assert blobs.get("acme", "job1", "input") == b"%PDF-1.7 data"
    assert blobs.exists("acme", "job1", "input")
    assert not blobs.exists("acme", "job1", "output.pdf")
    assert not blobs.exists("globex", "job1", "input")
    for name in sorted(BLOB_NAMES):
        blobs.put("acme", "job1", name, name.encode())
        assert (root / "acme" / "job1" / name).read_bytes() == name.encode()
    assert blobs.put_page("acme", "job1", 7, b'{"text": "x"}') == root / "acme" / "job1" / "pages" / "00007.json"
    assert blobs.get_page("acme", "job1", 7) == b'{"text": "x"}'
    assert blobs.page_path("acme", "job1", 7) == root / "acme" / "job1" / "pages" / "00007.json"
    # Ids may carry dots, dashes and underscores (a uuid4 hex or a tenant slug), up to 64 characters.
    blobs.put("tenant_1.eu-west", "a" * 64, "meta.json", b"{}")
    assert blobs.get("tenant_1.eu-west", "a" * 64, "meta.json") == b"{}"


def test_put_replaces_atomically_and_leaves_no_temp_files(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put("acme", "job1", "output.pdf", b"first")
    blobs.put("acme", "job1", "output.pdf", b"second")
    blobs.put_page("acme", "job1", 0, b"p0")
    blobs.put_page("acme", "job1", 0, b"p0 again")
    assert blobs.get("acme", "job1", "output.pdf") == b"second"
    assert blobs.get_page("acme", "job1", 0) == b"p0 again"
    job_dir = tmp_path / "root" / "acme" / "job1"
    assert sorted(p.name for p in job_dir.iterdir()) == ["output.pdf", "pages"]
    assert [p.name for p in (job_dir / "pages").iterdir()] == ["00000.json"]


def test_a_failed_write_removes_its_temp_file_and_keeps_nothing_half_written(blobs: BlobStore, tmp_path: Path) -> None:
    job_dir = tmp_path / "root" / "acme" / "job1"
    # A folder where the blob should go makes the final rename fail after the data was written.
    (job_dir / "text.txt").mkdir(parents=True)
    with pytest.raises(BlobError) as caught:
        blobs.put("acme", "job1", "text.txt", b"x" * 100_000)
    assert caught.value.reason == "blob_write_failed"
    assert sorted(p.name for p in job_dir.iterdir()) == ["text.txt"]
    assert list((job_dir / "text.txt").iterdir()) == []


def test_writes_are_fsynced_file_and_folder(blobs: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs.put("acme", "job1", "input", b"first")  # folders exist from here on
    synced: list[bool] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    blobs.put("acme", "job1", "input", b"second")
    assert synced == [False, True]  # the temp file's data, then the folder holding the rename


def test_get_of_missing_blobs(blobs: BlobStore) -> None:
    calls: list[Callable[[], object]] = [
        lambda: blobs.get("acme", "job1", "input"),
        lambda: blobs.get_page("acme", "job1", 0),
    ]
    for call in calls:
        with pytest.raises(BlobError) as caught:
            call()
        assert caught.value.reason == "blob_not_found"
        assert isinstance(caught.value, TextlayerError)
    blobs.put("acme", "job1", "input", b"x")
    with pytest.raises(BlobError, match="no page 3"):
        blobs.get_page("acme", "job1", 3)


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_ids_are_refused_and_nothing_is_written(bad: object, blobs: BlobStore, tmp_path: Path) -> None:
    before = _everything(tmp_path)
    calls: list[Callable[[Any, Any], object]] = [
        lambda t, j: blobs.put(t, j, "input", b"x"),
        lambda t, j: blobs.get(t, j, "input"),
        lambda t, j: blobs.exists(t, j, "input"),
        lambda t, j: blobs.path(t, j, "input"),
        lambda t, j: blobs.put_page(t, j, 0, b"x"),
        lambda t, j: blobs.get_page(t, j, 0),
        lambda t, j: blobs.page_path(t, j, 0),
        lambda t, j: blobs.pages(t, j),
        lambda t, j: blobs.delete_job(t, j),
    ]
    for call in calls:
        for tenant, job_id in ((bad, "job1"), ("acme", bad)):
            with pytest.raises(BlobError) as caught:
                call(tenant, job_id)
            assert caught.value.reason == "bad_id"
    if bad is not None:  # jobs(None) means every tenant
        with pytest.raises(BlobError) as caught:
            list(blobs.jobs(bad))  # type: ignore[arg-type]
        assert caught.value.reason == "bad_id"
    assert _everything(tmp_path) == before


@pytest.mark.parametrize("name", ["../input", "pages", "input/", "", "/etc/passwd", "output.pdf\x00", "other", None])
def test_unknown_blob_names_are_refused(name: object, blobs: BlobStore, tmp_path: Path) -> None:
    for call in (
        lambda: blobs.put("acme", "job1", name, b"x"),  # type: ignore[arg-type]
        lambda: blobs.get("acme", "job1", name),  # type: ignore[arg-type]
        lambda: blobs.path("acme", "job1", name),  # type: ignore[arg-type]
    ):
        with pytest.raises(BlobError) as caught:
            call()
        assert caught.value.reason == "bad_name"
    assert _everything(tmp_path) == set()


@pytest.mark.parametrize("page", [-1, 100_000, True, "1", 1.0, None])
def test_bad_page_numbers_are_refused(page: object, blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobError) as caught:
        blobs.put_page("acme", "job1", page, b"x")  # type: ignore[arg-type]
    assert caught.value.reason == "bad_page"
    assert _everything(tmp_path) == set()


def test_pages_are_listed_in_page_order(blobs: BlobStore, tmp_path: Path) -> None:
    assert blobs.pages("acme", "job1") == []
    for page in (10, 2, 0, 99_999, 1):
        blobs.put_page("acme", "job1", page, str(page).encode())
    pages_dir = tmp_path / "root" / "acme" / "job1" / "pages"
    # Leftovers of a crashed write and strangers are not pages.
    (pages_dir / ".00003.json.abc.tmp").write_bytes(b"partial")
    (pages_dir / "notes.json").write_bytes(b"{}")
    (pages_dir / "4.json").write_bytes(b"{}")
    assert blobs.pages("acme", "job1") == [0, 1, 2, 10, 99_999]
    assert [blobs.get_page("acme", "job1", p) for p in (0, 10)] == [b"0", b"10"]


def test_delete_job(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put("acme", "job1", "input", b"x")
    blobs.put_page("acme", "job1", 0, b"p")
    blobs.put("acme", "job2", "input", b"y")
    blobs.delete_job("acme", "job1")
    assert not blobs.exists("acme", "job1", "input")
    assert blobs.pages("acme", "job1") == []
    assert sorted(p.name for p in (tmp_path / "root" / "acme").iterdir()) == ["job2"]
    blobs.delete_job("acme", "job1")  # already gone: nothing to do
    blobs.delete_job("nobody", "job9")
    assert list(blobs.jobs()) == [("acme", "job2")]


def test_jobs_lists_every_job_folder_for_a_reindex(blobs: BlobStore, tmp_path: Path) -> None:
    assert list(blobs.jobs()) == []  # no root yet
    for tenant, job_id in (("globex", "b"), ("acme", "z"), ("acme", "a"), ("globex", "a")):
        blobs.put(tenant, job_id, "input", b"x")
    root = tmp_path / "root"
    (root / "acme" / ".deleting.q.1.ab").mkdir()  # a half-deleted job
    (root / "acme" / "stray-file").write_bytes(b"")
    (root / ".tmp").mkdir()
    outside = tmp_path / "outside"
    (outside / "job-out").mkdir(parents=True)
    (root / "linked").symlink_to(outside)  # a link must not lead the walk out of the root
    (root / "acme" / "linked-job").symlink_to(outside / "job-out")
    assert list(blobs.jobs()) == [("acme", "a"), ("acme", "z"), ("globex", "a"), ("globex", "b")]
    assert list(blobs.jobs("globex")) == [("globex", "a"), ("globex", "b")]
    assert list(blobs.jobs("nobody")) == []


def test_constructor_does_no_io(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "not" / "yet")
    assert not (tmp_path / "not").exists()
    assert not store.exists("acme", "job1", "input")
    assert not (tmp_path / "not").exists()
    assert "not" in repr(store)
