from __future__ import annotations

import textlayer


def test_all_is_sorted_and_complete():
    assert textlayer.__all__ == sorted(textlayer.__all__)
    for name in textlayer.__all__:
        assert hasattr(textlayer, name)


def test_error_tree_carries_behaviour_in_class_attributes():
    assert issubclass(textlayer.SandboxTimeout, textlayer.SandboxError)
    assert textlayer.InputDocumentError("x").grpc_status == "INVALID_ARGUMENT"
    assert textlayer.InputDocumentError("x", reason="encrypted_pdf").reason == "encrypted_pdf"
    assert textlayer.OcrUnavailable("x").retryable
