"""Context RAM drawn as a bar: the painter function, its texts, a meter and a table delegate.

A process's context RAM is split into segments (system prompt, pinned memory, the summary
of evicted turns, tools, history, paged-in memory, the answer's reserve) and the rest is
free. The task manager
draws every segment; an agent window shows one pressure-coloured fill.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

# The figures' text is shared with the Shell app (Qt-free); re-exported for the desktop.
from llmos.console import human_tokens as human_tokens
from llmos.console import ram_bytes as human_bytes
from llmos.console import ram_text as ram_text
from llmos.desktop.theme import Theme, current_theme
from llmos.kernel.context import BYTES_PER_TOKEN_SHOWN, ContextUsage, Segment

SEGMENT_ORDER = ("system", "pinned", "summary", "tools", "history", "paged_in", "reserve")
"""Segments in the order they are drawn, left to right; free space comes last."""
SEGMENT_NAMES = {
    "system": "System prompt",
    "pinned": "Pinned memory",
    "summary": "Summary of evicted turns",
    "tools": "Tools",
    "history": "History",
    "paged_in": "Paged in",
    "reserve": "Reserve (answer)",
    "free": "Free",
}

USAGE_ROLE = Qt.ItemDataRole.UserRole + 2
"""Model role for a RAM cell: ``(ContextUsage | None, budget)``."""


def ram_tooltip(usage: ContextUsage | None, budget: int) -> str:
    """A rich-text table of the segments: tokens, share of the budget, bytes."""
    if usage is None:
        return f"<b>Context RAM</b><br>{budget:,} tokens, not counted yet."
    theme = current_theme()
    rows = [(key, usage.segments.get(Segment(key), 0)) for key in SEGMENT_ORDER]
    rows.append(("free", usage.free))
    cells = []
    for key, tokens in rows:
        share = 100 * tokens / budget if budget else 0.0
        # Free space is the bar's empty track: an outline square reads on any tooltip colour.
        swatch = (
            "&#9633;"
            if key == "free"
            else f"<span style='color:{theme.segments[key].name()}'>&#9632;</span>"
        )
        cells.append(
            f"<tr><td>{swatch} {SEGMENT_NAMES[key]}</td>"
            f"<td align=right>{tokens:,}</td><td align=right>{share:.1f}%</td>"
            f"<td align=right>{escape(human_bytes(tokens * BYTES_PER_TOKEN_SHOWN))}</td></tr>"
        )
    how = (
        "Exact counts from the model's tokenizer."
        if usage.exact
        else "Estimated counts, calibrated by the backend's reports."
    )
    return (
        f"<b>Context RAM</b> &nbsp; {escape(ram_text(usage, budget))}"
        "<table cellspacing=0 cellpadding=3>"
        "<tr><th align=left>Segment</th><th align=right>Tokens</th>"
        "<th align=right>Share</th><th align=right>Bytes</th></tr>"
        f"{''.join(cells)}</table><i>{how}</i>"
    )


def paint_ram_bar(
    painter: QPainter,
    rect: QRectF,
    usage: ContextUsage | None,
    budget: int,
    theme: Theme,
    *,
    stacked: bool = True,
) -> None:
    """Draw context RAM as a rounded bar in ``rect``.

    ``stacked`` draws one part per segment (then free space as the track); otherwise the
    used share is filled in the theme's pressure colour.
    """
    radius = min(rect.height() / 2, 4.0)
    track = QPainterPath()
    track.addRoundedRect(rect, radius, radius)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.fillPath(track, theme.segments["free"])
    if usage is not None and budget > 0:
        if stacked:
            parts = [(usage.segments.get(Segment(k), 0), theme.segments[k]) for k in SEGMENT_ORDER]
        else:
            # Pressure is how full the prompt's share is: the answer's reserve is always
            # there, so counting it would show a fresh process as half full.
            pressure = usage.prompt / max(1, usage.prompt_limit)
            parts = [(usage.used, theme.pressure(pressure))]
        _fill_parts(painter, rect, track, parts, budget)
    painter.restore()


def _fill_parts(
    painter: QPainter,
    rect: QRectF,
    track: QPainterPath,
    parts: list[tuple[int, QColor]],
    budget: int,
) -> None:
    device = painter.device()
    pixel = 1.0 / device.devicePixelRatioF() if device is not None else 1.0
    x, right = rect.left(), rect.right()
    for tokens, colour in parts:
        if tokens <= 0 or x >= right:
            continue
        width = min(max(rect.width() * tokens / budget, pixel), right - x)
        piece = QPainterPath()
        piece.addRect(QRectF(x, rect.top(), width, rect.height()))
        painter.fillPath(track.intersected(piece), colour)
        x += width


RAM_TEXT_SAMPLE = "888.8k / 888.8k tokens \u00b7 888.8 KB"
"""The widest context RAM text, for sizing the meter and the task manager's column."""
TEXT_SAMPLES = (RAM_TEXT_SAMPLE, "888.8k / 888.8k tokens", "888.8k / 888.8k")
"""The widest forms of the meter's text, from the fullest to the most compact."""


