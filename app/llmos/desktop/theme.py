"""The desktop's look, light and dark: colours, palette, style sheet, icons and wallpaper."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QByteArray, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QIconEngine, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from llmos.config import THEMES
from llmos.resources import resource_path

if TYPE_CHECKING:
    from llmos.apps.manifest import AppManifest

log = logging.getLogger(__name__)

MODES = THEMES
"""The settings' theme values: ``system`` follows the platform."""


@dataclass(frozen=True)
class Theme:
    """The colours of one variant (light or dark) of the desktop.

    ``taskbar`` is translucent; ``segments`` colours the parts of a context-window bar (keys
    ``system``, ``pinned``, ``summary``, ``tools``, ``history``, ``paged_in``, ``reserve`` and
    ``free``).
    """

    dark: bool
    window: QColor
    base: QColor
    alt_base: QColor
    text: QColor
    muted: QColor
    accent: QColor
    accent_text: QColor
    border: QColor
    taskbar: QColor
    ok: QColor
    warn: QColor
    bad: QColor
    user_bubble: QColor
    assistant_bubble: QColor
    segments: dict[str, QColor]

    def pressure(self, fraction: float) -> QColor:
        """A gauge's colour when ``fraction`` (0 to 1) is used: ok, warn from 0.6, bad from 0.85."""
        if fraction < 0.6:
            return self.ok
        return self.warn if fraction < 0.85 else self.bad


# Name, light colour, dark colour ("#aarrggbb" is translucent); "segment." fills Theme.segments.
# From "button" on, the palette's and the style sheet's own: hover, pressed and track are the text
# at 8, 15 and 10 % opacity, accent_soft the accent at 18/32 %, handle(_hover) muted at 45 (75) %.
_TABLE = """
window #f4f5f9 #1b1e2b          base #ffffff #13151f           alt_base #f5f6fb #1a1d29
text #1d2130 #e4e7f1            muted #687085 #959cb3          accent #4f5bd5 #5b68e8
accent_text #ffffff #ffffff     border #d4d8e3 #33384a         taskbar #e0f8f9fd #e0141722
ok #16a34a #4ade80              warn #d97706 #fbbf24           bad #dc2626 #f87171
user_bubble #dfe5ff #2e3670     assistant_bubble #ffffff #222636
segment.system #6366f1 #818cf8  segment.pinned #a855f7 #c084fc segment.tools #14b8a6 #2dd4bf
segment.history #3b82f6 #60a5fa segment.paged_in #f59e0b #fbbf24 segment.summary #ec4899 #f472b6
segment.reserve #94a3b8 #64748b segment.free #e3e6ee #2a2e3d
button #ffffff #272b3a          tooltip #262a38 #2d3246        tooltip_text #f4f5f9 #e4e7f1
link #4f5bd5 #a3acff            link_visited #7c3aed #c4a5ff   accent_hover #5866ef #6977ff
disabled_text #a0a5b3 #646a7d   disabled_accent #b2b7eb #353c77
hover #141d2130 #14e4e7f1       pressed #261d2130 #26e4e7f1    track #1a1d2130 #1ae4e7f1
accent_soft #2e4f5bd5 #525b68e8 handle #73687085 #73959cb3     handle_hover #bf687085 #bf959cb3
"""
_WORDS = _TABLE.split()
_COLOURS = {name: (light, dark) for name, light, dark in zip(*[iter(_WORDS)] * 3, strict=True)}
_FIELDS = [f.name for f in fields(Theme) if f.name not in ("dark", "segments")]


def _named(dark: bool) -> dict[str, QColor]:
    """Every colour of the light or dark table, by name."""
    return {name: QColor(pair[dark]) for name, pair in _COLOURS.items()}


def _make(dark: bool) -> Theme:
    named = _named(dark)
    segments = {k.removeprefix("segment."): v for k, v in named.items() if "segment." in k}
    return Theme(dark=dark, segments=segments, **{name: named[name] for name in _FIELDS})


_LIGHT, _DARK = _make(False), _make(True)
_current: Theme = _LIGHT
_icons: dict[tuple[str, bool], QIcon] = {}
_warned: set[str] = set()
_clones: list[_SvgIconEngine] = []
_wallpapers: OrderedDict[tuple[int, int, float, bool], QPixmap] = OrderedDict()
WALLPAPERS_KEPT = 4
"""Rendered sizes kept: showing or hiding a dock flips between two sizes, and a render of a
large screen takes tens of milliseconds."""

