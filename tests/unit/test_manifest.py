from __future__ import annotations

import shutil

import pytest

from textlayer.errors import ModelError
from textlayer.worker.manifest import load_manifest, read_verified


def test_every_model_in_the_manifest_is_installed_and_verifies():
    manifest = load_manifest()
    assert {"small", "tiny"} <= set(manifest.sets)
    for spec in manifest.models.values():
        assert read_verified(spec)


def test_a_tampered_model_is_refused_naming_the_file_and_both_hashes(tmp_path):
    spec = load_manifest().models["ppocrv5-textline-cls"]
    copy = tmp_path / "cls.onnx"
    shutil.copyfile(spec.locate(), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        read_verified(spec, copy)
    message = str(info.value)
    assert str(copy) in message and spec.sha256 in message
    assert "refusing" in message


def test_unknown_model_set_names_the_choices():
    with pytest.raises(ModelError, match="small, tiny"):
        load_manifest().model_set("huge")
