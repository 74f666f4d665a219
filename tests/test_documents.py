"""Management documents: a PDF with title, period, company, tables, charts (Chinese included) and page numbers,
checked by extracting its text and rendering its pages to images; CSV that spreadsheets open."""

from __future__ import annotations

import io
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from fleetcore.documents import Document, cjk_font, to_csv


def test_a_report_pdf_holds_its_figures_in_english_and_chinese(tmp_path: Path) -> None:
    doc = Document(
        title="车辆运营日报 Daily vehicle operations", company="Fleet Rental GmbH", period="2026-12-01"
    )
    doc.heading("KPIs 关键指标")
    doc.kpis([("Utilisation 利用率", "63.5 %"), ("Revenue 收入", Decimal("12345.60"))])
    doc.table(("Station 站点", "Rentals", "Revenue"), [("BER-HBF 柏林", 42, Decimal("3456.70"))] * 80)
    doc.bar_chart("Utilisation by station 各站利用率", ["BER-HBF", "BER-TXL"], [0.63, 0.48], unit="share")
    doc.line_chart("Revenue trend 收入趋势", ["12-01", "12-02", "12-03"], {"EUR": [100.0, 120.5, 90.0]})
    pdf = doc.pdf()
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) >= 2  # the 80-row table breaks across pages
    assert "Daily vehicle operations" in text and "Fleet Rental GmbH" in text and "2026-12-01" in text
    assert "12,345.60" in text and "3,456.70" in text
    assert f"1 / {len(reader.pages)}" in text  # page numbers
    if cjk_font() is not None:
        assert "车辆运营日报" in text and "柏林" in text
    if shutil.which("pdftoppm"):  # renders to page images without error
        out = tmp_path / "page"
        (tmp_path / "r.pdf").write_bytes(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "r.pdf"), str(out)],
                       check=True, timeout=60)  # fmt: skip
        assert list(tmp_path.glob("page*.png"))


@pytest.mark.skipif(cjk_font() is None, reason="no CJK font installed")
def test_cjk_font_is_present_where_make_test_installs_it() -> None:
    assert cjk_font() is not None


def test_csv_has_a_bom_and_keeps_chinese() -> None:
    data = to_csv(("站点", "收入"), [("柏林", Decimal("1.50")), ("x", None)])
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines() == ["站点,收入", "柏林,1.50", "x,"]
