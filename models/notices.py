"""The drafted inquiry notice (约谈函询通知书) of escalation level 2 (SPEC §5).

When an item is 10 working days overdue, the leaders of the parent org get a
notice to edit and send: a title, the unit, a body paragraph, a table of ALL
the unit's overdue items (number, title, due date, working days overdue,
responsible), then date and signature lines. It is a .docx written with
python-docx, in the deployment's language; the words come from the one
catalogue (models/texts.py, keys `notice_*`).

`overdue_lines` reads the unit's items; `inquiry_notice_docx` only builds
bytes, filling the fields into a frame python-docx builds once per language
(the parts python-docx would write for the notice, byte for byte, at a
sixth to a tenth of the CPU: a sweep drafts thousands); `store_notices` and
`draft_inquiry_notice` store documents as `Attachment`s, one per (unit, day):
a second sweep on the same day finds it by its file name (`find_notices`) and
reuses it, so every level-2 notification of the unit that day carries the
same document.
"""

from __future__ import annotations

import copy
import functools
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from zipfile import ZIP_DEFLATED, ZipFile

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.opc.oxml import serialize_part_xml
from docx.oxml.document import CT_Body
from docx.oxml.ns import qn
from docx.oxml.parser import parse_xml
from docx.oxml.text.paragraph import CT_P
from docx.shared import Pt
from docx.text.paragraph import Paragraph
from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models import clock
from models.deadlines import days_overdue
from models.roles import FINISHED
from models.tables import Attachment, Item, Member
from models.texts import t
from models.workdays import WorkCalendar

#: MIME type of a .docx.
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
#: Working days the unit is given to answer in writing (the body paragraph says so; editable).
REPLY_WORKDAYS = 5
#: Body font: SimSun (宋体) is what official documents use; Word substitutes where missing.
BODY_FONT = "SimSun"
#: Point sizes of the title and the body.
TITLE_PT, BODY_PT = 18, 12


@dataclass(frozen=True)
class OverdueLine:
    """One row of the notice's table."""

    number: int
    title: str
    due_date: date
    days_overdue: int
    responsible: str


@dataclass(frozen=True)
class InquiryNotice:
    """What the notice says: who is inquired of, by whom, on which day, about what."""

    unit_code: str
    unit_name: str
    issuer_name: str
    day: date
    items: Sequence[OverdueLine]


def notice_file_name(unit_code: str, day: date, lang: str) -> str:
    """The document's file name; unique per (unit, day, language), so it finds the day's draft."""
    return t(lang, "notice_file", code=unit_code, day=day.strftime("%Y%m%d"))


def overdue_lines(
    session: Session, org_ids: Iterable[int], today: date, cal: WorkCalendar
) -> dict[int, list[OverdueLine]]:
    """Per org (not its subtree), every overdue item, most overdue first: one query."""
    wanted = sorted(set(org_ids))
    lines: dict[int, list[OverdueLine]] = {org_id: [] for org_id in wanted}
    if not wanted:
        return lines
    rows = session.execute(
        sa_select(
            col(Item.org_id),
            col(Item.number),
            col(Item.title),
            col(Item.due_date),
            col(Item.status),
            col(Member.name),
        )
        .outerjoin(Member, col(Member.id) == Item.responsible_id)
        .where(
            col(Item.org_id).in_(wanted),
            col(Item.status).not_in(FINISHED),
            col(Item.due_date).is_not(None),
            col(Item.due_date) < today,
        )
        .order_by(col(Item.due_date), col(Item.number))
    )
    for org_id, number, title, due, status, name in rows:
        if number is None or due is None:
            continue
        lines[org_id].append(
            OverdueLine(
                number=number,
                title=title,
                due_date=due,
                days_overdue=days_overdue(status, due, today, cal),
                responsible=name or "",
            )
        )
    return lines


def _long_date(lang: str, day: date) -> str:
    return t(lang, "notice_day", year=day.year, month=day.month, day=day.day, iso=day.isoformat())


#: The styles a notice uses (and what they are based on); python-docx's default
#: template carries ~440 KB of others, which every open and save would parse.
_STYLES_KEPT = frozenset({"Normal", "DefaultParagraphFont", "TableNormal", "NoList", "TableGrid"})


@functools.cache
def _template() -> bytes:
    """python-docx's default document, slimmed, with the body font set once on Normal.

    Built once per process; the frame of each language (`_frame`) opens it,
    in a few ms, not the ~20 ms of the full default template.
    """
    document = Document()
    styles = document.styles.element
    for style in styles.findall(qn("w:style")):
        if style.get(qn("w:styleId")) not in _STYLES_KEPT:
            styles.remove(style)
    for latent in styles.findall(qn("w:latentStyles")):
        styles.remove(latent)
    for rel_id, rel in list(document.part.rels.items()):
        if rel.reltype.endswith("/stylesWithEffects"):
            document.part.drop_rel(rel_id)
    normal = document.styles["Normal"]
    normal.font.name = BODY_FONT
    normal.font.size = Pt(BODY_PT)
    # Word picks East Asian glyphs from eastAsia, not from the Latin font name.
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _paragraph(
    document: DocxDocument,
    text: str,
    *,
    align: WD_ALIGN_PARAGRAPH | None = None,
    size: int | None = None,
    bold: bool = False,
) -> Paragraph:
    paragraph = document.add_paragraph()
    if align is not None:
        paragraph.alignment = align
    run = paragraph.add_run(text)
    if size is not None:
        run.font.size = Pt(size)
    if bold:
        run.font.bold = True
    return paragraph


#: The frame's paragraphs a notice fills (the others, and the table's header, are fixed text).
_TO, _BODY, _ISSUER, _DAY = 1, 2, 5, 6
#: The package part that holds the text; every other part is the same in every notice.
_DOCUMENT_PART = "word/document.xml"


@dataclass(frozen=True)
class _Frame:
    """A language's notice built by python-docx with its fields empty and one empty
    table row: the package without its document part, and that part's XML.

    Immutable bytes, so threads share it; each notice parses its own copy.
    """

    package: bytes
    document: bytes


