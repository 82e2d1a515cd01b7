"""Durable file writes: the one atomic-write helper (temp file, fsync, rename, fsync of the folder)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a new file or subfolder) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(folder: Path) -> None:
    """Create ``folder`` and missing parents, fsyncing each new entry's parent so the folder survives a crash."""
    missing: list[Path] = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            # Another writer created it first; it still needs no fsync from us, but being a
            # file instead of a folder is an error that the open() below reports.
            continue
        fsync_dir(path.parent)


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (and parents) for our user alone (0700), and tighten an existing one we own.

    The data directory holds every tenant's text: other local users must not even list it.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        folder.chmod(0o700)
    return folder


def private_file(path: Path) -> None:
    """Make an existing file ours alone (0600): a database SQLite created with the umask's mode."""
    if path.exists() and path.stat().st_mode & 0o077:
        path.chmod(0o600)


def write_atomically(target: Path, content: str | bytes, *, private: bool = True) -> None:
    """Write via a temporary file + fsync + rename, so a crash or failure never leaves half a file.

    Args:
        target: the file to write (its folder is created).
        content: text (UTF-8) or bytes.
        private: keep the temp file's 0600; otherwise the usual 0666 minus the umask (user outputs).
    """
    make_dirs(target.parent)
    data = content.encode("utf-8") if isinstance(content, str) else content
    # The temp name starts with a dot, which no valid id or blob name does, so it can never
    # collide with a blob or be listed as one.
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(target.parent)
