"""Files: identifiers, image sizes and the photo sizes Telegram makes.

Telegram keeps a photo in several sizes, each with its own `file_id`. The
sandbox does not resample: every size refers to the same bytes, with width
and height scaled as Telegram would report them.
"""

from __future__ import annotations

import secrets
import struct
import zlib

#: Longest side of the sizes Telegram makes of a photo (s, m, x, y).
PHOTO_SIDES = (90, 320, 800, 1280)
#: Width and height assumed for image bytes whose size cannot be read.
DEFAULT_IMAGE_SIZE = (1280, 960)
#: Prefixes of Telegram's file ids by kind (cosmetic, but recognisable).
FILE_ID_PREFIXES = {
    "photo": "AgACAgUAAxkBAA",
    "document": "BQACAgUAAxkBAA",
    "voice": "AwACAgUAAxkBAA",
    "video": "BAACAgUAAxkBAA",
}
#: Folders of `file_path` by kind, as on Telegram's file server.
FILE_FOLDERS = {"photo": "photos", "document": "documents", "voice": "voice", "video": "videos"}
#: Extension used in `file_path` when the kind says nothing better.
DEFAULT_EXTENSIONS = {"photo": ".jpg", "voice": ".oga", "video": ".mp4", "document": ""}

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def new_file_id(kind: str) -> str:
    """A fresh, unique `file_id` for a file of `kind`."""
    return FILE_ID_PREFIXES.get(kind, "CAACAgUAAxkBAA") + secrets.token_urlsafe(24)


def new_file_unique_id() -> str:
    """A fresh `file_unique_id` (short, as Telegram's are)."""
    return "AQAD" + secrets.token_urlsafe(9)


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of PNG, GIF, JPEG or WebP bytes; None if not an image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return DEFAULT_IMAGE_SIZE
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data) or DEFAULT_IMAGE_SIZE
    return None


def image_mime(data: bytes) -> str | None:
    """The MIME type of PNG, GIF, JPEG or WebP bytes; None if not one of them."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:3] == b"GIF":
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the JPEG segments to the first start-of-frame marker.
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        (segment,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + segment
    return None


def photo_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """The (width, height) of each size Telegram keeps, smallest first, original last."""
    longest = max(width, height, 1)
    sizes = []
    for side in PHOTO_SIDES:
        if side >= longest:
            break
        scale = side / longest
        sizes.append((max(1, round(width * scale)), max(1, round(height * scale))))
    sizes.append((width, height))
    return sizes


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid PNG of a white rectangle, for tests and the demo."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + b"\xff\xff\xff" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )
