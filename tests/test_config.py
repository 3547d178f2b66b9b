"""Settings precedence: defaults < config file < environment < command-line flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.config import SettingsError, load_settings, save_settings


def write_config(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMOS_DATA_DIR")
    settings = load_settings({})
    assert settings.ollama_host == "http://127.0.0.1:11434"
    assert settings.engine == "auto"
    assert settings.model is None
    assert settings.parallel == 1
    assert settings.data_dir.name == "llmos"
    assert settings.config_file is None


def test_precedence_file_then_env_then_flags(monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    write_config(
        config,
        'ollama_host = "10.0.0.5"\nmodel = "from-file"\nengine = "ollama"\nnum_ctx = 4096\n'
        f'data_dir = "{tmp_path / "file-data"}"\n',
    )
    settings = load_settings({})
    assert settings.ollama_host == "http://10.0.0.5:11434"
    assert settings.model == "from-file"
    assert settings.num_ctx == 4096
    assert settings.config_file == config
    # LLMOS_DATA_DIR is set by the test fixture: the environment beats the file.
    assert settings.data_dir == tmp_path / "data"

    monkeypatch.setenv("OLLAMA_HOST", ":5555")
    monkeypatch.setenv("LLMOS_MODEL", "from-env")
    settings = load_settings({})
    assert settings.ollama_host == "http://127.0.0.1:5555"
    assert settings.model == "from-env"

    settings = load_settings({"model": "from-flag", "ollama_host": "https://box:1", "engine": None})
    assert settings.model == "from-flag"
    assert settings.ollama_host == "https://box:1"
    assert settings.engine == "ollama"  # a flag left out (None) changes nothing


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("example.com:8080", "http://example.com:8080"),
        ("https://example.com", "https://example.com:443"),
    ],
)
def test_ollama_host_is_read_like_ollama_reads_it(monkeypatch, host, expected):
    monkeypatch.setenv("OLLAMA_HOST", host)
    assert load_settings({}).ollama_host == expected


def test_parallel_defaults_to_ollama_num_parallel(monkeypatch):
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "4")
    assert load_settings({}).parallel == 4
    assert load_settings({"parallel": 2}).parallel == 2


def test_bad_values_name_the_setting_and_source(monkeypatch, tmp_path):
    write_config(tmp_path / "config.toml", "colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown settings: colour"):
        load_settings({})
    write_config(tmp_path / "config.toml", "num_ctx = 'lots'\n")
    with pytest.raises(SettingsError, match="num_ctx must be a whole number"):
        load_settings({})
    write_config(tmp_path / "config.toml", "num_ctx = [\n")
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings({})
    (tmp_path / "config.toml").unlink()
    monkeypatch.setenv("LLMOS_ENGINE", "gpu")
    with pytest.raises(SettingsError, match="LLMOS_ENGINE"):
        load_settings({})


def test_a_config_path_that_is_a_folder_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOS_CONFIG", str(tmp_path))
    with pytest.raises(SettingsError, match="is not a file"):
        load_settings({})


def test_saved_settings_are_read_back_and_other_keys_kept(monkeypatch, tmp_path):
    config = tmp_path / "conf" / "config.toml"
    config.parent.mkdir()
    config.write_text('num_ctx = 4096\nembed_model = "none"\n', encoding="utf-8")
    monkeypatch.setenv("LLMOS_CONFIG", str(config))

    assert save_settings({"theme": "Dark", "ollama_host": "gpu-box", "model": "qwen2.5:0.5b"})
    settings = load_settings()
    assert settings.theme == "dark"
    assert settings.ollama_host == "http://gpu-box:11434"
    assert settings.model == "qwen2.5:0.5b"
    assert (settings.num_ctx, settings.embed_model) == (4096, "none")

    save_settings({"model": ""})
    assert load_settings().model is None
    assert [p.name for p in config.parent.iterdir()] == ["config.toml"]  # no temp files left


def test_saving_an_invalid_value_changes_nothing(monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("num_ctx = 4096\n", encoding="utf-8")
    monkeypatch.setenv("LLMOS_CONFIG", str(config))
    with pytest.raises(SettingsError, match="theme must be one of"):
        save_settings({"theme": "purple"})
    with pytest.raises(SettingsError, match="num_ctx must be at least 256"):
        save_settings({"num_ctx": 12})
    assert config.read_text(encoding="utf-8") == "num_ctx = 4096\n"
