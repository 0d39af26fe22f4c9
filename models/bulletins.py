"""Bulletins, the "four ones" (四个一) of SPEC §5: what each says, and owing it once.

- daily digest (每日动态): items new, closed and newly overdue on the day;
- weekly report (情况通报): the week's flow, counts by status and light for
  the scope and per org, the on-time rate, the longest-overdue items, a PNG
  chart and the scope's ledger as .xlsx;
- monthly review (月度讲评): the good/average/poor ranking of the units
  (models.rankings: outcomes only, SPEC §7);
- quarterly progress (季度进展): the three lists and the ledger, counts by
  kind and status, closure rates, the quarter's new and closed items.

A bulletin covers a scope — an org's subtree, or the whole tree — and a
period (models.rankings.Period). `build_bulletin` only reads: it returns the
text in zh and en (catalogue keys in bot/texts.py, the words every reply
uses) and the files; `owe_bulletins` writes, in the caller's transaction, the
files as Attachment rows and one notification per configured chat: stage
"bulletin-<kind>", the chat as recipient, the period key as occurrence. The
key is unique, so a bulletin for a period is owed once per chat however often
the job runs; a chat already owed is skipped before anything is built, and
files no new row took are deleted again.

Counts by status and light are a snapshot as of `today` (lights are derived
now, never stored); the period's flow (new, closed, on time) and the ranking
are bound to the period. A daily digest with nothing in it is not sent
(SPEC §7: no messages about nothing).

Charts are drawn with matplotlib's Agg canvas (no display, no pyplot global
state). With a font that draws Chinese (fontconfig's `:lang=zh`, or one of
`CJK_FAMILIES`) and a Chinese deployment the chart is labelled in Chinese with
org names; otherwise in English with org codes, which every font draws.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, func, select

from models import clock
from models.deadlines import GREEN, RED, YELLOW, days_overdue
from models.export import export_rows, write_xlsx
from models.holidays import load_calendar
from models.outbox import notification_key, notify
from models.queries import (
    LIGHTS,
    LIST_KINDS,
    behind_roadmap,
    grouped_light,
    ledger_counts,
    overdue_items,
)
from models.rankings import (
    DAILY,
    GOOD,
    MONTHLY,
    PERIOD_KINDS,
    POOR,
    QUARTERLY,
    WEEKLY,
    Period,
    Ranked,
    local_midnight,
    period_of,
    previous_period,
    ranking,
)
from models.roles import FINISHED, STATUSES
from models.summaries import Facts
from models.tables import Attachment, Item, Notification, Org
from models.texts import clip, kind_word, status_word, t
from models.workdays import WorkCalendar

if TYPE_CHECKING:  # settings are read by the caller, never imported here at run time
    from settings import BulletinChat

log = logging.getLogger(__name__)

#: Items listed per section of the daily digest; the rest are counted.
DIGEST_SHOWN = 10  # items
#: Orgs listed in the weekly report's text, the most red first (the .xlsx has all).
WEEKLY_ORGS_SHOWN = 20  # orgs
#: Longest-overdue items listed in the weekly report.
OLDEST_SHOWN = 5  # items
#: Orgs drawn in the weekly chart, the most red first.
CHART_ORGS = 20  # orgs
#: The chart's size and resolution.
CHART_SIZE = (8.0, 4.5)  # inches
CHART_DPI = 120  # dots per inch
#: Characters of an org name on the chart's axis.
CHART_NAME_CHARS = 8
#: Font families that draw Chinese, tried when fontconfig names none.
CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)
#: Seconds to wait for `fc-list` when looking for a Chinese font.
FC_LIST_TIMEOUT = 5  # seconds
#: The stages bulletins are owed under: "bulletin-daily", … (SPEC §5).
STAGE_PREFIX = "bulletin-"
#: The item kinds in the quarterly report's order: the ledger, then the three lists.
QUARTER_KINDS: tuple[str, ...] = ("problem", *LIST_KINDS)
#: Colours of the chart's bars, by light.
LIGHT_COLOURS: Mapping[str, str] = MappingProxyType(
    {RED: "#d9363e", YELLOW: "#f2b705", GREEN: "#3aa655"}
)

PNG = "image/png"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LANGS = ("zh", "en")


def stage_of(kind: str) -> str:
    """The notification stage of a bulletin kind, e.g. "bulletin-weekly"."""
    if kind not in PERIOD_KINDS:
        raise ValueError(f"unknown bulletin kind {kind!r} (known: {', '.join(PERIOD_KINDS)})")
    return STAGE_PREFIX + kind


def default_period(kind: str, today: date) -> Period:
    """The period a bulletin covers when none is named.

    daily: today (send it in the evening). weekly, monthly, quarterly: the last
    complete week, month or quarter (send it at the start of the next one).
    """
    current = period_of(kind, today)
    return current if kind == DAILY else previous_period(current)


@dataclass(frozen=True)
class BulletinFacts:
    """What building a bulletin needs to know besides the database."""

    today: date
    zone: ZoneInfo
    calendar: WorkCalendar
    warn_days: int
    #: The deployment's language: the chart's labels.
    lang: str = "zh"

    @property
    def facts(self) -> Facts:
        return Facts(today=self.today, calendar=self.calendar, warn_days=self.warn_days)


def bulletin_facts(session: Session, *, zone: ZoneInfo, warn_days: int, lang: str) -> BulletinFacts:
    """Today in `zone`, and the working-day calendar from the database."""
    return BulletinFacts(
        today=clock.today(zone),
        zone=zone,
        calendar=load_calendar(session),
        warn_days=warn_days,
        lang=lang,
    )


@dataclass(frozen=True)
class File:
    name: str
    mime_type: str
    content: bytes


@dataclass(frozen=True)
class Bulletin:
    kind: str
    period: Period
    #: The org code of the scope, None for the whole tree.
    scope_code: str | None
    #: The text by language ("zh", "en").
    text: Mapping[str, str]
    files: tuple[File, ...] = ()
    #: Nothing to say (a quiet day): not owed.
    empty: bool = False


class UnknownScope(LookupError):
    """A chat is configured for an org code the directory does not have."""


@dataclass(frozen=True)
class _Scope:
    code: str | None
    paths: tuple[str, ...] | None
    labels: Mapping[str, str]

    def tag(self) -> str:
        return self.code or "all"


def _scope(session: Session, code: str | None) -> _Scope:
    if code is None:
        return _Scope(None, None, {lang: t(lang, "scope_all") for lang in LANGS})
    org = session.exec(select(Org).where(Org.code == code)).first()
    if org is None:
        raise UnknownScope(code)
    label = f"{org.name}（{org.code}）"
    return _Scope(code, (org.path,), {lang: label for lang in LANGS})


def _within(scope: _Scope) -> list[ColumnElement[bool]]:
    if scope.paths is None:
        return []
    if not scope.paths:
        return [false()]
    return [or_(*(col(Org.path).startswith(path) for path in scope.paths))]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


# --- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class ItemRow:
    number: int
    title: str
    org_code: str
    org_name: str
    due_date: date | None


def _listed(
    session: Session, conditions: Sequence[ColumnElement[bool]], limit: int
) -> tuple[int, list[ItemRow]]:
    # How many items match, and the first `limit` of them by number.
    total = session.exec(
        select(func.count())
        .select_from(Item)
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(*conditions)
    ).one()
    rows = session.exec(
        select(Item.number, Item.title, Org.code, Org.name, Item.due_date)  # type: ignore[call-overload]  # sqlmodel types select() for up to four columns
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(*conditions)
        .order_by(col(Item.number))
        .limit(limit)
    ).all()
    return total, [ItemRow(*row) for row in rows]


def _during(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _previous_workday(day: date, calendar: WorkCalendar) -> date:
    previous = day - timedelta(days=1)
    while not calendar.is_workday(previous):
        previous -= timedelta(days=1)
    return previous


@dataclass(frozen=True)
class DailyContent:
    new: tuple[int, list[ItemRow]]
    closed: tuple[int, list[ItemRow]]
    newly_overdue: tuple[int, list[ItemRow]]


def daily_content(session: Session, scope: _Scope, day: date, bf: BulletinFacts) -> DailyContent:
    """The day's new items, items closed that day, and items that became overdue
    since the previous digest: due from the previous working day (the day
    before, on a day off) up to the day before `day`, and not closed by the
    end of `day`."""
    start, end = local_midnight(day, bf.zone), local_midnight(day + timedelta(days=1), bf.zone)
    within = _within(scope)
    first_due = _previous_workday(day, bf.calendar) if bf.calendar.is_workday(day) else None
    first_due = first_due or day - timedelta(days=1)
    return DailyContent(
        new=_listed(session, [*within, _during(col(Item.created_at), start, end)], DIGEST_SHOWN),
        closed=_listed(
            session,
            [*within, col(Item.status) == "closed", _during(col(Item.closed_at), start, end)],
            DIGEST_SHOWN,
        ),
        newly_overdue=_listed(
            session,
            [
                *within,
                col(Item.status) != "cancelled",
                col(Item.due_date) >= first_due,
                col(Item.due_date) < day,
                or_(
                    and_(col(Item.closed_at).is_(None), col(Item.status) != "closed"),
                    col(Item.closed_at) >= end,
                ),
            ],
            DIGEST_SHOWN,
        ),
    )


@dataclass(frozen=True)
class OrgCounts:
    code: str
    name: str
    by_status: Mapping[str, int]
    by_light: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def org_counts(session: Session, scope: _Scope, facts: Facts) -> list[OrgCounts]:
    """Counts by status and light of each org's own items, for the orgs under
    the scope that have items; the most red first, then by code. Two GROUP BY
    queries, whatever the size (lights as in models.queries.ledger_counts)."""
    within = _within(scope)
    statuses: dict[int, dict[str, int]] = {}
    names: dict[int, tuple[str, str]] = {}
    for org_id, code, name, status, count in session.exec(
        select(Org.id, Org.code, Org.name, Item.status, func.count())  # type: ignore[call-overload]  # sqlmodel types select() for up to four columns
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(*within)
        .group_by(col(Org.id), col(Org.code), col(Org.name), col(Item.status))
    ).all():
        statuses.setdefault(org_id, dict.fromkeys(STATUSES, 0))[status] = count
        names[org_id] = (code, name)
    unfinished = (
        select(
            col(Item.org_id).label("org_id"),
            col(Item.status).label("status"),
            col(Item.due_date).label("due"),
            behind_roadmap(facts.today),
        )
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(col(Item.status).not_in(FINISHED), *within)
        .subquery()
    )
    lights: dict[int, dict[str, int]] = {}
    for org_id, status, due, is_behind, count in session.exec(
        select(  # type: ignore[call-overload]  # sqlmodel types select() for up to four columns
            unfinished.c.org_id,
            unfinished.c.status,
            unfinished.c.due,
            unfinished.c.behind,
            func.count(),
        ).group_by(unfinished.c.org_id, unfinished.c.status, unfinished.c.due, unfinished.c.behind)
    ).all():
        colour = grouped_light(facts, status, due, is_behind)
        if colour is not None:
            lights.setdefault(org_id, dict.fromkeys(LIGHTS, 0))[colour] += count
    rows = [
        OrgCounts(
            code=names[org_id][0],
            name=names[org_id][1],
            by_status=by_status,
            by_light=lights.get(org_id, dict.fromkeys(LIGHTS, 0)),
        )
        for org_id, by_status in statuses.items()
    ]
    rows.sort(key=lambda row: (-row.by_light[RED], -row.by_light[YELLOW], row.code))
    return rows


@dataclass(frozen=True)
class Flow:
    """What happened in a period: items created, closed, and closed on time."""

    new: int
    closed: int
    on_time: int


def period_flow(
    session: Session, scope: _Scope, period: Period, zone: ZoneInfo, kind: str | None = None
) -> Flow:
    """Items created and closed in the period (closed ones still closed now), and of
    those closed, how many on or before their due date (local day)."""
    start = local_midnight(period.start, zone)
    end = local_midnight(period.end + timedelta(days=1), zone)
    conditions = _within(scope)
    if kind is not None:
        conditions.append(col(Item.kind) == kind)
    new = session.exec(
        select(func.count())
        .select_from(Item)
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(*conditions, _during(col(Item.created_at), start, end))
    ).one()
    closed = on_time = 0
    # A period's closings: few rows, and the local closing day needs Python.
    for due, closed_at in session.exec(
        select(col(Item.due_date), col(Item.closed_at))
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(*conditions, col(Item.status) == "closed", _during(col(Item.closed_at), start, end))
    ).all():
        closed += 1
        if due is not None and closed_at is not None and closed_at.astimezone(zone).date() <= due:
            on_time += 1
    return Flow(new=new, closed=closed, on_time=on_time)


@dataclass(frozen=True)
class OverdueRow:
    number: int
    title: str
    org_name: str
    due_date: date
    days: int


def oldest_overdue(session: Session, scope: _Scope, facts: Facts) -> list[OverdueRow]:
    """The `OLDEST_SHOWN` items overdue longest under the scope."""
    page = overdue_items(session, today=facts.today, scope=scope.paths, per_page=OLDEST_SHOWN)
    orgs = {
        org.id: org.name
        for org in session.exec(select(Org).where(col(Org.id).in_({i.org_id for i in page.items})))
    }
    return [
        OverdueRow(
            number=item.number,  # type: ignore[arg-type]  # stored items have numbers
            title=item.title,
            org_name=orgs.get(item.org_id, ""),
            due_date=item.due_date,
            days=days_overdue(item.status, item.due_date, facts.today, facts.calendar),
        )
        for item in page.items
        if item.due_date is not None
    ]


@dataclass(frozen=True)
class KindProgress:
    kind: str
    by_status: Mapping[str, int]
    flow: Flow

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def closure_rate(self) -> float | None:
        """Closed among the items not withdrawn, or None when there are none."""
        live = self.total - self.by_status["cancelled"]
        return self.by_status["closed"] / live if live else None


def kind_progress(
    session: Session, scope: _Scope, period: Period, zone: ZoneInfo
) -> list[KindProgress]:
    """Per kind (the ledger, then the three lists): counts by status now, and the period's flow."""
    counts: dict[str, dict[str, int]] = {kind: dict.fromkeys(STATUSES, 0) for kind in QUARTER_KINDS}
    for kind, status, count in session.exec(
        select(Item.kind, Item.status, func.count())
        .join(Org, col(Org.id) == col(Item.org_id))
        .where(*_within(scope))
        .group_by(col(Item.kind), col(Item.status))
    ).all():
        counts.setdefault(kind, dict.fromkeys(STATUSES, 0))[status] = count
    return [
        KindProgress(kind, counts[kind], period_flow(session, scope, period, zone, kind))
        for kind in QUARTER_KINDS
    ]