@functools.cache
def _frame(lang: str) -> _Frame:
    # The same python-docx calls as ever, once per language and process; each
    # notice then fills a copy of the XML and adds it to the prebuilt package
    # (0.4 ms of CPU for a table of 2 lines, 1.8 ms for 20, where opening,
    # building and saving a document took 4.9 and 10.7 ms).
    document = Document(io.BytesIO(_template()))
    _paragraph(
        document,
        t(lang, "notice_title"),
        size=TITLE_PT,
        bold=True,
        align=WD_ALIGN_PARAGRAPH.CENTER,
    )
    _paragraph(document, "")  # _TO
    body = _paragraph(document, "")  # _BODY
    body.paragraph_format.first_line_indent = Pt(2 * BODY_PT)

    headers = [
        t(lang, "notice_col_number"),
        t(lang, "notice_col_title"),
        t(lang, "notice_col_due"),
        t(lang, "notice_col_overdue"),
        t(lang, "notice_col_responsible"),
    ]
    table = document.add_table(rows=2, cols=len(headers))
    table.style = document.styles["Table Grid"]
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    header, line = table.rows
    for cell, text in zip(header.cells, headers, strict=True):
        cell.paragraphs[0].add_run(text).font.bold = True
    for cell in line.cells:
        cell.text = ""  # one run to fill, per line of the notice

    _paragraph(document, "")
    _paragraph(document, t(lang, "notice_signature"), align=WD_ALIGN_PARAGRAPH.RIGHT)
    _paragraph(document, "", align=WD_ALIGN_PARAGRAPH.RIGHT)  # _ISSUER
    _paragraph(document, "", align=WD_ALIGN_PARAGRAPH.RIGHT)  # _DAY
    saved = io.BytesIO()
    document.save(saved)
    package = io.BytesIO()
    with ZipFile(saved) as source, ZipFile(package, "w", compression=ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != _DOCUMENT_PART:
                target.writestr(info, source.read(info))
    return _Frame(package.getvalue(), serialize_part_xml(document.element))


#: What python-docx writes as elements of their own (w:tab, w:br), not as text.
_BREAKS = frozenset("\t\r\n")


def _fill(paragraph: CT_P, text: str) -> None:
    # The frame's run is empty. Text with no tab or line break is one w:t, which
    # add_t writes; the run's text setter would get there a character at a
    # time, half a notice's CPU when its table is long.
    run = paragraph.r_lst[0]
    if not _BREAKS.isdisjoint(text):
        run.text = text
    elif text:
        run.add_t(text)


def inquiry_notice_docx(notice: InquiryNotice, lang: str) -> bytes:
    """The notice as .docx bytes, in `lang` ("zh" or "en"), ready to edit and send."""
    frame = _frame(lang)
    root = parse_xml(frame.document)
    body: CT_Body = root.body
    paragraphs = body.p_lst
    _fill(paragraphs[_TO], t(lang, "notice_to", unit=notice.unit_name, code=notice.unit_code))
    longest = max((line.days_overdue for line in notice.items), default=0)
    _fill(
        paragraphs[_BODY],
        t(
            lang,
            "notice_body",
            day=_long_date(lang, notice.day),
            count=len(notice.items),
            longest=longest,
            reply_days=REPLY_WORKDAYS,
            issuer=notice.issuer_name,
        ),
    )
    _fill(paragraphs[_ISSUER], notice.issuer_name)
    _fill(paragraphs[_DAY], _long_date(lang, notice.day))

    [table] = body.tbl_lst
    empty_row = table.tr_lst[1]
    for line in notice.items:
        row = copy.deepcopy(empty_row)
        values = (
            f"#{line.number}",
            line.title,
            line.due_date.isoformat(),
            str(line.days_overdue),
            line.responsible,
        )
        for cell, value in zip(row.tc_lst, values, strict=True):
            _fill(cell.p_lst[0], value)
        empty_row.addprevious(row)
    table.remove(empty_row)

    buffer = io.BytesIO(frame.package)
    with ZipFile(buffer, "a", compression=ZIP_DEFLATED) as package:
        package.writestr(_DOCUMENT_PART, serialize_part_xml(root))
    return buffer.getvalue()


def find_notices(
    session: Session, unit_codes: Iterable[str], day: date, lang: str
) -> dict[str, int]:
    """The notices already drafted on `day` for these units, as {unit code: attachment id}."""
    names = {notice_file_name(code, day, lang): code for code in unit_codes}
    if not names:
        return {}
    found: dict[str, int] = {}
    for attachment_id, file_name in session.exec(
        select(Attachment.id, Attachment.file_name)
        .where(col(Attachment.file_name).in_(names))
        .order_by(col(Attachment.id))
    ):
        if attachment_id is not None:
            found.setdefault(names[file_name], attachment_id)
    return found


def store_notices(session: Session, notices: Sequence[InquiryNotice], lang: str) -> list[int]:
    """Write the notices as `Attachment`s in the caller's transaction; their ids, in order.

    One multi-row INSERT … RETURNING, no ORM object: a sweep drafting thousands keeps
    no document in the session.
    """
    if not notices:
        return []
    created_at = clock.now()
    rows = [
        {
            "file_name": notice_file_name(notice.unit_code, notice.day, lang),
            "mime_type": DOCX_MIME,
            "content": inquiry_notice_docx(notice, lang),
            "created_at": created_at,
        }
        for notice in notices
    ]
    statement = insert(Attachment).returning(col(Attachment.id), sort_by_parameter_order=True)
    ids = []
    for attachment_id in session.scalars(statement, rows):
        assert attachment_id is not None  # the new row's key, RETURNING it
        ids.append(attachment_id)
    return ids


def draft_inquiry_notice(
    session: Session,
    *,
    org_id: int,
    unit_code: str,
    unit_name: str,
    issuer_name: str,
    today: date,
    cal: WorkCalendar,
    lang: str,
) -> int:
    """The id of the unit's inquiry notice for `today`: the one already drafted, or a new one.

    Writes an `Attachment` in the caller's transaction when none exists yet.
    """
    existing = find_notices(session, [unit_code], today, lang)
    if unit_code in existing:
        return existing[unit_code]
    notice = InquiryNotice(
        unit_code=unit_code,
        unit_name=unit_name,
        issuer_name=issuer_name,
        day=today,
        items=overdue_lines(session, [org_id], today, cal)[org_id],
    )
    [attachment_id] = store_notices(session, [notice], lang)
    return attachment_id