# Palette role:colour name, for all colour groups; a "~Role" overrides the disabled group.
_ROLES = (
    "Window:window WindowText:text Base:base AlternateBase:alt_base Text:text "
    "PlaceholderText:muted Button:button ButtonText:text BrightText:accent_text "
    "ToolTipBase:tooltip ToolTipText:tooltip_text Highlight:accent HighlightedText:accent_text "
    "Link:link LinkVisited:link_visited Accent:accent ~WindowText:disabled_text "
    "~Text:disabled_text ~ButtonText:disabled_text ~PlaceholderText:disabled_text ~Base:window "
    "~Button:window ~Highlight:disabled_accent"
)


def _css(color: QColor) -> str:
    """A colour as QSS: ``#rrggbb``, or ``rgba(r, g, b, a)`` with ``a`` from 0 to 255."""
    r, g, b, a = color.getRgb()
    return color.name() if a == 255 else f"rgba({r}, {g}, {b}, {a})"


def _palette(theme: Theme) -> QPalette:
    """A palette with every role set from ``theme``."""
    named = _named(theme.dark)
    palette = QPalette(named["button"], theme.window)  # derives Light, Mid, Dark and Shadow
    for entry in _ROLES.split():
        role, name = entry.removeprefix("~").split(":")
        group = (QPalette.ColorGroup.Disabled,) if entry.startswith("~") else ()
        palette.setColor(*group, QPalette.ColorRole[role], named[name])
    return palette


def _style_sheet(theme: Theme) -> str:
    """``desktop.qss`` with its ``${name}`` placeholders filled in from ``theme``."""
    text = resource_path("style", "desktop.qss").read_text(encoding="utf-8")
    return Template(text).substitute({k: _css(v) for k, v in _named(theme.dark).items()})


