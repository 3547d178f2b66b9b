"""Finding the files under resources/ (icons, wallpaper, style sheet, built-in apps).

In a source checkout (editable install) they sit at the repository's top level; in a wheel
they are packaged as ``llmos/resources``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "resources"
_CHECKOUT = Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    """The path of a bundled resource, e.g. ``resource_path("apps")``."""
    root = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT
    return root.joinpath(*parts)