# --- the chart -----------------------------------------------------------------------


def _fontconfig(*args: str) -> str:
    try:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=FC_LIST_TIMEOUT, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.cache
def cjk_font() -> str | None:
    """The file of a font that draws Chinese, or None if none is installed.

    fontconfig's choice for Simplified Chinese sans-serif when it is one of the
    fonts that cover Chinese; else a regular sans one of those; else a font of
    `CJK_FAMILIES` matplotlib knows. The chart uses the file itself, so a font
    collection (.ttc) works without guessing its family name.
    """
    from matplotlib import font_manager

    files = {
        line.split(":", 1)[0].strip()
        for line in _fontconfig("fc-list", ":lang=zh", "file").splitlines()
        if line.strip()
    }
    best = _fontconfig("fc-match", "-f", "%{file}", "sans-serif:lang=zh-cn:style=Regular").strip()
    if best in files:
        return best
    if files:
        return min(files, key=lambda path: ("Sans" not in path, "Regular" not in path, path))
    known = {entry.name: entry.fname for entry in font_manager.fontManager.ttflist}
    return next((known[family] for family in CJK_FAMILIES if family in known), None)


def chart_png(rows: Sequence[OrgCounts], *, period: Period, lang: str, font: str | None) -> bytes:
    """A stacked bar chart of the unfinished items' lights per org, as PNG bytes.

    With `font` (the file of a font that draws Chinese, see `cjk_font`) and
    `lang` "zh" the bars carry org names and the words are Chinese; otherwise
    org codes and English words, which any font draws.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import MaxNLocator

    chinese = font is not None and lang == "zh"
    words = "zh" if chinese else "en"
    shown = [row for row in rows if any(row.by_light.values())][:CHART_ORGS]
    labels = [row.name[:CHART_NAME_CHARS] if chinese else row.code for row in shown]
    figure = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    face = FontProperties(fname=font) if chinese and font else None
    text_style: dict[str, Any] = {"fontproperties": face} if face else {}
    bottoms = [0] * len(shown)
    for colour in (RED, YELLOW, GREEN):
        heights = [row.by_light[colour] for row in shown]
        axes.bar(
            range(len(shown)),
            heights,
            bottom=bottoms,
            color=LIGHT_COLOURS[colour],
            label=t(words, f"chart_{colour}"),
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    axes.set_xticks(range(len(shown)), labels, rotation=45, ha="right", **text_style)
    axes.set_ylabel(t(words, "chart_items"), **text_style)
    axes.set_title(t(words, "chart_title", period=period.key), **text_style)
    if not shown:
        axes.text(
            0.5, 0.5, t(words, "chart_nothing"), ha="center", transform=axes.transAxes, **text_style
        )
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    legend = axes.legend(prop=face)
    legend.set_frame_on(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# --- rendering ----------------------------------------------------------------------


def _item_lines(lang: str, listed: tuple[int, list[ItemRow]], overdue: bool = False) -> list[str]:
    total, rows = listed
    lines = []
    for row in rows:
        if overdue and row.due_date is not None:
            lines.append(
                t(
                    lang,
                    "bulletin_due_line",
                    number=row.number,
                    title=row.title,
                    org=row.org_name,
                    due=row.due_date.isoformat(),
                )
            )
        else:
            lines.append(
                t(lang, "bulletin_item_line", number=row.number, title=row.title, org=row.org_name)
            )
    if total > len(rows):
        lines.append(t(lang, "bulletin_more", count=total - len(rows)))
    return lines


def daily_text(lang: str, scope: _Scope, period: Period, content: DailyContent) -> str:
    lines = [t(lang, "bulletin_daily_title", day=period.key, scope=scope.labels[lang])]
    sections = (
        ("bulletin_new", content.new, False),
        ("bulletin_closed", content.closed, False),
        ("bulletin_newly_overdue", content.newly_overdue, True),
    )
    for key, listed, overdue in sections:
        lines.append(t(lang, key, count=listed[0]))
        lines += _item_lines(lang, listed, overdue)
    return clip("\n".join(lines))


def _statuses(lang: str, by_status: Mapping[str, int], *, all_of_them: bool) -> str:
    return " · ".join(
        f"{status_word(lang, status)} {by_status[status]}"
        for status in STATUSES
        if all_of_them or by_status[status]
    )


def weekly_text(
    lang: str,
    scope: _Scope,
    period: Period,
    today: date,
    flow: Flow,
    counts: Any,  # models.queries.LedgerCounts
    orgs: Sequence[OrgCounts],
    oldest: Sequence[OverdueRow],
) -> str:
    lines = [
        t(
            lang,
            "bulletin_weekly_title",
            period=period.key,
            start=period.start.isoformat(),
            end=period.end.isoformat(),
        ),
        t(lang, "bulletin_scope", scope=scope.labels[lang]),
        t(lang, "bulletin_flow", new=flow.new, closed=flow.closed, on_time=flow.on_time),
        t(lang, "bulletin_as_of", day=today.isoformat())
        + t(lang, "ledger_total", total=counts.total)
        + _statuses(lang, counts.by_status, all_of_them=True),
        t(lang, "ledger_lights", **{colour: counts.by_light[colour] for colour in LIGHTS}),
        t(lang, "ledger_overdue", count=counts.overdue),
    ]
    rate = counts.on_time_rate
    lines.append(
        t(lang, "ledger_on_time_none")
        if rate is None
        else t(
            lang,
            "ledger_on_time",
            rate=_rate(rate),
            on_time=counts.closed_on_time,
            closed=counts.closed_with_due,
        )
    )
    if orgs:
        lines.append(t(lang, "bulletin_by_org"))
        for row in orgs[:WEEKLY_ORGS_SHOWN]:
            lights = " ".join(
                f"{emoji}{row.by_light[colour]}"
                for colour, emoji in ((RED, "🔴"), (YELLOW, "🟡"), (GREEN, "🟢"))
            )
            lines.append(
                t(
                    lang,
                    "bulletin_org_line",
                    code=row.code,
                    name=row.name,
                    total=row.total,
                    statuses=_statuses(lang, row.by_status, all_of_them=False),
                    lights=lights,
                )
            )
        if len(orgs) > WEEKLY_ORGS_SHOWN:
            lines.append(t(lang, "bulletin_more_orgs", count=len(orgs) - WEEKLY_ORGS_SHOWN))
    if oldest:
        lines.append(t(lang, "bulletin_oldest"))
        lines += [
            t(
                lang,
                "bulletin_overdue_line",
                number=row.number,
                title=row.title,
                org=row.org_name,
                due=row.due_date.isoformat(),
                days=row.days,
            )
            for row in oldest
        ]
    lines.append(t(lang, "bulletin_attached"))
    return clip("\n".join(lines))


def _rank_line(lang: str, entry: Ranked) -> str:
    unit = entry.unit
    rate = unit.on_time_rate
    return t(
        lang,
        "bulletin_rank_line",
        position=entry.position,
        name=unit.name,
        code=unit.code,
        score=f"{float(entry.score):.1f}",
        rate=_rate(None if rate is None else float(rate)),
        on_time=unit.on_time,
        due=unit.came_due,
        overdue=unit.overdue,
        rejections=unit.rejections,
        relapses=unit.relapses,
    )


def monthly_text(lang: str, scope: _Scope, period: Period, ranked: Sequence[Ranked]) -> str:
    lines = [
        t(lang, "bulletin_monthly_title", period=period.key),
        t(lang, "bulletin_scope", scope=scope.labels[lang]),
        t(lang, "bulletin_rule"),
    ]
    if not ranked:
        lines.append(t(lang, "bulletin_no_units"))
        return clip("\n".join(lines))
    good = [entry for entry in ranked if entry.grade == GOOD]
    poor = [entry for entry in ranked if entry.grade == POOR]
    lines.append(t(lang, "bulletin_units", count=len(ranked)))
    if not good and not poor:
        lines.append(t(lang, "bulletin_no_grades"))
    if good:
        lines.append(t(lang, "bulletin_good", count=len(good)))
        lines += [_rank_line(lang, entry) for entry in good]
    if poor:
        lines.append(t(lang, "bulletin_poor", count=len(poor)))
        lines += [_rank_line(lang, entry) for entry in poor]
    lines.append(t(lang, "bulletin_average", count=len(ranked) - len(good) - len(poor)))
    return clip("\n".join(lines))


def quarterly_text(
    lang: str, scope: _Scope, period: Period, progress: Sequence[KindProgress]
) -> str:
    lines = [
        t(lang, "bulletin_quarterly_title", period=period.key),
        t(lang, "bulletin_scope", scope=scope.labels[lang]),
    ]
    for row in progress:
        lines.append(
            t(
                lang,
                "bulletin_kind_line",
                kind=kind_word(lang, row.kind),
                total=row.total,
                statuses=_statuses(lang, row.by_status, all_of_them=False) or "—",
                rate=_rate(row.closure_rate),
                new=row.flow.new,
                closed=row.flow.closed,
                on_time=row.flow.on_time,
            )
        )
    return clip("\n".join(lines))


# --- building and owing ------------------------------------------------------------------


def build_bulletin(
    session: Session,
    kind: str,
    period: Period,
    *,
    scope_code: str | None,
    bf: BulletinFacts,
) -> Bulletin:
    """The bulletin of `kind` for `period` over the subtree of `scope_code` (None:
    the whole tree). Reads only. Raises UnknownScope for an org code the
    directory does not have."""
    stage_of(kind)
    if period.kind != kind:
        raise ValueError(f"a {kind} bulletin needs a {kind} period, not {period.key!r}")
    scope = _scope(session, scope_code)
    facts = bf.facts
    if kind == DAILY:
        content = daily_content(session, scope, period.start, bf)
        empty = not (content.new[0] or content.closed[0] or content.newly_overdue[0])
        text = {lang: daily_text(lang, scope, period, content) for lang in LANGS}
        return Bulletin(kind, period, scope_code, text, empty=empty)
    if kind == WEEKLY:
        flow = period_flow(session, scope, period, bf.zone)
        counts = ledger_counts(session, scope=scope.paths, facts=facts, zone=bf.zone)
        orgs = org_counts(session, scope, facts)
        oldest = oldest_overdue(session, scope, facts)
        text = {
            lang: weekly_text(lang, scope, period, bf.today, flow, counts, orgs, oldest)
            for lang in LANGS
        }
        chart = chart_png(orgs, period=period, lang=bf.lang, font=cjk_font())
        sheet = io.BytesIO()
        write_xlsx(
            export_rows(
                session,
                today=bf.today,
                calendar=bf.calendar,
                warn_days=bf.warn_days,
                zone=bf.zone,
                scope_paths=scope.paths,
            ),
            sheet,
        )
        stem = f"closeout-{kind}-{period.key}-{scope.tag()}"
        files = (File(f"{stem}.png", PNG, chart), File(f"{stem}.xlsx", XLSX, sheet.getvalue()))
        return Bulletin(kind, period, scope_code, text, files)
    if kind == MONTHLY:
        ranked = ranking(session, period, today=bf.today, zone=bf.zone, scope=scope.paths)
        text = {lang: monthly_text(lang, scope, period, ranked) for lang in LANGS}
        return Bulletin(kind, period, scope_code, text)
    assert kind == QUARTERLY
    progress = kind_progress(session, scope, period, bf.zone)
    text = {lang: quarterly_text(lang, scope, period, progress) for lang in LANGS}
    return Bulletin(kind, period, scope_code, text)


@dataclass(frozen=True)
class ChatResult:
    """What became of one configured chat."""

    chat_id: int
    scope_code: str | None
    #: "owed" (a new row), "already" (owed before for this period), "empty"
    #: (nothing to say), "unknown_scope" (the chat's org code is not in the directory).
    outcome: str
    notification_id: int | None = None
    attachment_ids: tuple[int, ...] = field(default=())


def _owed_before(session: Session, stage: str, chat_id: int, period: Period) -> bool:
    key = notification_key(stage=stage, chat_id=chat_id, occurrence=period.key)
    return session.exec(select(Notification.id).where(Notification.key == key)).first() is not None


def _group_by_scope(chats: Iterable[BulletinChat]) -> dict[str | None, list[BulletinChat]]:
    groups: dict[str | None, list[BulletinChat]] = {}
    for chat in chats:
        groups.setdefault(chat.org_code, []).append(chat)
    return groups


def owe_bulletins(
    session: Session,
    kind: str,
    period: Period,
    chats: Iterable[BulletinChat],
    *,
    bf: BulletinFacts,
) -> list[ChatResult]:
    """Owe the bulletin of `kind` for `period` to every chat configured for `kind`.

    In the caller's transaction: per scope, the bulletin is built only if some
    chat of it is not owed yet; its files become Attachment rows shared by the
    chats; one notification per chat (stage "bulletin-<kind>", occurrence the
    period key, data {"text": {"zh", "en"}, "attachments": [ids]}). A chat
    already owed for the period is left alone, so running twice owes nothing
    new; files that no new row took (another process won the race) are deleted.
    """
    stage = stage_of(kind)
    results: list[ChatResult] = []
    wanted = [chat for chat in chats if chat.kind == kind]
    for code, group in _group_by_scope(wanted).items():
        pending = []
        for chat in group:
            if _owed_before(session, stage, chat.chat_id, period):
                results.append(ChatResult(chat.chat_id, code, "already"))
            else:
                pending.append(chat)
        if not pending:
            continue
        try:
            bulletin = build_bulletin(session, kind, period, scope_code=code, bf=bf)
        except UnknownScope:
            log.warning("bulletin %s: no org %r for chats %s", kind, code, pending)
            results += [ChatResult(chat.chat_id, code, "unknown_scope") for chat in pending]
            continue
        if bulletin.empty:
            results += [ChatResult(chat.chat_id, code, "empty") for chat in pending]
            continue
        attachments = [
            Attachment(
                file_name=file.name,
                mime_type=file.mime_type,
                content=file.content,
                created_at=clock.now(),
            )
            for file in bulletin.files
        ]
        session.add_all(attachments)
        session.flush()
        ids = tuple(attachment.id for attachment in attachments if attachment.id is not None)
        data = {"text": dict(bulletin.text), "attachments": list(ids)}
        taken = False
        for chat in pending:
            new = notify(
                session, stage=stage, chat_id=chat.chat_id, occurrence=period.key, data=data
            )
            key = notification_key(stage=stage, chat_id=chat.chat_id, occurrence=period.key)
            row = session.exec(select(Notification).where(Notification.key == key)).one()
            if ids:
                # Whose files the row names says who owed it: a process that lost
                # the race to the same key must not keep (or report) its own.
                new = json.loads(row.data).get("attachments") == list(ids)
            taken |= new
            results.append(
                ChatResult(
                    chat.chat_id, code, "owed" if new else "already", row.id, ids if new else ()
                )
            )
        if not taken:
            for attachment in attachments:
                session.delete(attachment)
            session.flush()
    return results


def bulletins_for_review(
    session: Session,
    kind: str,
    period: Period,
    chats: Iterable[BulletinChat],
    *,
    bf: BulletinFacts,
) -> list[tuple[str | None, list[int], Bulletin]]:
    """Every bulletin `owe_bulletins` would build, one per scope, without writing:
    (org code, chat ids, bulletin). With no chat configured for `kind`, the
    whole tree's, for no chat. Raises UnknownScope for a chat's unknown org code."""
    groups = _group_by_scope(chat for chat in chats if chat.kind == kind) or {None: []}
    return [
        (
            code,
            [chat.chat_id for chat in group],
            build_bulletin(session, kind, period, scope_code=code, bf=bf),
        )
        for code, group in groups.items()
    ]


__all__ = [
    "CHART_ORGS",
    "DIGEST_SHOWN",
    "OLDEST_SHOWN",
    "STAGE_PREFIX",
    "WEEKLY_ORGS_SHOWN",
    "Bulletin",
    "BulletinFacts",
    "File",
    "ChatResult",
    "UnknownScope",
    "build_bulletin",
    "bulletin_facts",
    "bulletins_for_review",
    "chart_png",
    "cjk_font",
    "default_period",
    "owe_bulletins",
    "stage_of",
]
