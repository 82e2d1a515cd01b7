"""The OCR engine: decode, orientation, detection, recognition, layout (numpy + one onnxruntime module)."""
