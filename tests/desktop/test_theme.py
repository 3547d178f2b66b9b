"""The desktop theme: palettes, style sheet, icons and wallpaper render as intended."""

from __future__ import annotations

import gc
import logging
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QIcon, QImage, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from llmos.desktop import theme
from llmos.desktop.ram_bar import SEGMENT_NAMES, SEGMENT_ORDER
from llmos.desktop.window_style import DesktopStyle
from llmos.kernel.context import Segment
from llmos.resources import resource_path

UI_ICONS = [
    "launcher",
    "task-manager",
    "memory",
    "settings",
    "help",
    "tile",
    "cascade",
    "close",
    "minimize",
    "maximize",
    "send",
    "stop",
    "kill",
    "suspend",
    "resume",
    "front",
    "priority-up",
    "priority-down",
    "connected",
    "disconnected",
    "new-window",
    "clear",
    "copy",
    "search",
    "warning",
    "error",
    "info",
    "quit",
]
APP_ICONS = [
    "chat",
    "writer",
    "coder",
    "librarian",
    "planner",
    "vision",
    "shell",
    "models",
    "app-default",
]


@pytest.fixture
def themed(qapp):
    """The application, put back in the light theme afterwards (other tests share it)."""
    yield qapp
    theme.apply_theme(qapp, "light")


def image(pixmap: QPixmap) -> QImage:
    return pixmap.toImage().convertToFormat(QImage.Format.Format_ARGB32)


def opaque_colours(pixmap: QPixmap) -> set[int]:
    """The RGB values of the pixmap's fully opaque pixels."""
    img = image(pixmap)
    return {
        img.pixel(x, y) & 0xFFFFFF
        for y in range(img.height())
        for x in range(img.width())
        if img.pixelColor(x, y).alpha() == 255
    }


def rgb(color: QColor) -> int:
    return color.rgb() & 0xFFFFFF


