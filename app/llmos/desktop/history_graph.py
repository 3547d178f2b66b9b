"""The task manager's history: context RAM in use and tokens per second, last few minutes."""

from __future__ import annotations

import math
from collections import deque

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from llmos.desktop.ram_bar import human_tokens
from llmos.desktop.theme import current_theme


def nice_ceiling(value: float, floor: float = 10.0) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (and ``floor``)."""
    value = max(value, floor)
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return 10.0 * power


class HistoryGraph(QWidget):
    """An area chart of total context RAM in use (its y-range the sum of the budgets) and a
    line of total tokens per second on its own scale (right axis), one sample a second.

    Signals:
        None.
    """

    def __init__(
        self, parent: QWidget | None = None, *, minutes: float = 5.0, interval: float = 1.0
    ) -> None:
        super().__init__(parent)
        self.minutes = minutes
        self.capacity = max(2, round(minutes * 60 / interval))
        self._per_minute = max(1, round(60 / interval))
        self._used: deque[int] = deque(maxlen=self.capacity)
        self._budget: deque[int] = deque(maxlen=self.capacity)
        self._rate: deque[float] = deque(maxlen=self.capacity)
        self.setAccessibleName("Context RAM and tokens per second, history")
        self.setMinimumHeight(90)

    # -- data --------------------------------------------------------------------------------

    def add_sample(self, ram_used: int, ram_budget: int, tokens_per_second: float) -> None:
        self._used.append(ram_used)
        self._budget.append(ram_budget)
        self._rate.append(tokens_per_second)
        self.setAccessibleDescription(
            f"Now {human_tokens(ram_used)} of {human_tokens(ram_budget)} tokens of context RAM "
            f"in use, {tokens_per_second:.1f} tokens per second"
        )
        self.update()

    @property
    def sample_count(self) -> int:
        return len(self._used)

    def samples(self) -> list[tuple[int, int, float]]:
        """(used, budget, tokens per second), oldest first."""
        return list(zip(self._used, self._budget, self._rate, strict=True))

    def _span(self) -> int:
        """Samples across the plot: whole minutes enough for the samples, up to capacity."""
        minutes = max(1, math.ceil(len(self._used) / self._per_minute))
        return max(2, min(self.capacity, minutes * self._per_minute))

    def sizeHint(self) -> QSize:
        return QSize(420, 150)

    # -- painting ----------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        theme = current_theme()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        line = metrics.height()

        ram_top = max(max(self._budget, default=0), max(self._used, default=0))
        ram_max = max(ram_top, 1)
        rate_max = nice_ceiling(max(self._rate, default=0.0))
        ram_label = f"{human_tokens(ram_top)} tok"
        rate_label = f"{rate_max:g} tok/s"
        left = metrics.horizontalAdvance(ram_label) + 8
        right = metrics.horizontalAdvance(rate_label) + 8
        plot = QRectF(left, line + 8, self.width() - left - right, self.height() - 2 * line - 12)
        if plot.width() < 20 or plot.height() < 20:
            painter.end()
            return

        ram_colour = QColor(theme.segments["history"])
        rate_colour = QColor(theme.segments["paged_in"])
        self._paint_frame(painter, plot, theme.base, theme.border)
        self._paint_legend(painter, plot, ram_colour, rate_colour, theme.text)

        painter.setPen(theme.muted)
        flags = Qt.AlignmentFlag
        painter.drawText(QRectF(0, plot.top() - 2, left - 4, line), flags.AlignRight, ram_label)
        painter.drawText(QRectF(0, plot.bottom() - line + 2, left - 4, line), flags.AlignRight, "0")
        painter.drawText(
            QRectF(plot.right() + 4, plot.top() - 2, right, line), flags.AlignLeft, rate_label
        )
        painter.drawText(
            QRectF(plot.right() + 4, plot.bottom() - line + 2, right, line), flags.AlignLeft, "0"
        )
        # The time axis grows a minute at a time up to its full span, so the first seconds of
        # a session are not a sliver at the right edge.
        span = self._span()
        below = QRectF(plot.left(), plot.bottom() + 2, plot.width(), line)
        painter.drawText(below, flags.AlignLeft, f"{span / self._per_minute:g} min ago")
        painter.drawText(below, flags.AlignRight, "now")

        count = len(self._used)
        if count == 0:
            painter.end()
            return
        step = plot.width() / (span - 1)
        x0 = plot.right() - (count - 1) * step
        height, bottom = plot.height(), plot.bottom()

        area = QPolygonF()
        area.reserve(count + 2)
        area.append(QPointF(x0, bottom))
        for i, used in enumerate(self._used):
            area.append(QPointF(x0 + i * step, bottom - height * min(used / ram_max, 1.0)))
        area.append(QPointF(plot.right(), bottom))
        fill = QColor(ram_colour)
        fill.setAlpha(90)
        painter.setBrush(fill)
        painter.setPen(QPen(ram_colour, 1.5))
        painter.drawPolygon(area)

        rates = QPolygonF()
        rates.reserve(count)
        for i, rate in enumerate(self._rate):
            rates.append(QPointF(x0 + i * step, bottom - height * min(rate / rate_max, 1.0)))
        painter.setPen(QPen(rate_colour, 2.0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPolyline(rates)
        painter.end()

    def _paint_frame(self, painter: QPainter, plot: QRectF, base: QColor, border: QColor) -> None:
        painter.setPen(QPen(border, 1))
        painter.setBrush(base)
        painter.drawRect(plot)
        grid = QColor(border)
        grid.setAlpha(110)
        painter.setPen(QPen(grid, 1, Qt.PenStyle.DotLine))
        for quarter in (1, 2, 3):
            y = plot.top() + plot.height() * quarter / 4
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        minutes = self._span() / self._per_minute
        for minute in range(1, math.ceil(minutes)):
            x = plot.left() + plot.width() * minute / minutes
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))

    def _paint_legend(
        self, painter: QPainter, plot: QRectF, ram: QColor, rate: QColor, text: QColor
    ) -> None:
        metrics = painter.fontMetrics()
        used = self._used[-1] if self._used else 0
        budget = self._budget[-1] if self._budget else 0
        tps = self._rate[-1] if self._rate else 0.0
        entries = (
            (ram, f"Context RAM {human_tokens(used)} / {human_tokens(budget)} tokens", False),
            (rate, f"{tps:.1f} tokens/s", True),
        )
        x, y = plot.left(), 2.0
        for colour, label, is_line in entries:
            swatch = QRectF(x, y + metrics.height() / 2 - 4, 12, 8)
            if is_line:
                painter.setPen(QPen(colour, 2.0))
                painter.drawLine(
                    swatch.topLeft() + QPointF(0, 4), swatch.topRight() + QPointF(0, 4)
                )
            else:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(colour)
                painter.drawRect(swatch)
            painter.setPen(text)
            width = metrics.horizontalAdvance(label)
            painter.drawText(QRectF(x + 16, y, width + 2, metrics.height()), 0, label)
            x += 16 + width + 16
