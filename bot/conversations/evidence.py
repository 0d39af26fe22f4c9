"""Evidence as it arrives: a Telegram message turned into an `Entry`, and its archive copy.

An Entry is what one Evidence row will hold (kind, Telegram's file ids, text,
a place). It is kept in a draft as JSON until /done, or attached at once.
EVIDENCE_DIR, when set, also keeps each file under its sha256; the copy is
made when the evidence is attached, and a failed download keeps the row
(the file can still be fetched by its file_id).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sqlmodel import Session, select
from telegram import Message
from telegram.error import TelegramError

from bot.services import Context
from models.ledger import InputRefused, NewEvidence
from models.limits import DESCRIPTION_MAX, NAME_MAX
from models.tables import Evidence

log = logging.getLogger(__name__)

#: A file name's suffix kept on the archive copy; anything else is dropped.
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


@dataclass(frozen=True)
class Archived:
    """Where EVIDENCE_DIR keeps a file, and its digest."""

    sha256: str
    path: str


@dataclass(frozen=True)
class Entry:
    """One piece of evidence as it arrived: what an Evidence row will hold."""

    kind: str
    message_id: int = 0
    file_id: str | None = None
    file_unique_id: str | None = None
    file_name: str | None = None
    text: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def evidence(self, archived: Archived | None = None) -> NewEvidence:
        return NewEvidence(
            kind=self.kind,
            file_id=self.file_id,
            file_unique_id=self.file_unique_id,
            file_name=self.file_name,
            text=self.text,
            latitude=self.latitude,
            longitude=self.longitude,
            sha256=archived.sha256 if archived else None,
            archived_path=archived.path if archived else None,
        )


def entry_of(message: Message) -> Entry:
    """The evidence a message carries; text messages are kind "text"."""
    mid = message.message_id
    caption = message.caption or None
    if message.photo:
        size = message.photo[-1]  # the largest
        return Entry("photo", mid, size.file_id, size.file_unique_id, text=caption)
    for kind, attachment in (
        ("document", message.document),
        ("voice", message.voice),
        ("voice", message.audio),
        ("video", message.video),
        ("video", message.video_note),
    ):
        if attachment is not None:
            name = getattr(attachment, "file_name", None)
            return Entry(
                kind,
                mid,
                attachment.file_id,
                attachment.file_unique_id,
                file_name=name[:NAME_MAX] if name else None,
                text=caption,
            )
    if message.venue is not None:
        venue = message.venue
        where = venue.location
        text = " ".join(part for part in (venue.title, venue.address) if part)
        return Entry("location", mid, text=text, latitude=where.latitude, longitude=where.longitude)
    if message.location is not None:
        where = message.location
        return Entry("location", mid, latitude=where.latitude, longitude=where.longitude)
    return Entry("text", mid, text=message.text or "")


def checked_entry(entry: Entry) -> Entry:
    """The entry, or InputRefused "too_long" when its text could never be attached."""
    if entry.text is not None and len(entry.text) > DESCRIPTION_MAX:
        raise InputRefused(
            "too_long", {"field": "text", "length": len(entry.text), "max": DESCRIPTION_MAX}
        )
    return entry


def add_entry(data: dict[str, Any], entry: Entry) -> bool:
    """Append to a draft's evidence unless the same message or file is there already."""
    entries: list[dict[str, Any]] = data.setdefault("evidence", [])
    for known in entries:
        if known.get("message_id") == entry.message_id and entry.message_id:
            return False
        if entry.file_unique_id and known.get("file_unique_id") == entry.file_unique_id:
            return False
    entries.append(entry.to_json())
    return True


# -- in the item's pocket (inside a `services.db` transaction) ------------------------------


def already_attached(session: Session, number: int, entry: Entry) -> bool:
    """Whether this very file is in the item's pocket (Telegram may deliver a message twice)."""
    if entry.file_unique_id is None:
        return False
    return (
        session.exec(
            select(Evidence.id).where(
                Evidence.item_number == number, Evidence.file_unique_id == entry.file_unique_id
            )
        ).first()
        is not None
    )


def evidence_count(session: Session, number: int) -> int:
    return len(session.exec(select(Evidence.id).where(Evidence.item_number == number)).all())


# -- the archive ---------------------------------------------------------------------------


async def archive(context: Context, entry: Entry) -> Archived | None:
    """Keep the entry's file under EVIDENCE_DIR/<sha256[:2]>/<sha256><ext>, when set.

    A failed download is logged and returns None: the evidence row is written
    anyway with its file_id, from which the file can still be fetched.
    """
    folder = context.services.settings.EVIDENCE_DIR
    if not folder or entry.file_id is None:
        return None
    try:
        file = await context.bot.get_file(entry.file_id)
        data = bytes(await file.download_as_bytearray())
    except (TelegramError, OSError) as error:
        log.warning(
            "evidence %s (message %s) kept without an archive copy: %s",
            entry.file_unique_id,
            entry.message_id,
            error,
        )
        return None
    digest = hashlib.sha256(data).hexdigest()
    suffix = Path(entry.file_name or file.file_path or "").suffix.lower()
    path = Path(folder) / digest[:2] / (digest + (suffix if _SUFFIX.match(suffix) else ""))
    try:
        await asyncio.to_thread(_store, path, data)
    except OSError as error:
        log.warning("evidence %s not archived at %s: %s", entry.file_unique_id, path, error)
        return None
    return Archived(digest, str(path))


def _store(path: Path, data: bytes) -> None:
    # Content-addressed: the same bytes are stored once; written aside, then renamed.
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
    part.write_bytes(data)
    os.replace(part, path)


async def archive_all(context: Context, entries: list[Entry]) -> dict[int, Archived]:
    """Archive copies of the entries' files, by message id."""
    kept: dict[int, Archived] = {}
    for entry in entries:
        archived = await archive(context, entry)
        if archived is not None:
            kept[entry.message_id] = archived
    return kept
