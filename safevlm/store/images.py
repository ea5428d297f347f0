"""Images stored once by the sha256 of their bytes: files `images_dir/ab/abcd….png` and rows
of the `images` table, written and deleted together inside the caller's write transaction.

Does not decide when an image is kept or forgotten: sessions and purges do (`core`, `retention`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import re
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlite_utils import Database

from safevlm.store.errors import StoreError
from safevlm.store.files import write_atomically
from safevlm.store.values import now

logger = logging.getLogger(__name__)

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMAT_RE = re.compile(r"^[a-z0-9]{1,10}$")
# An image file, or the temp file of one interrupted while being written.
_IMAGE_FILE_RE = re.compile(r"^(\.)?[0-9a-f]{64}\.[a-z0-9]{1,10}(\..+\.tmp)?$")


@dataclasses.dataclass(frozen=True)
class PreparedImage:
    """An image read and hashed outside the write transaction, ready for `put_image`."""

    hash: str
    data: bytes
    width: int | None
    height: int | None
    format: str
    relpath: str


def prepare_image(
    data: bytes | str | Path,
    width: int | None = None,
    height: int | None = None,
    format: str | None = None,
) -> PreparedImage:
    """Read `data` (bytes or a path), hash it, and fill missing width/height/format from the
    image header; bytes Pillow cannot read are kept as format 'bin'."""
    if isinstance(data, str | Path):
        try:
            data = Path(data).read_bytes()
        except OSError as error:
            raise StoreError(f"cannot read image file {data}: {error.strerror or error}") from None
    if not isinstance(data, bytes | bytearray) or not data:
        raise StoreError("image data must be non-empty bytes or a path to an image file")
    data = bytes(data)
    if width is None or height is None or format is None:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                width = opened.width if width is None else width
                height = opened.height if height is None else height
                format = format or opened.format
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
            # Keep the bytes anyway: an unreadable upload is still evidence of the turn.
            logger.warning(
                "Pillow cannot read a %d-byte image (%s); storing it as-is", len(data), error
            )
    format = (format or "bin").lower()
    format = "jpg" if format == "jpeg" else format
    if not _FORMAT_RE.match(format):
        raise StoreError(f"image format must be a short name such as 'png'; got {format!r}")
    digest = hashlib.sha256(data).hexdigest()
    return PreparedImage(digest, data, width, height, format, f"{digest[:2]}/{digest}.{format}")


def stored_relpath(db: Database, hash: str) -> str | None:
    """Where the image with this hash lives under `images_dir`, or None if it is not stored."""
    row = db.execute("SELECT path FROM images WHERE hash = ?", [hash]).fetchone()
    return row[0] if row else None


def absolute_path(images_dir: Path, relpath: str | None) -> str | None:
    return str((images_dir / relpath).resolve()) if relpath else None


def put_image(db: Database, images_dir: Path, image: PreparedImage) -> None:
    """The file first, then the row: a crash leaves at worst an orphan file, which
    `sweep_orphan_files` removes."""
    known = stored_relpath(db, image.hash)
    target = images_dir / (known or image.relpath)
    if not target.is_file():
        write_atomically(target, image.data, fix=f"make {images_dir} writable")
    if known is None:
        db["images"].insert(
            {
                "hash": image.hash,
                "path": image.relpath,
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "bytes": len(image.data),
                "created": now(),
            }
        )


def delete_unreferenced_images(
    db: Database,
    images_dir: Path,
    candidates: list[str] | None = None,
    older_than: str | None = None,
) -> None:
    """Delete rows and files of images no turn uses (only `candidates`, if given; only those
    created before `older_than`, if given). Inside the write transaction, so a turn logged
    concurrently cannot re-use an image whose file is being removed (it waits, then rewrites
    the file)."""
    sql = (
        "SELECT hash, path FROM images WHERE hash NOT IN "
        "(SELECT image_hash FROM turns WHERE image_hash IS NOT NULL)"
    )
    params: list[Any] = []
    if older_than is not None:
        sql += " AND created < ?"
        params.append(older_than)
    rows = db.execute(sql, params).fetchall()
    if candidates is not None:
        wanted = set(candidates)
        rows = [r for r in rows if r[0] in wanted]
    for digest, relpath in rows:
        db.execute("DELETE FROM images WHERE hash = ?", [digest])
        _remove_image_file(images_dir / relpath)


def sweep_orphan_files(db: Database, images_dir: Path, before_timestamp: float) -> None:
    """Remove image files (and interrupted temp files) with no row, last touched before
    `before_timestamp`; younger ones may belong to a write still in progress."""
    if not images_dir.is_dir():
        return
    known = {r[0] for r in db.execute("SELECT path FROM images")}
    for file in images_dir.glob("*/*"):
        relpath = f"{file.parent.name}/{file.name}"
        if (
            file.is_file()
            and _IMAGE_FILE_RE.match(file.name)
            and relpath not in known
            and file.stat().st_mtime < before_timestamp
        ):
            _remove_image_file(file)


def _remove_image_file(file: Path) -> None:
    try:
        file.unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not delete image file %s: %s", file, error)
        return
    try:
        file.parent.rmdir()
    except OSError:
        pass  # the shard folder still holds other images
