"""The installed apps: built-in manifests from resources/apps plus the user's in the data dir."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from llmos.apps.manifest import AppManifest, ManifestError
from llmos.resources import resource_path

log = logging.getLogger(__name__)

MANIFEST_NAME = "app.toml"


class AppNotFound(LookupError):
    def __init__(self, app_id: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"There is no app called '{app_id}'. Installed apps: {names}.")
        self.app_id = app_id


class AppRegistry:
    """Apps by id. A broken manifest is recorded in ``errors`` and skipped, never fatal.

    Args:
        folders: searched in order; an app in a later folder replaces one with the same id.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self._apps: dict[str, AppManifest] = {}
        self.errors: list[str] = []
        for folder in folders:
            for path in sorted(folder.glob(f"*/{MANIFEST_NAME}")) if folder.is_dir() else ():
                if path.parent.name.startswith("."):
                    continue  # an install in progress, or one a crash left half-way
                try:
                    manifest = AppManifest.from_toml(path)
                except ManifestError as error:
                    log.warning("%s", error)
                    self.errors.append(str(error))
                    continue
                self._apps[manifest.id] = manifest

    @classmethod
    def default(cls, data_dir: Path) -> AppRegistry:
        return cls([resource_path("apps"), data_dir / "apps"])

    def get(self, app_id: str) -> AppManifest:
        try:
            return self._apps[app_id]
        except KeyError:
            raise AppNotFound(app_id, self._apps) from None

    def __iter__(self) -> Iterator[AppManifest]:
        return iter(sorted(self._apps.values(), key=lambda app: app.name.lower()))

    def __len__(self) -> int:
        return len(self._apps)
