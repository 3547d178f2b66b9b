"""Installing and removing user apps: the App Store's operations, without any UI.

A user app lives in ``<data dir>/apps/<id>/`` (its ``app.toml`` and resources such as an
icon). Installing validates the manifest first and copies the app into place atomically (a
temporary folder renamed over the old one), so a failed install leaves the installed app as
it was. Built-in apps (``resources/apps``) can be neither replaced nor removed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmos.apps.manifest import AppManifest, ManifestError
from llmos.apps.registry import (
    DISABLED_FILE,
    MANIFEST_NAME,
    AppNotFound,
    AppRegistry,
    read_disabled,
)
from llmos.resources import resource_path

MAX_APP_BYTES = 20_000_000
"""The most an app's folder may hold (manifest, icon, resources)."""


class AppStoreError(Exception):
    """An app cannot be installed or removed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An app about to be installed: its manifest, and what it replaces."""

    manifest: AppManifest
    folder: Path | None
    """The folder whose contents are copied (None: the manifest file alone)."""
    replaces: AppManifest | None


def apps_folder(data_dir: Path) -> Path:
    return data_dir / "apps"


def inspect(source: Path, data_dir: Path) -> Candidate:
    """Read and check the app at ``source`` (a manifest file or a folder holding one).

    Raises:
        ManifestError: the manifest is invalid (the message names the field).
        AppStoreError: there is no manifest, the app is too large, or it would replace a
            built-in app.
    """
    source = source.expanduser()
    if source.is_dir():
        manifest_path, folder = source / MANIFEST_NAME, source
        if not manifest_path.is_file():
            raise AppStoreError(f"{source} holds no {MANIFEST_NAME}: it is not an app folder.")
        size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        if size > MAX_APP_BYTES:
            raise AppStoreError(
                f"{source} holds {size / 1e6:.0f} MB; an app may hold at most "
                f"{MAX_APP_BYTES / 1e6:.0f} MB."
            )
    elif source.is_file():
        manifest_path, folder = source, None
    else:
        raise AppStoreError(f"There is no file or folder at {source}.")
    manifest = AppManifest.from_toml(manifest_path)
    builtin = AppRegistry([resource_path("apps")])
    if manifest.id in {app.id for app in builtin}:
        raise AppStoreError(
            f"'{manifest.id}' is a built-in app and cannot be replaced; give yours another id."
        )
    installed = AppRegistry([apps_folder(data_dir)])
    replaces = next((app for app in installed if app.id == manifest.id), None)
    return Candidate(manifest, folder, replaces)


def install(candidate: Candidate, data_dir: Path) -> AppManifest:
    """Copy an inspected app into the data dir (replacing its older version) and return the
    installed manifest."""
    target = apps_folder(data_dir) / candidate.manifest.id
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{candidate.manifest.id}-", dir=target.parent))
    try:
        if candidate.folder is not None:
            shutil.copytree(candidate.folder, staging, dirs_exist_ok=True)
        else:
            assert candidate.manifest.source is not None
            shutil.copy2(candidate.manifest.source, staging / MANIFEST_NAME)
        installed = AppManifest.from_toml(staging / MANIFEST_NAME)  # what was copied
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except (OSError, ManifestError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        name = candidate.manifest.name
        raise AppStoreError(f"{name} could not be installed ({error}).") from None
    return installed.model_copy(update={"source": target / MANIFEST_NAME})


def remove(app_id: str, data_dir: Path) -> AppManifest:
    """Remove a user app; returns what was removed.

    Raises:
        AppNotFound, AppStoreError: no such user app, or it is built in.
    """
    if app_id in {app.id for app in AppRegistry([resource_path("apps")])}:
        raise AppStoreError(f"'{app_id}' is a built-in app and cannot be removed.")
    installed = AppRegistry([apps_folder(data_dir)])
    app = installed.get(app_id)  # raises AppNotFound
    folder = apps_folder(data_dir) / app_id
    if app.source is None or app.source.parent != folder:
        raise AppNotFound(app_id, [a.id for a in installed])
    shutil.rmtree(folder)
    if app_id in (off := read_disabled(data_dir)):
        _write_disabled(data_dir, off - {app_id})  # a new app by that id starts enabled
    return app


def set_enabled(app_id: str, data_dir: Path, enabled: bool) -> AppManifest:
    """Turn an app (built in or yours) on or off; returns it. Written atomically.

    Raises:
        AppNotFound: there is no such app.
    """
    registry = AppRegistry.default(data_dir)
    app = next((a for a in registry.everything() if a.id == app_id), None)
    if app is None:
        raise AppNotFound(app_id, [a.id for a in registry.everything()])
    off = read_disabled(data_dir)
    _write_disabled(data_dir, off - {app_id} if enabled else off | {app_id})
    return app


def _write_disabled(data_dir: Path, app_ids: set[str]) -> None:
    folder = apps_folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix=".disabled-", suffix=".json", delete=False, encoding="utf-8"
    ) as temporary:
        json.dump(sorted(app_ids), temporary)
    Path(temporary.name).replace(folder / DISABLED_FILE)