def resolve_dark(mode: str) -> bool:
    """Returns whether ``mode`` (one of ``MODES``; "system" asks the platform) means dark.

    Raises:
        ValueError: For a mode not in ``MODES``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown theme mode {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "system":
        return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark
    return mode == "dark"


def apply_theme(app: QApplication, mode: str) -> Theme:
    """Returns the theme for ``mode`` after giving ``app`` its style, palette and style sheet.

    Sets Fusion, a palette and ``desktop.qss``, makes the theme current and drops cached icons
    (icons handed out already repaint in the new colours). Call again to switch live.

    Args:
        app: The application.
        mode: One of ``MODES``.
    """
    global _current
    theme = _DARK if resolve_dark(mode) else _LIGHT
    app.setStyleSheet("")  # unwraps the base style, so that it can be checked
    from llmos.desktop.window_style import DesktopStyle  # it draws with this module's icons

    if not isinstance(app.style(), DesktopStyle):
        app.setStyle(DesktopStyle("Fusion"))
    _current = theme
    _icons.clear()
    app.setPalette(_palette(theme))
    app.setStyleSheet(_style_sheet(theme))
    return theme


def current_theme() -> Theme:
    """The theme last applied (the light one before any ``apply_theme``)."""
    return _current


class _SvgIconEngine(QIconEngine):
    """Paints an SVG crisply at any size and device pixel ratio.

    With ``recolor``, ``currentColor`` becomes the current theme's text colour (disabled text
    colour when disabled, accent text colour when selected); else disabled icons are faded.
    """

    def __init__(self, data: bytes, recolor: bool) -> None:
        super().__init__()
        self._data = data
        self._recolor = recolor
        self._renderers: dict[str, QSvgRenderer] = {}

    def _color(self, mode: QIcon.Mode) -> str:
        if not self._recolor:
            return ""
        if mode == QIcon.Mode.Disabled:
            return _COLOURS["disabled_text"][_current.dark]
        return (_current.accent_text if mode == QIcon.Mode.Selected else _current.text).name()

    def _render(self, painter: QPainter, rect: QRectF, mode: QIcon.Mode) -> None:
        color = self._color(mode)
        renderer = self._renderers.get(color)
        if renderer is None:
            data = self._data.replace(b"currentColor", color.encode()) if color else self._data
            renderer = self._renderers[color] = QSvgRenderer(QByteArray(data))
        side = min(rect.width(), rect.height())
        square = QRectF(0, 0, side, side)
        square.moveCenter(rect.center())
        opacity = painter.opacity()
        if mode == QIcon.Mode.Disabled and not self._recolor:
            painter.setOpacity(opacity * 0.4)
        renderer.render(painter, square)
        painter.setOpacity(opacity)

    def paint(self, painter: QPainter, rect: QRect, mode: QIcon.Mode, state: QIcon.State) -> None:
        self._render(painter, QRectF(rect), mode)

    def pixmap(self, size: QSize, mode: QIcon.Mode, state: QIcon.State) -> QPixmap:
        return self.scaledPixmap(size, mode, state, 1.0)

    def scaledPixmap(
        self, size: QSize, mode: QIcon.Mode, state: QIcon.State, scale: float
    ) -> QPixmap:
        pixmap = QPixmap(QSize(round(size.width() * scale), round(size.height() * scale)))
        if pixmap.isNull():
            return pixmap
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        self._render(painter, QRectF(pixmap.rect()), mode)
        painter.end()
        pixmap.setDevicePixelRatio(scale)
        return pixmap

    def clone(self) -> QIconEngine:
        # PySide leaves a clone owned by Python: keep it alive until Qt has deleted it.
        _clones[:] = [engine for engine in _clones if shiboken6.isValid(engine)]
        engine = _SvgIconEngine(self._data, self._recolor)
        _clones.append(engine)
        return engine


def icon(name: str) -> QIcon:
    """Returns the UI icon ``resources/icons/<name>.svg`` drawn in the current theme's colours.

    Args:
        name: The icon's name, e.g. ``"send"``; for a missing file the ``app-default`` icon is
            returned (with a warning, once).
    """
    key = (name, _current.dark)
    if key not in _icons:
        path = resource_path("icons", f"{name}.svg")
        if not path.is_file():
            if name not in _warned:
                _warned.add(name)
                log.warning("no icon %r at %s; using app-default", name, path)
            path = resource_path("icons", "app-default.svg")
        _icons[key] = QIcon(_SvgIconEngine(path.read_bytes(), recolor=True))
    return _icons[key]


def app_icon(icon_file: str, source_dir: Path | None) -> QIcon:
    """Returns an app manifest's icon, in its own colours.

    Args:
        icon_file: The manifest's ``icon`` entry, looked for in ``source_dir``, then in
            ``resources/icons``; if neither has it, the ``app-default`` icon is returned.
        source_dir: The folder the manifest came from.
    """
    candidates = [source_dir / icon_file] if source_dir is not None and icon_file else []
    if icon_file:
        candidates.append(resource_path("icons", icon_file))
    path = next((p for p in candidates if p.is_file()), resource_path("icons", "app-default.svg"))
    if path.suffix.lower() != ".svg":
        return QIcon(str(path))
    return QIcon(_SvgIconEngine(path.read_bytes(), recolor=False))


def app_icon_of(manifest: AppManifest) -> QIcon:
    """The icon of an app, from beside its manifest or the bundled icons."""
    return app_icon(manifest.icon, manifest.source.parent if manifest.source else None)


def wallpaper(size: QSize, device_pixel_ratio: float, dark: bool) -> QPixmap:
    """Returns the wallpaper covering ``size`` (aspect kept, overflow cropped); the last few
    sizes are cached.

    Args:
        size: The size to fill, in device-independent pixels.
        device_pixel_ratio: The screen's; the pixmap has ``size * device_pixel_ratio`` pixels.
        dark: The dark wallpaper rather than the light one.
    """
    key = (size.width(), size.height(), device_pixel_ratio, dark)
    if key in _wallpapers:
        _wallpapers.move_to_end(key)
        return _wallpapers[key]
    width = max(1, round(size.width() * device_pixel_ratio))
    height = max(1, round(size.height() * device_pixel_ratio))
    pixmap = QPixmap(width, height)
    pixmap.fill((_DARK if dark else _LIGHT).window)
    renderer = QSvgRenderer(str(resource_path("wallpaper", "dark.svg" if dark else "light.svg")))
    view = renderer.viewBoxF()
    if renderer.isValid() and not view.isEmpty():
        scale = max(width / view.width(), height / view.height())
        target = QRectF(0, 0, view.width() * scale, view.height() * scale)
        target.moveCenter(QRectF(pixmap.rect()).center())
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, target)
        painter.end()
    pixmap.setDevicePixelRatio(device_pixel_ratio)
    _wallpapers[key] = pixmap
    while len(_wallpapers) > WALLPAPERS_KEPT:
        _wallpapers.popitem(last=False)
    return pixmap
