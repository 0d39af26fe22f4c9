"""The inquiry notice is the document python-docx builds, filled into a prebuilt frame."""

from __future__ import annotations

import io
import zipfile
from datetime import date

import docx
import pytest
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Pt

from models.notices import (
    BODY_PT,
    REPLY_WORKDAYS,
    TITLE_PT,
    InquiryNotice,
    OverdueLine,
    _long_date,
    _paragraph,
    _template,
    inquiry_notice_docx,
)
from models.texts import t


def _built_by_python_docx(notice: InquiryNotice, lang: str) -> bytes:
    # The notice written from scratch with python-docx's API, every field in place:
    # what the frame must give, part for part.
    document = docx.Document(io.BytesIO(_template()))
    _paragraph(
        document, t(lang, "notice_title"), size=TITLE_PT, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER
    )
    _paragraph(document, t(lang, "notice_to", unit=notice.unit_name, code=notice.unit_code))
    body = _paragraph(
        document,
        t(
            lang,
            "notice_body",
            day=_long_date(lang, notice.day),
            count=len(notice.items),
            longest=max((line.days_overdue for line in notice.items), default=0),
            reply_days=REPLY_WORKDAYS,
            issuer=notice.issuer_name,
        ),
    )
    body.paragraph_format.first_line_indent = Pt(2 * BODY_PT)
    columns = ("number", "title", "due", "overdue", "responsible")
    table = document.add_table(rows=1 + len(notice.items), cols=len(columns))
    table.style = document.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, column in zip(table.rows[0].cells, columns, strict=True):
        cell.paragraphs[0].add_run(t(lang, f"notice_col_{column}")).font.bold = True
    for row, line in zip(table.rows[1:], notice.items, strict=True):
        values = (
            f"#{line.number}",
            line.title,
            line.due_date.isoformat(),
            str(line.days_overdue),
            line.responsible,
        )
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    _paragraph(document, "")
    _paragraph(document, t(lang, "notice_signature"), align=WD_ALIGN_PARAGRAPH.RIGHT)
    _paragraph(document, notice.issuer_name, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _paragraph(document, _long_date(lang, notice.day), align=WD_ALIGN_PARAGRAPH.RIGHT)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _parts(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _notice(lines: int) -> InquiryNotice:
    return InquiryNotice(
        unit_code="B01",
        unit_name="镇机关第一党支部",
        issuer_name="城关镇党委",
        day=date(2026, 5, 18),
        items=[
            OverdueLine(
                number=n,
                # Titles with line breaks and tabs, or spaces at either end, and markup.
                title=(
                    f"问题{n}\n附：整改方案\t<第{n}稿> & 说明" if n % 2 else f" 问题{n} & <说明> "
                ),
                due_date=date(2026, 4, 30),
                days_overdue=10 - n,
                responsible="陈党员" if n % 2 else "",
            )
            for n in range(1, lines + 1)
        ],
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("lines", [0, 1, 4])
def test_the_notice_has_every_part_python_docx_writes_byte_for_byte(lang: str, lines: int) -> None:
    notice = _notice(lines)
    assert _parts(inquiry_notice_docx(notice, lang)) == _parts(_built_by_python_docx(notice, lang))


def test_python_docx_reads_the_notice_s_paragraphs_and_table() -> None:
    document = docx.Document(io.BytesIO(inquiry_notice_docx(_notice(2), "zh")))
    assert [p.text for p in document.paragraphs] == [
        "约谈函询通知书",
        "镇机关第一党支部：",
        document.paragraphs[2].text,
        "",
        "签发人：____________（盖章）",
        "城关镇党委",
        "2026年5月18日",
    ]
    assert "2026年5月18日" in document.paragraphs[2].text
    [table] = document.tables
    assert [[cell.text for cell in row.cells] for row in table.rows] == [
        ["编号", "事项", "整改时限", "逾期工作日", "责任人"],
        ["#1", "问题1\n附：整改方案\t<第1稿> & 说明", "2026-04-30", "9", "陈党员"],
        ["#2", " 问题2 & <说明> ", "2026-04-30", "8", ""],
    ]


def test_notices_drafted_one_after_another_share_nothing() -> None:
    first = inquiry_notice_docx(_notice(3), "zh")
    inquiry_notice_docx(_notice(1), "zh")
    assert _parts(inquiry_notice_docx(_notice(3), "zh")) == _parts(first)
