"""The blob store: a job's files (upload, searchable PDF, per-page results) in a folder tree.

Layout::

    {root}/{tenant}/{job_id}/input            the uploaded document, as received
    {root}/{tenant}/{job_id}/output.pdf       the searchable PDF
    {root}/{tenant}/{job_id}/text.txt         plain text, pages separated by form feeds
    {root}/{tenant}/{job_id}/meta.json        metadata
    {root}/{tenant}/{job_id}/pages/00000.json one page's result (text, words), zero-based

Only validated names reach a path (tenant and job ids match ``ID_PATTERN``: no separator, no leading dot, so
never ``.``/``..`` nor a temp file's name; blob names come from ``BLOB_NAMES``; pages are integers; the client's
file name is never used), so nothing can be read or written outside ``root``.

Writes are atomic and durable (temp file in the target folder, fsync, ``os.replace``, fsync of the folder): a
reader sees the old file or the new one, never a torn one, and a written file survives a power cut. A crash may
leave a ``.*.tmp`` file behind, which no listing shows.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from textlayer.errors import TextlayerError
from textlayer.files import fsync_dir, write_atomically

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a tenant or job id must fully match to become a folder name."""

BLOB_NAMES = frozenset({"input", "meta.json", "output.pdf", "text.txt"})
"""The files a job folder may hold besides its pages."""

PAGES_DIR = "pages"
"""Folder of a job's per-page results."""

MAX_PAGE = 99_999
"""Highest page index: page file names have five digits."""

_PAGE_FILE = re.compile(r"(\d{5})\.json")


class BlobError(TextlayerError):
    """A blob cannot be stored or read; ``reason`` says why (``bad_id``, ``blob_not_found``...)."""

    reason = "blob_error"


def _check_id(kind: str, value: object) -> str:
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None or value in (".", ".."):
        raise BlobError(
            f"{kind} {value!r:.80} is not a valid id (1-64 letters, digits, '_', '.', '-', starting with a letter"
            " or digit)",
            reason="bad_id",
        )
    return value


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in BLOB_NAMES:
        raise BlobError(f"{name!r:.80} is not a blob name; use one of {sorted(BLOB_NAMES)}", reason="bad_name")
    return name


def _check_page(page: object) -> int:
    # bool is an int subclass; True as a page number is a bug at the caller.
    if not isinstance(page, int) or isinstance(page, bool) or not 0 <= page <= MAX_PAGE:
        raise BlobError(f"page {page!r:.80} is not a page index from 0 to {MAX_PAGE}", reason="bad_page")
    return page


def _page_name(page: int) -> str:
    return f"{page:05d}.json"


