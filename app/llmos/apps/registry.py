"""The installed apps: built-in manifests from resources/apps plus the user's in the data dir."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from llmos.apps.manifest import AppManifest, ManifestError
from llmos.resources import resource_path

log = logging.getLogger(__name__)

MANIFEST_NAME = "app.toml"
DISABLED_FILE = "disabled.json"
"""In the user's apps folder: the ids of apps turned off."""


def read_disabled(data_dir: Path) -> set[str]:
    """The ids of the apps the user turned off (none when the file is missing or broken)."""
    try:
        data = json.loads((data_dir / "apps" / DISABLED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(app_id) for app_id in data} if isinstance(data, list) else set()


class AppNotFound(LookupError):
    def __init__(self, app_id: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"There is no app called '{app_id}'. Installed apps: {names}.")
        self.app_id = app_id


class AppDisabled(AppNotFound):
    def __init__(self, app: AppManifest) -> None:
        LookupError.__init__(
            self,
            f"{app.name} is disabled. Enable it in the App Store, or with "
            f"`llmos apps enable {app.id}`.",
        )
        self.app_id = app.id


class AppRegistry:
    """Apps by id. A broken manifest is recorded in ``errors`` and skipped, never fatal.

    Args:
        folders: searched in order; an app in a later folder replaces one with the same id.
        disabled: ids of apps the user turned off: listed by :meth:`everything`, never
            started or offered.
    """

    def __init__(self, folders: Iterable[Path], disabled: Iterable[str] = ()) -> None:
        self._apps: dict[str, AppManifest] = {}
        self.disabled: dict[str, AppManifest] = {}
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
        for app_id in set(disabled) & set(self._apps):
            self.disabled[app_id] = self._apps.pop(app_id)

    @classmethod
    def default(cls, data_dir: Path) -> AppRegistry:
        return cls([resource_path("apps"), data_dir / "apps"], read_disabled(data_dir))

    def get(self, app_id: str) -> AppManifest:
        if app_id in self.disabled:
            raise AppDisabled(self.disabled[app_id])
        try:
            return self._apps[app_id]
        except KeyError:
            raise AppNotFound(app_id, self._apps) from None

    def everything(self) -> list[AppManifest]:
        """Every app, disabled ones included, by name."""
        apps = [*self._apps.values(), *self.disabled.values()]
        return sorted(apps, key=lambda app: app.name.lower())

    def __iter__(self) -> Iterator[AppManifest]:
        return iter(sorted(self._apps.values(), key=lambda app: app.name.lower()))

    def __len__(self) -> int:
        return len(self._apps)
