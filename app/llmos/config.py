"""Settings: one object, from defaults < config file < environment < command-line flags.

The config file is TOML at ``<user config dir>/llmos/config.toml`` (``LLMOS_CONFIG`` names
another)::

    data_dir = "/home/me/llmos"
    ollama_host = "127.0.0.1:11434"
    model = "qwen2.5:0.5b"
    engine = "auto"          # auto | ollama | embedded
    num_ctx = 8192           # the largest context RAM a process gets, in tokens
    parallel = 1             # model calls run at once per backend
    embed_model = "nomic-embed-text"   # memory's embedding model; "none": full text only
    theme = "system"         # the desktop's look: system | light | dark

Environment: ``OLLAMA_HOST`` (read the way Ollama's own clients read it), ``LLMOS_DATA_DIR``,
``LLMOS_MODEL``, ``LLMOS_ENGINE``, ``LLMOS_NUM_CTX``, ``LLMOS_PARALLEL``, ``LLMOS_EMBED_MODEL``;
``OLLAMA_NUM_PARALLEL`` sets the default for ``parallel``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from llmos.drivers.ollama_driver import parse_ollama_host

APP_NAME = "llmos"
ENGINES = ("auto", "ollama", "embedded")
THEMES = ("system", "light", "dark")
_CHOICES = {"engine": ENGINES, "theme": THEMES}


class SettingsError(Exception):
    """A setting is invalid; the message names it and where it came from."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    ollama_host: str = "http://127.0.0.1:11434"
    model: str | None = None
    engine: str = "auto"
    num_ctx: int = 8192
    parallel: int = 1
    embed_model: str | None = None
    """Memory's embedding model; None picks one, ``none`` turns vectors off."""
    theme: str = "system"
    """The desktop's look: ``system`` follows the OS, or ``light`` / ``dark``."""
    config_file: Path | None = None
    """The config file that was read, if any."""

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


_ENV = {
    "LLMOS_DATA_DIR": "data_dir",
    "OLLAMA_HOST": "ollama_host",
    "LLMOS_MODEL": "model",
    "LLMOS_ENGINE": "engine",
    "LLMOS_NUM_CTX": "num_ctx",
    "LLMOS_PARALLEL": "parallel",
    "LLMOS_EMBED_MODEL": "embed_model",
}
_FILE_KEYS = {
    "data_dir",
    "ollama_host",
    "model",
    "engine",
    "num_ctx",
    "parallel",
    "embed_model",
    "theme",
}


def default_config_file(env: Mapping[str, str]) -> Path:
    if env.get("LLMOS_CONFIG"):
        return Path(env["LLMOS_CONFIG"]).expanduser()
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings. ``flags`` holds command-line values (None means not given).

    Raises:
        SettingsError: an unknown key or an invalid value, naming its source.
    """
    env = os.environ if env is None else env
    settings = Settings(data_dir=platformdirs.user_data_path(APP_NAME))
    if env.get("OLLAMA_NUM_PARALLEL"):
        settings = _apply(settings, {"parallel": env["OLLAMA_NUM_PARALLEL"]}, "OLLAMA_NUM_PARALLEL")

    path = default_config_file(env)
    data = _read_config(path)
    if data is not None:
        unknown = sorted(set(data) - _FILE_KEYS)
        if unknown:
            raise SettingsError(
                f"The config file {path} has unknown settings: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(_FILE_KEYS))})."
            )
        settings = _apply(settings, data, f"the config file {path}")
        settings = replace(settings, config_file=path)

    for variable, key in _ENV.items():
        value = env.get(variable)
        if value:
            settings = _apply(settings, {key: value}, variable)

    given = {key: value for key, value in (flags or {}).items() if value is not None}
    return _apply(settings, given, "the command line")


def _read_config(path: Path) -> dict[str, Any] | None:
    """The config file's contents; None when there is none.

    Raises:
        SettingsError: it is not a file, or cannot be read or parsed.
    """
    if path.exists() and not path.is_file():
        raise SettingsError(f"The config file {path} is not a file.")
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"The config file {path} cannot be read: {error}.") from None


def apply_changes(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """``settings`` with ``changes`` checked and applied (as the settings dialog makes them).

    Raises:
        SettingsError: naming the invalid setting.
    """
    return _apply(settings, changes, "the settings")


def _apply(settings: Settings, values: Mapping[str, Any], source: str) -> Settings:
    known = {f.name for f in fields(Settings)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise SettingsError(f"Unknown setting '{key}' in {source}.")
        changes[key] = _convert(key, value, source)
    return replace(settings, **changes)


def _convert(key: str, value: Any, source: str) -> Any:
    if key == "data_dir":
        return Path(str(value)).expanduser()
    if key == "ollama_host":
        try:
            return parse_ollama_host(str(value))
        except ValueError as error:
            raise SettingsError(f"ollama_host from {source}: {error}.") from None
    if key in _CHOICES:
        choice = str(value).strip().lower()
        if choice not in _CHOICES[key]:
            raise SettingsError(
                f"{key} must be one of {', '.join(_CHOICES[key])}; {source} says '{value}'."
            )
        return choice
    if key in ("num_ctx", "parallel"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{key} must be a whole number; {source} says '{value}'.") from None
        lowest = 256 if key == "num_ctx" else 1
        if number < lowest:
            raise SettingsError(f"{key} must be at least {lowest}; {source} says {number}.")
        return number
    if key in ("model", "embed_model"):
        return str(value).strip() or None
    return value


def save_settings(changes: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """Write ``changes`` into the config file, keeping its other keys; None (or an empty
    model name) removes a key, so its default applies again.

    The file is replaced atomically, so a crash never leaves half of it. Values are checked
    as :func:`load_settings` would check them.

    Returns:
        The config file's path.

    Raises:
        SettingsError: an unknown key, an invalid value, or a file that cannot be written.
    """
    env = os.environ if env is None else env
    path = default_config_file(env)
    data = _read_config(path) or {}
    for key, value in changes.items():
        if key not in _FILE_KEYS:
            raise SettingsError(f"Unknown setting '{key}'.")
        if value is None:
            data.pop(key, None)
            continue
        checked = _convert(key, value, "the settings")
        if checked is None:  # e.g. an empty model name: back to the default
            data.pop(key, None)
        else:
            data[key] = str(checked) if isinstance(checked, Path) else checked
    text = tomli_w.dumps(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    except OSError as error:
        raise SettingsError(
            f"The config file {path} cannot be written ({error.strerror})."
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise SettingsError(
            f"The config file {path} cannot be written ({error.strerror})."
        ) from None
    return path
