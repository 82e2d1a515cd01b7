"""The model manifest: which pip package carries each model file, and its sha256."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textlayer.config import DEFAULT_MODEL_SET
from textlayer.errors import ModelError

log = logging.getLogger(__name__)

_MANIFEST_NAME = "manifest.toml"


@dataclass(frozen=True)
class ModelSpec:
    """One file of the manifest: where it comes from and how to feed it."""

    name: str
    role: str
    package: str
    version: str
    path: str
    sha256: str
    options: dict[str, Any] = field(default_factory=dict)

    def locate(self) -> Path:
        """Return the file's path inside the installed package (not verified yet).

        Raises:
            ModelError: the carrying package is not installed.
        """
        # find_spec locates a top-level package without importing (running) it.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"model {self.name}: package {self.package}=={self.version} is not installed "
                f"(pip install {self.package}=={self.version})"
            )
        return Path(next(iter(spec.submodule_search_locations))) / self.path

    def installed_version(self) -> str | None:
        """The version of the carrying package that is installed, if any."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return None


@dataclass(frozen=True)
class ModelSet:
    """The models one engine configuration uses, by role."""

    name: str
    detector: ModelSpec
    recognizer: ModelSpec
    dictionary: ModelSpec
    line_orientation: ModelSpec

    def specs(self) -> tuple[ModelSpec, ...]:
        """Every file of the set."""
        return (self.detector, self.recognizer, self.dictionary, self.line_orientation)


@dataclass(frozen=True)
class Manifest:
    """The parsed ``models_onnx/manifest.toml``."""

    path: Path
    models: dict[str, ModelSpec]
    sets: dict[str, dict[str, str]]

    def model_set(self, name: str = DEFAULT_MODEL_SET) -> ModelSet:
        """Resolve a model set (``--model``) to its files.

        Raises:
            ModelError: unknown set or a set naming a model the manifest lacks.
        """
        if name not in self.sets:
            known = ", ".join(sorted(self.sets))
            raise ModelError(f"unknown model set {name!r} (choose one of: {known})")
        roles = self.sets[name]
        try:
            recognizer = self.models[roles["recognizer"]]
            return ModelSet(
                name=name,
                detector=self.models[roles["detector"]],
                recognizer=recognizer,
                dictionary=self.models[str(recognizer.options["dictionary"])],
                line_orientation=self.models[roles["line_orientation"]],
            )
        except KeyError as exc:
            raise ModelError(f"manifest {self.path}: model set {name!r} names {exc}") from exc


def default_manifest_path() -> Path:
    """Find the manifest: the source tree first, then the installed data files."""
    candidates = [
        Path(__file__).resolve().parents[3] / "models_onnx" / _MANIFEST_NAME,
        Path(sys.prefix) / "share" / "textlayer" / "models_onnx" / _MANIFEST_NAME,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelError("model manifest not found; looked in " + ", ".join(map(str, candidates)))


def load_manifest(path: Path | None = None) -> Manifest:
    """Parse the manifest.

    Raises:
        ModelError: missing file or malformed entries.
    """
    path = path or default_manifest_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc}") from exc
    models: dict[str, ModelSpec] = {}
    for name, entry in raw.get("models", {}).items():
        entry = dict(entry)
        try:
            models[name] = ModelSpec(
                name=name,
                role=str(entry.pop("role")),
                package=str(entry.pop("package")),
                version=str(entry.pop("version")),
                path=str(entry.pop("path")),
                sha256=str(entry.pop("sha256")).lower(),
                options=entry,
            )
        except KeyError as exc:
            raise ModelError(f"manifest {path}: model {name} lacks {exc}") from exc
    sets = {name: {k: str(v) for k, v in roles.items()} for name, roles in raw.get("sets", {}).items()}
    return Manifest(path=path, models=models, sets=sets)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_verified(spec: ModelSpec, path: Path | None = None) -> bytes:
    """Read a model file and check its sha256 against the manifest.

    The bytes that were hashed are the bytes returned, so a file swapped after the check is never loaded. ``path`` is
    read instead of the package's file (tests, air-gapped copies).

    Raises:
        ModelError: the file is missing or its hash differs (both hashes are named).
    """
    path = path or spec.locate()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {spec.name}: cannot read {path}: {exc.strerror}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise ModelError(
            f"model {spec.name}: {path} has sha256 {actual}, but the manifest expects "
            f"{spec.sha256}; refusing to load it (reinstall {spec.package}=={spec.version})"
        )
    log.debug("verified %s (%s)", spec.name, path)
    return data
