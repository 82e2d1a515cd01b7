"""Settings: the only reader of TEXTLAYER_* variables, and the way children get the same settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from textlayer.config import Settings


def test_defaults_come_from_nothing_but_the_home_directory(monkeypatch):
    monkeypatch.setenv("TEXTLAYER_DATA_DIR", "/must/not/be/read")
    settings = Settings.from_env({})
    assert settings.data_dir == Path.home() / ".local" / "share" / "textlayer"
    assert settings == Settings()


def test_every_variable_is_read_and_round_trips_to_a_child():
    environ = {
        "TEXTLAYER_MODEL": "tiny",
        "TEXTLAYER_OCR_THREADS": "2",
        "TEXTLAYER_DATA_DIR": "/srv/textlayer",
        "TEXTLAYER_OCR_TOKEN": "secret",
        "TEXTLAYER_SANDBOX_LAYERS": "prefer",
        "TEXTLAYER_MAX_UPLOAD_MIB": "7",
        "REDIS_URL": "redis://127.0.0.1:6390/0",
        "TEXTLAYER_OCR_SERVERS": "127.0.0.1:50051",
        "TEXTLAYER_TENANT": "acme",
        "TEXTLAYER_TEST_HOOKS": "1",
        "TEXTLAYER_TEST_CRASH_ON_FILENAME": "poison.png",
    }
    settings = Settings.from_env(environ)
    assert (settings.model, settings.threads, settings.data_dir) == ("tiny", 2, Path("/srv/textlayer"))
    assert (settings.redis_url, settings.ocr_target(), settings.tenant) == (
        "redis://127.0.0.1:6390/0",
        "127.0.0.1:50051",
        "acme",
    )
    assert settings.crash_on_filename == "poison.png" and settings.max_upload_mib == 7
    assert Settings.from_env(settings.to_env()) == settings


def test_without_test_hooks_the_crash_hook_is_ignored():
    assert Settings.from_env({"TEXTLAYER_TEST_CRASH_ON_FILENAME": "poison.png"}).crash_on_filename is None


def test_empty_variables_count_as_unset_and_the_ocr_target_defaults_to_up():
    settings = Settings.from_env({"REDIS_URL": "", "TEXTLAYER_OCR_THREADS": "", "TEXTLAYER_DATA_DIR": "/d"})
    assert settings.redis_url is None and settings.threads == 1
    assert settings.ocr_target() == "unix:/d/ocr.sock"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TEXTLAYER_OCR_THREADS": "two"}, "TEXTLAYER_OCR_THREADS='two' is not a whole number"),
        ({"TEXTLAYER_PDF_DPI": "20"}, "TEXTLAYER_PDF_DPI=20 must be at least 36"),
        ({"TEXTLAYER_SANDBOX_LAYERS": "maybe"}, "must be one of require, prefer"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(environ, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)


def test_the_data_directory_and_its_databases_are_ours_alone(tmp_path):
    """Every tenant's text lives there: other local users must not read it (0700 folder, 0600 databases)."""
    from textlayer.queue.runtime import build_pipeline

    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    pipeline = build_pipeline(Settings(data_dir=data_dir), reader=object())  # type: ignore[arg-type]
    pipeline.jobs.create("t", filename="a.png", size_bytes=1, sha256="0" * 64)
    pipeline.index.search("t", "anything")
    assert data_dir.stat().st_mode & 0o777 == 0o700
    for name in ("jobs.db", "index.db"):
        assert (data_dir / name).stat().st_mode & 0o777 == 0o600, name