class BlobStore:
    """A job's files under ``root``; safe for several threads and processes at once.

    The constructor does no I/O: ``root`` (and its parents) are created by the first write.

    Methods take the job's ``tenant`` and ``job_id``, a ``name`` from :data:`BLOB_NAMES` and a zero-based
    ``page`` index. Any method raises :class:`BlobError` with reason ``bad_id`` for an invalid id, ``bad_name`` for
    a name not in ``BLOB_NAMES`` and ``bad_page`` for a page outside 0 to ``MAX_PAGE``.
    """

    def __init__(self, root: Path) -> None:
        """Use ``root`` as the top folder of the store."""
        self.root = Path(root)

    def __repr__(self) -> str:
        """Show the root, for logs."""
        return f"BlobStore({str(self.root)!r})"

    def _job_dir(self, tenant: str, job_id: str) -> Path:
        return self.root / _check_id("tenant", tenant) / _check_id("job id", job_id)

    def path(self, tenant: str, job_id: str, name: str) -> Path:
        """Where a blob lives, ``{root}/{tenant}/{job_id}/{name}``, whether or not it exists."""
        return self._job_dir(tenant, job_id) / _check_name(name)

    def page_path(self, tenant: str, job_id: str, page: int) -> Path:
        """Where a page's result lives, ``{root}/{tenant}/{job_id}/pages/{page:05d}.json``, whether or not it exists."""
        return self._job_dir(tenant, job_id) / PAGES_DIR / _page_name(_check_page(page))

    def _put(self, target: Path, data: bytes) -> Path:
        try:
            write_atomically(target, bytes(data))
        except OSError as exc:
            raise BlobError(f"cannot store {target}: {exc}", reason="blob_write_failed") from exc
        log.debug("stored %d bytes in %s", len(data), target)
        return target

    @staticmethod
    def _get(target: Path, what: str) -> bytes:
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise BlobError(f"there is no {what}", reason="blob_not_found") from exc
        except OSError as exc:
            raise BlobError(f"cannot read {what}: {exc}", reason="blob_read_failed") from exc

    def put(self, tenant: str, job_id: str, name: str, data: bytes) -> Path:
        """Store a blob atomically and durably, replacing any previous one; returns its path.

        Raises:
            BlobError: The file cannot be written (``blob_write_failed``).
        """
        return self._put(self.path(tenant, job_id, name), data)

    def get(self, tenant: str, job_id: str, name: str) -> bytes:
        """Read a blob.

        Raises:
            BlobError: No such blob (``blob_not_found``) or a read error (``blob_read_failed``).
        """
        return self._get(self.path(tenant, job_id, name), f"{name} for job {job_id!r}")

    def exists(self, tenant: str, job_id: str, name: str) -> bool:
        """True when the blob is stored."""
        return self.path(tenant, job_id, name).is_file()

    def put_page(self, tenant: str, job_id: str, page: int, data: bytes) -> Path:
        """Store one page's result (JSON) atomically and durably, replacing any previous one; returns its path.

        Raises:
            BlobError: The file cannot be written (``blob_write_failed``).
        """
        return self._put(self.page_path(tenant, job_id, page), data)

    def get_page(self, tenant: str, job_id: str, page: int) -> bytes:
        """Read one page's result (JSON).

        Raises:
            BlobError: No such page (``blob_not_found``) or a read error (``blob_read_failed``).
        """
        return self._get(self.page_path(tenant, job_id, page), f"page {page} for job {job_id!r}")

    def pages(self, tenant: str, job_id: str) -> list[int]:
        """The pages whose result is stored, ascending; empty when there are none."""
        folder = self._job_dir(tenant, job_id) / PAGES_DIR
        try:
            names = [entry.name for entry in folder.iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        # Temp files (".00003.json.xyz.tmp") do not match, so a page being written is not listed.
        return sorted(int(m.group(1)) for n in names if (m := _PAGE_FILE.fullmatch(n)) is not None)

    def delete_job(self, tenant: str, job_id: str) -> None:
        """Remove a job's folder and everything in it; removing a missing job does nothing.

        Raises:
            BlobError: The folder cannot be removed (``blob_delete_failed``).
        """
        folder = self._job_dir(tenant, job_id)
        # Renamed away first (atomic), so that a crash half-way through the removal never
        # leaves a job folder that looks like a job with missing pages; the dot name is never listed.
        doomed = folder.with_name(f".deleting.{job_id}.{os.getpid()}.{os.urandom(4).hex()}")
        try:
            folder.rename(doomed)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BlobError(f"cannot delete job {job_id!r}: {exc}", reason="blob_delete_failed") from exc
        try:
            shutil.rmtree(doomed)
            fsync_dir(folder.parent)
        except OSError as exc:
            raise BlobError(f"cannot delete job {job_id!r}: {exc}", reason="blob_delete_failed") from exc
        log.debug("deleted %s", folder)

    def jobs(self, tenant: str | None = None) -> Iterator[tuple[str, str]]:
        """Every job folder as sorted ``(tenant, job_id)`` pairs, for a reindex; all tenants' when ``tenant`` is None.

        Folders whose names are not valid ids (temp and half-deleted folders) are skipped.
        """
        tenants = [_check_id("tenant", tenant)] if tenant is not None else _valid_subdirs(self.root)
        for name in tenants:
            for job_id in _valid_subdirs(self.root / name):
                yield name, job_id


def _valid_subdirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as scan:
            entries = list(scan)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = []
    for entry in entries:
        # follow_symlinks=False: a link planted in the tree must not lead a walk outside the root.
        if entry.is_dir(follow_symlinks=False) and ID_PATTERN.fullmatch(entry.name) and entry.name not in (".", ".."):
            names.append(entry.name)
    return sorted(names)
