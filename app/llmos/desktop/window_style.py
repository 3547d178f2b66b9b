"""The look of agent windows' title bars: flat, in the theme's colours, with the set's icons.

Fusion draws MDI title bars with a gradient and boxed 3D buttons, and in the dark theme its
inactive buttons are grey on grey. This proxy style paints only the title bar itself; where
each button sits (and so what a click hits) is still Fusion's.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPaintDevice, QPainter, QPixmap
from PySide6.QtWidgets import (
    QMdiSubWindow,
    QProxyStyle,
    QStyle,
    QStyleOption,
    QStyleOptionComplex,
    QStyleOptionTitleBar,
    QWidget,
)

from llmos.desktop.theme import Theme, current_theme, icon

TITLE_BAR_HEIGHT = 30
"""At 100% scaling; Qt scales it with the screen."""
BUTTON_ICON = 14

_SC = QStyle.SubControl
_BUTTONS = (
    (_SC.SC_TitleBarMinButton, "minimize"),
    (_SC.SC_TitleBarNormalButton, "cascade"),
    (_SC.SC_TitleBarMaxButton, "maximize"),
    (_SC.SC_TitleBarCloseButton, "close"),
)


class DesktopStyle(QProxyStyle):
    """Fusion, with flat title bars on the desktop's windows."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self._buttons: dict[tuple[str, bool, float, bool], QPixmap] = {}

    def pixelMetric(
        self,
        metric: QStyle.PixelMetric,
        option: QStyleOption | None = None,
        widget: QWidget | None = None,
    ) -> int:
        if metric == QStyle.PixelMetric.PM_TitleBarHeight and isinstance(widget, QMdiSubWindow):
            return TITLE_BAR_HEIGHT
        return super().pixelMetric(metric, option, widget)

    def drawComplexControl(
        self,
        control: QStyle.ComplexControl,
        option: QStyleOptionComplex,
        painter: QPainter,
        widget: QWidget | None = None,
    ) -> None:
        if (
            control == QStyle.ComplexControl.CC_TitleBar
            and isinstance(option, QStyleOptionTitleBar)
            and isinstance(widget, QMdiSubWindow)
        ):
            self._draw_title_bar(option, painter, widget)
            return
        super().drawComplexControl(control, option, painter, widget)

    def _draw_title_bar(
        self, option: QStyleOptionTitleBar, painter: QPainter, widget: QMdiSubWindow
    ) -> None:
        theme = current_theme()
        active = bool(option.titleBarState & QStyle.StateFlag.State_Active.value)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(option.rect, _background(theme, active))
        painter.setPen(theme.border)
        bottom = option.rect.bottom()
        painter.drawLine(option.rect.left(), bottom, option.rect.right(), bottom)

        control = QStyle.ComplexControl.CC_TitleBar
        menu = self.subControlRect(control, option, _SC.SC_TitleBarSysMenu, widget)
        if option.subControls & _SC.SC_TitleBarSysMenu and not option.icon.isNull():
            side = min(menu.height(), 18)
            target = QRect(0, 0, side, side)
            target.moveCenter(menu.center())
            option.icon.paint(painter, target)

        label = self.subControlRect(control, option, _SC.SC_TitleBarLabel, widget)
        font = painter.font()
        font.setBold(active)
        painter.setFont(font)
        painter.setPen(theme.text if active else theme.muted)
        text = painter.fontMetrics().elidedText(
            option.text, Qt.TextElideMode.ElideRight, label.width()
        )
        painter.drawText(label, Qt.AlignmentFlag.AlignCenter, text)

        for sub_control, name in _BUTTONS:
            if not option.subControls & sub_control:
                continue
            rect = self.subControlRect(control, option, sub_control, widget)
            if rect.isEmpty():
                continue
            hovered = bool(option.activeSubControls & sub_control) and bool(
                option.state & QStyle.StateFlag.State_MouseOver
            )
            if hovered:
                hover = QColor(theme.bad) if name == "close" else QColor(theme.muted)
                hover.setAlphaF(0.85 if name == "close" else 0.25)
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(hover)
                painter.drawRoundedRect(QRectF(rect).adjusted(1, 1, -1, -1), 4, 4)
            target = QRect(0, 0, BUTTON_ICON, BUTTON_ICON)
            target.moveCenter(rect.center())
            # An inactive window's buttons are drawn muted, as its title is.
            painter.drawPixmap(target, self._button(name, active, painter.device()))
        painter.restore()

    def _button(self, name: str, active: bool, device: QPaintDevice) -> QPixmap:
        """The button's icon, rendered once per look: title bars repaint whenever a window
        under them streams text, and rendering the SVG each time showed in the benchmark."""
        ratio = device.devicePixelRatioF()
        key = (name, active, ratio, current_theme().dark)
        pixmap = self._buttons.get(key)
        if pixmap is None:
            mode = QIcon.Mode.Normal if active else QIcon.Mode.Disabled
            pixmap = icon(name).pixmap(QSize(BUTTON_ICON, BUTTON_ICON), ratio, mode)
            self._buttons[key] = pixmap
        return pixmap


def _background(theme: Theme, active: bool) -> QColor:
    """The window colour, tinted with the accent when the window is the active one."""
    base = QColor(theme.window)
    if not active:
        return base
    accent = theme.accent
    share = 0.22 if theme.dark else 0.14
    return QColor.fromRgbF(
        base.redF() + (accent.redF() - base.redF()) * share,
        base.greenF() + (accent.greenF() - base.greenF()) * share,
        base.blueF() + (accent.blueF() - base.blueF()) * share,
    )