class RamMeter(QWidget):
    """A compact context RAM meter for an agent window: a pressure-coloured bar and its
    figures beside it; the tooltip breaks it down by segment.

    Args:
        stacked: draw every segment in its colour instead of one pressure colour.

    Signals:
        None.
    """

    BAR_MIN = 48

    def __init__(self, parent: QWidget | None = None, *, stacked: bool = False) -> None:
        super().__init__(parent)
        self.stacked = stacked
        self._usage: ContextUsage | None = None
        self._budget = 0
        self.setAccessibleName("Context RAM")
        self.set_usage(None, 0)

    @property
    def usage(self) -> ContextUsage | None:
        return self._usage

    def set_usage(self, usage: ContextUsage | None, budget: int) -> None:
        self._usage, self._budget = usage, budget
        text = ram_text(usage, budget)
        self.setToolTip(ram_tooltip(usage, budget))
        self.setAccessibleDescription(f"Context RAM used: {text}")
        self.update()

    def text(self) -> str:
        return ram_text(self._usage, self._budget)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.set_usage(self._usage, self._budget)  # the tooltip's swatches follow the theme
        super().changeEvent(event)

    def sizeHint(self) -> QSize:
        metrics = self.fontMetrics()
        return QSize(metrics.horizontalAdvance(TEXT_SAMPLES[0]) + 110, 22)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.BAR_MIN + 8, 16)

    def paintEvent(self, event: QPaintEvent) -> None:
        theme = current_theme()
        painter = QPainter(self)
        metrics = self.fontMetrics()
        full = ram_text(self._usage, self._budget)
        tokens = full.split(" · ")[0]
        # Narrow: drop the bytes, then the unit, rather than the bar.
        # The text gets the room of its widest form, so the bar keeps its length as the
        # figures change.
        forms = list(zip((full, tokens, tokens.removesuffix(" tokens")), TEXT_SAMPLES, strict=True))
        text, sample = next(
            (
                (t, w)
                for t, w in forms
                if metrics.horizontalAdvance(w) + self.BAR_MIN + 8 <= self.width()
            ),
            forms[-1],
        )
        room = metrics.horizontalAdvance(sample)
        text_width = min(room, self.width() - self.BAR_MIN - 8)
        bar_height = min(10.0, self.height() - 6.0)
        bar = QRectF(1, (self.height() - bar_height) / 2, self.width() - text_width - 9, bar_height)
        paint_ram_bar(painter, bar, self._usage, self._budget, theme, stacked=self.stacked)
        painter.setPen(theme.text)
        painter.drawText(
            QRectF(bar.right() + 7, 0, text_width + 1, self.height()),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
            metrics.elidedText(text, Qt.TextElideMode.ElideRight, text_width + 1),
        )
        painter.end()


class RamDelegate(QStyledItemDelegate):
    """Paints a table cell holding ``USAGE_ROLE`` data as a stacked bar with its figures.

    Signals:
        None (beyond QStyledItemDelegate's).
    """

    BAR_WIDTH = 72

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        usage, budget = index.data(USAGE_ROLE) or (None, 0)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        theme = current_theme()
        cell = QRectF(opt.rect).adjusted(6, 0, -6, 0)
        bar_height = min(10.0, cell.height() - 8)
        bar = QRectF(cell.left(), cell.center().y() - bar_height / 2, self.BAR_WIDTH, bar_height)
        paint_ram_bar(painter, bar, usage, budget, theme, stacked=True)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        role = opt.palette.ColorRole.HighlightedText if selected else opt.palette.ColorRole.Text
        painter.save()
        painter.setPen(opt.palette.color(role))
        painter.setFont(opt.font)
        text_rect = cell.adjusted(self.BAR_WIDTH + 8, 0, 0, 0)
        text = opt.fontMetrics.elidedText(
            ram_text(usage, budget), Qt.TextElideMode.ElideRight, int(text_rect.width())
        )
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text
        )
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        width = option.fontMetrics.horizontalAdvance(RAM_TEXT_SAMPLE)
        return QSize(self.BAR_WIDTH + width + 26, option.fontMetrics.height() + 8)
