"""Documents a manager reads: PDF reports with a title, the period, the company, tables, charts and page numbers,
and the same tables as CSV. Every domain that hands a statement or a report to a person renders it here.

PDF through fpdf2 (pure Python, embeds a subset of a TrueType font, so Chinese text renders; no browser or
LaTeX needed), charts through matplotlib's Agg backend (PNG), CSV through the standard library. Chinese needs a
CJK font on the machine: WenQuanYi Micro Hei (Debian `fonts-wqy-microhei`, installed by scripts/services.sh) or
Noto Sans CJK; without one, the Latin text still renders and CJK characters are replaced (logged once).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

import matplotlib.pyplot as plt  # noqa: E402
from fpdf import FPDF  # noqa: E402
from matplotlib import font_manager  # noqa: E402

log = logging.getLogger(__name__)

# (path, index in a TrueType collection) of CJK-capable fonts, tried in order.
CJK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # index 2: Simplified Chinese
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)
PAGE_MARGIN_MM = 15
CHART_DPI = 150


def cjk_font() -> tuple[str, int] | None:
    """The first installed CJK font, or None."""
    for path, index in CJK_FONTS:
        if Path(path).exists():
            return path, index
    return None


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return f"{v:,.2f}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a byte-order mark (so spreadsheet programs open Chinese text correctly)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if v is None else str(v) for v in r])
    return b"\xef\xbb\xbf" + buf.getvalue().encode()


class _PDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.font_family, size=8)
        self.set_text_color(110)
        self.cell(0, 6, f"{self.footer_text}    {self.page_no()} / {{nb}}", align="C")


class Document:
    """A report: build it with heading/paragraph/kpis/table/chart, then `pdf()` gives the bytes."""

    def __init__(
        self, *, title: str, company: str, period: str, generated_at: dt.datetime | None = None
    ) -> None:
        self.title, self.company, self.period = title, company, period
        self.generated_at = generated_at or dt.datetime.now(dt.UTC)
        self._pdf = _PDF(orientation="portrait", unit="mm", format="A4")
        self._pdf.set_margins(PAGE_MARGIN_MM, PAGE_MARGIN_MM)
        self._pdf.set_auto_page_break(True, margin=18)
        self._pdf.alias_nb_pages()
        self._font = "helvetica"
        found = cjk_font()
        self._chart_font: font_manager.FontProperties | None = None
        if found is not None:
            self._pdf.add_font("cjk", fname=found[0], collection_font_number=found[1])
            # The collection has one weight: headings use the same face (fpdf2 asks for a 'B' style by default).
            self._pdf.add_font("cjk", style="B", fname=found[0], collection_font_number=found[1])
            self._font = "cjk"
            self._chart_font = font_manager.FontProperties(fname=found[0])
        else:
            log.warning(
                "no CJK font installed: Chinese text in PDFs will not render (install fonts-wqy-microhei)"
            )
            self._chart_font = None
        self._pdf.footer_text = f"{company} · {title} · {period}"
        self._pdf.add_page()
        self._pdf.set_font(self._font, size=18)
        self._pdf.multi_cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
        self._pdf.set_font(self._font, size=10)
        self._pdf.set_text_color(80)
        generated = self.generated_at.strftime("%Y-%m-%d %H:%M UTC")
        self._pdf.multi_cell(0, 5, f"{company}\n{period}\n{generated}", new_x="LMARGIN", new_y="NEXT")
        self._pdf.set_text_color(0)
        self._pdf.ln(4)

    @property
    def width(self) -> float:
        return self._pdf.w - 2 * PAGE_MARGIN_MM

    def heading(self, text: str) -> None:
        self._pdf.ln(2)
        self._pdf.set_font(self._font, size=13)
        self._pdf.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        self._pdf.set_font(self._font, size=10)

    def paragraph(self, text: str) -> None:
        self._pdf.set_font(self._font, size=10)
        self._pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")
        self._pdf.ln(1)

    def kpis(self, items: Sequence[tuple[str, Any]]) -> None:
        """Label / value pairs as a two-column table."""
        self.table(("", ""), [(k, _text(v)) for k, v in items], header=False)

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        header: bool = True,
        widths: Sequence[float] | None = None,
    ) -> None:
        """A table that breaks across pages; numbers right-aligned."""
        self._pdf.set_font(self._font, size=9)
        n = max(len(columns), 1)
        widths = tuple(widths) if widths else tuple(self.width / n for _ in range(n))
        aligns = [
            "RIGHT" if rows and isinstance(rows[0][i], int | float | Decimal) else "LEFT" for i in range(n)
        ]
        with self._pdf.table(
            col_widths=widths, text_align=tuple(aligns), first_row_as_headings=header, line_height=5.5
        ) as t:
            if header:
                t.row([str(c) for c in columns])
            for r in rows:
                t.row([_text(v) for v in r])
        self._pdf.ln(3)

    def chart(self, fig: plt.Figure, *, width_mm: float | None = None) -> None:
        """A matplotlib figure as an image (closed afterwards)."""
        if self._chart_font is not None:
            for text in fig.findobj(matplotlib.text.Text):
                text.set_fontproperties(self._chart_font)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=CHART_DPI, bbox_inches="tight")
        plt.close(fig)
        buf.seek(0)
        self._pdf.image(buf, w=width_mm or self.width)
        self._pdf.ln(2)

    def bar_chart(
        self, title: str, labels: Sequence[str], values: Sequence[float], *, unit: str = ""
    ) -> None:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([str(x) for x in labels], [float(v) for v in values], color="#2f6f9f")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", labelrotation=30)
        self.chart(fig)

    def line_chart(
        self, title: str, x: Sequence[Any], series: dict[str, Sequence[float]], *, unit: str = ""
    ) -> None:
        fig, ax = plt.subplots(figsize=(7, 3))
        for name, ys in series.items():
            ax.plot(list(x), [float(v) for v in ys], marker="o", label=name)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if len(series) > 1:
            ax.legend()
        fig.autofmt_xdate()
        self.chart(fig)

    def pdf(self) -> bytes:
        return bytes(self._pdf.output())