@pytest.mark.parametrize(
    "path",
    sorted(
        [*resource_path("icons").glob("*.svg"), *resource_path("wallpaper").glob("*.svg")],
        key=lambda p: p.name,
    ),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_svg_is_valid(qapp, path):
    assert QSvgRenderer(str(path)).isValid()


def test_the_icon_set_is_complete_and_ui_icons_follow_the_theme():
    for name in UI_ICONS:
        assert "currentColor" in resource_path("icons", f"{name}.svg").read_text(), name
    for name in APP_ICONS:
        assert "currentColor" not in resource_path("icons", f"{name}.svg").read_text(), name
    for name in ("light", "dark"):
        assert resource_path("wallpaper", f"{name}.svg").is_file()


def test_ui_icons_are_drawn_crisply_in_the_theme_text_colour(themed):
    light = theme.apply_theme(themed, "light")
    light_pixmap = theme.icon("send").pixmap(QSize(24, 24), 2.0)
    assert light_pixmap.size() == QSize(48, 48)
    assert light_pixmap.devicePixelRatio() == 2.0
    assert rgb(light.text) in opaque_colours(light_pixmap)

    dark = theme.apply_theme(themed, "dark")
    dark_pixmap = theme.icon("send").pixmap(QSize(24, 24), 2.0)
    assert rgb(dark.text) in opaque_colours(dark_pixmap)
    assert image(dark_pixmap) != image(light_pixmap)


def test_disabled_icons_are_muted(themed):
    current = theme.apply_theme(themed, "dark")
    ic = theme.icon("settings")
    normal = ic.pixmap(QSize(32, 32), 1.0)
    disabled = ic.pixmap(QSize(32, 32), 1.0, QIcon.Mode.Disabled)
    assert rgb(current.text) in opaque_colours(normal)
    assert rgb(current.text) not in opaque_colours(disabled)
    assert opaque_colours(disabled)


def test_icons_are_cached_and_survive_being_copied_and_changed(themed):
    theme.apply_theme(themed, "light")
    assert theme.icon("copy").cacheKey() == theme.icon("copy").cacheKey()
    copy = QIcon(theme.icon("copy"))
    copy.addPixmap(QPixmap(8, 8))  # detaches: Qt clones the Python icon engine
    gc.collect()
    assert not copy.pixmap(QSize(16, 16), 2.0).isNull()
    del copy
    gc.collect()
    assert not theme.icon("copy").pixmap(QSize(16, 16), 1.0).isNull()


def test_an_unknown_icon_is_app_default_with_one_warning(qapp, caplog):
    with caplog.at_level(logging.WARNING, logger=theme.__name__):
        first = theme.icon("no-such-icon")
        theme.icon("no-such-icon")
    assert len([r for r in caplog.records if "no-such-icon" in r.getMessage()]) == 1
    fallback = theme.app_icon("app-default.svg", None)
    assert image(first.pixmap(QSize(24, 24), 1.0)) == image(fallback.pixmap(QSize(24, 24), 1.0))


def test_app_icon_prefers_the_apps_own_folder_then_resources_then_app_default(qapp, tmp_path):
    (tmp_path / "red.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8">'
        '<rect width="8" height="8" fill="#ff0000"/></svg>'
    )
    own = theme.app_icon("red.svg", tmp_path).pixmap(QSize(16, 16), 1.0)
    assert opaque_colours(own) == {0xFF0000}

    def render(ic: QIcon) -> QImage:
        return image(ic.pixmap(QSize(32, 32), 1.0))

    bundled = render(theme.app_icon("chat.svg", tmp_path))
    assert bundled == render(theme.app_icon("chat.svg", None))
    assert bundled != render(theme.app_icon("app-default.svg", None))
    assert render(theme.app_icon("missing.svg", tmp_path)) == render(
        theme.app_icon("app-default.svg", None)
    )


def test_apply_theme_sets_a_matching_palette_and_style_sheet(themed):
    dark = theme.apply_theme(themed, "dark")
    assert dark.dark and theme.current_theme() is dark
    palette = themed.palette()
    assert palette.color(QPalette.ColorRole.Window).lightness() < 80
    assert palette.color(QPalette.ColorRole.WindowText).lightness() > 180
    assert palette.color(QPalette.ColorRole.Highlight) == dark.accent
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
    assert disabled != palette.color(QPalette.ColorRole.Text)
    sheet = themed.styleSheet()
    assert "#Taskbar" in sheet and "QScrollBar" in sheet
    assert "${" not in sheet and "$" not in sheet
    assert dark.accent.name() in sheet

    light = theme.apply_theme(themed, "light")
    assert not light.dark and theme.current_theme() is light
    assert themed.palette().color(QPalette.ColorRole.Window).lightness() > 200
    assert themed.palette().color(QPalette.ColorRole.WindowText).lightness() < 80
    assert "${" not in themed.styleSheet()
    themed.setStyleSheet("")  # the style sheet wraps the style; the fixture puts it back
    assert isinstance(themed.style(), DesktopStyle)
    assert themed.style().baseStyle().name().lower() == "fusion"


def test_modes(qapp):
    assert theme.MODES == ("system", "light", "dark")
    assert theme.resolve_dark("dark") and not theme.resolve_dark("light")
    assert isinstance(theme.resolve_dark("system"), bool)
    with pytest.raises(ValueError):
        theme.resolve_dark("sepia")


def test_pressure_thresholds():
    t = theme.current_theme()
    assert [t.pressure(f) for f in (0.0, 0.59, 0.6, 0.84, 0.85, 1.0)] == [
        t.ok,
        t.ok,
        t.warn,
        t.warn,
        t.bad,
        t.bad,
    ]


def test_every_segment_of_context_ram_is_drawn_in_a_colour_of_its_own():
    assert set(SEGMENT_ORDER) == {segment.value for segment in Segment}
    for dark in (False, True):
        t = theme._DARK if dark else theme._LIGHT
        assert set(t.segments) == {*SEGMENT_ORDER, "free"}
        assert len({colour.name() for colour in t.segments.values()}) == len(t.segments)
    assert set(SEGMENT_NAMES) == {*SEGMENT_ORDER, "free"}


@pytest.mark.parametrize("dark", [True, False])
def test_wallpaper_covers_the_size_at_the_device_pixel_ratio(qapp, dark):
    pixmap = theme.wallpaper(QSize(800, 450), 2.0, dark=dark)
    assert pixmap.size() == QSize(1600, 900)
    assert pixmap.devicePixelRatio() == 2.0
    img = image(pixmap)
    samples = {img.pixel(x, y) for x in range(0, 1600, 97) for y in range(0, 900, 61)}
    assert len(samples) > 20
    middle = img.pixelColor(800, 450)
    assert (middle.lightness() < 90) if dark else (middle.lightness() > 180)
    assert theme.wallpaper(QSize(800, 450), 2.0, dark=dark) is pixmap  # cached

    portrait = theme.wallpaper(QSize(300, 500), 1.0, dark=dark)
    assert portrait.size() == QSize(300, 500)


def test_the_style_sheet_parses_and_styles_real_widgets(themed, qtbot):
    """Polishing widgets parses the sheet (a parse error is a Qt warning, which fails the test)."""
    from PySide6.QtWidgets import (
        QFrame,
        QHBoxLayout,
        QLineEdit,
        QListWidget,
        QPlainTextEdit,
        QProgressBar,
        QPushButton,
        QTextBrowser,
        QToolButton,
        QTreeWidget,
        QVBoxLayout,
        QWidget,
    )

    dark = theme.apply_theme(themed, "dark")
    root = QWidget()
    qtbot.addWidget(root)
    column = QVBoxLayout(root)
    taskbar = QFrame(objectName="Taskbar")
    row = QHBoxLayout(taskbar)
    row.addWidget(QToolButton(objectName="StartButton", icon=theme.icon("launcher")))
    row.addWidget(QToolButton(checkable=True, checked=True, text="Chat"))
    line_edit = QLineEdit("text")
    for widget in (
        line_edit,
        QPlainTextEdit(objectName="Composer"),
        QPushButton("OK", default=True),
        QPushButton("Try", objectName="Starter", flat=True),
        QProgressBar(value=40),
        QProgressBar(value=40, textVisible=False),
        QTreeWidget(columnCount=2),
        QListWidget(objectName="AppList"),
        QTextBrowser(objectName="ChatView"),
        taskbar,
    ):
        column.addWidget(widget)
    root.resize(400, 700)
    root.grab()
    shot = line_edit.grab().toImage()
    centre = shot.pixelColor(shot.width() - 4, shot.height() // 2)
    assert centre == dark.base


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_agent_window_title_bars_are_flat_and_themed(qapp, qtbot, mode):
    from PySide6.QtWidgets import QLabel, QMdiArea

    from llmos.desktop.window_style import TITLE_BAR_HEIGHT, _background

    current = theme.apply_theme(qapp, mode)
    area = QMdiArea()
    qtbot.addWidget(area)
    area.resize(500, 400)
    sub = area.addSubWindow(QLabel("body"))
    sub.setWindowTitle("Chat \u00b7 1")
    sub.resize(300, 200)
    area.show()
    area.setActiveSubWindow(sub)
    qtbot.waitExposed(area)
    image = sub.grab().toImage()
    # Flat: the same colour at the top and the bottom of the bar, the theme's active tint.
    top = image.pixelColor(image.width() // 3, 3)
    bottom = image.pixelColor(image.width() // 3, TITLE_BAR_HEIGHT - 4)
    expected = _background(current, active=True)
    assert top == bottom
    assert abs(top.red() - expected.red()) <= 2 and abs(top.blue() - expected.blue()) <= 2
