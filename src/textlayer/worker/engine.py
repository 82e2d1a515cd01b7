"""OnnxEngine: the only module that imports onnxruntime."""

from __future__ import annotations

import os

# The onnxruntime wheel otherwise starts a telemetry thread that opens sockets.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

import logging  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from textlayer.errors import ModelError  # noqa: E402

log = logging.getLogger(__name__)

if hasattr(ort, "disable_telemetry_events"):
    ort.disable_telemetry_events()


@dataclass(frozen=True)
class EngineConfig:
    """How a session runs.

    One intra-op thread per process is the robust default: on a shared 2-core machine
    page-parallel processes beat multi-threaded sessions (design/PERFORMANCE.md).
    """

    threads: int = 1
    """Intra-op threads per session."""


class OnnxEngine:
    """One onnxruntime session over verified model bytes."""

    def __init__(self, model_bytes: bytes, name: str, config: EngineConfig | None = None) -> None:
        """Create the session from bytes that were already hash-checked.

        Raises:
            ModelError: onnxruntime rejects the model.
        """
        config = config or EngineConfig()
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads steal the other core from a neighbouring worker.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"model {name}: onnxruntime cannot load it: {exc}") from exc
        self.name = name
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name

    @property
    def input_shape(self) -> list[int | str | None]:
        """The model's declared input shape (symbolic dimensions as strings)."""
        return list(self._session.get_inputs()[0].shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one float32 batch and return its first output."""
        result = self._session.run([self._output], {self._input: batch})[0]
        return np.asarray(result)
