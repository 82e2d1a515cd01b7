"""The OCR role seen from the host: its jail policy, and ``recognize`` over a SandboxPool of OCR workers.

The workers themselves run :mod:`textlayer.worker.ocr_role`; nothing here loads a model or a parser.
"""

from __future__ import annotations

import json
from typing import Any

from textlayer.config import Settings
from textlayer.elements import PageText
from textlayer.errors import SandboxCrashed, SandboxError, TextlayerError
from textlayer.sandbox import SandboxPolicy, SandboxPool
from textlayer.sandbox.protocol import raise_for_error_reply
from textlayer.worker.manifest import default_manifest_path, load_manifest

ROLE = "textlayer.worker.ocr_role"
"""The module a jailed OCR worker starts."""

PACKAGES = ("numpy", "cv2", "onnxruntime", "PIL")
"""What the OCR role imports inside the jail."""


def model_paths() -> tuple[str, ...]:
    """The manifest's folder and every installed model's folder (the jail binds them read-only)."""
    paths = {str(default_manifest_path().parent)}
    for spec in load_manifest().models.values():
        try:
            paths.add(str(spec.locate().parent))
        except Exception:  # a missing model package is reported by the worker's own start-up
            continue
    return tuple(sorted(paths))


def ocr_policy(settings: Settings, *, workers: int = 1, test_hooks: bool = False) -> SandboxPolicy:
    """The jail of an OCR worker these settings describe."""
    return SandboxPolicy(
        role=ROLE,
        role_options={"model": settings.model, "max_pixels": settings.max_pixels},
        read_only_paths=model_paths(),
        packages=PACKAGES,
        layers="prefer" if settings.sandbox_layers == "prefer" else "require",
        workers=workers,
        threads=settings.threads,
        deadline_s=float(settings.sandbox_deadline_s),
        address_space_mib=settings.sandbox_memory_mib,
        test_hooks=test_hooks,
    )


def _ocr_failed(message: str) -> TextlayerError:
    return SandboxError(f"OCR failed inside the sandbox: {message}", reason="ocr_failed")


def parse_page_reply(header: dict[str, Any], payload: bytes) -> PageText:
    """Turn a worker's reply to ``ocr`` into a PageText or the error it reports; the reply is untrusted.

    Raises:
        InputDocumentError: the worker refused the image (the reason code comes with it).
        SandboxError: the OCR failed inside the worker.
        SandboxCrashed: the reply is malformed (``reason="protocol"``).
    """
    raise_for_error_reply(header, _ocr_failed)
    try:
        page = PageText.from_dict(json.loads(payload))
        if page.rotation not in (0, 90, 180, 270) or page.width < 1 or page.height < 1:
            raise ValueError("impossible page geometry")
    except Exception as exc:  # anything malformed is a protocol violation
        raise SandboxCrashed(f"a sandbox worker sent a malformed page result ({exc})", reason="protocol") from exc
    return page


class JailedReader:
    """Reads pages in a started pool of jailed OCR workers (thread-safe, like the pool)."""

    def __init__(self, pool: SandboxPool) -> None:
        """Use ``pool``, whose policy names :data:`ROLE`."""
        self.pool = pool

    def recognize(
        self, image: bytes, *, dpi: float | None = None, frame: int = 0, deadline_s: float | None = None
    ) -> PageText:
        """OCR one encoded page image (PNG, JPEG or TIFF bytes, decoded inside the jail).

        Raises:
            InputDocumentError: the image is unreadable, too large, or a poison page.
            SandboxTimeout, SandboxCrashed, SandboxError: see :meth:`SandboxPool.call_parsed`.
        """
        return self.pool.call_parsed(
            {"op": "ocr", "dpi": dpi, "frame": frame}, image, parse_page_reply, deadline_s=deadline_s
        )
