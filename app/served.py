"""Files the app lets Gradio serve at /gradio_api/file=…: visitors' uploads, the images an
annotator opens and exports. Whoever holds such a URL can fetch the file, so uploads go when
their page opts out of logging or deletes its chats, and annotation files live a few minutes
in a folder with an unguessable name. Knows no store and no model."""

import logging
import shutil
import threading
import uuid
from pathlib import Path

from gradio.utils import get_upload_folder, is_in_or_equal

log = logging.getLogger(__name__)

ANNOTATION_FILE_SECONDS = 600  # an export or an opened image, then it is deleted
# Gradio's own sweep (Blocks(delete_cache=...)): every 5 minutes, files older than an hour
# (uploads of chats that are logged; the log keeps its own copy of the image).
CACHE_SWEEP = (300, 3600)


def in_upload_folder(path: str | Path | None) -> bool:
    """Whether `path` is a file under Gradio's upload folder (never an example or a log file)."""
    return bool(path) and is_in_or_equal(str(path), get_upload_folder())


def remove_upload(path: str | Path) -> bool:
    """Delete a file of Gradio's upload folder and its folder when that is left empty;
    True when a file was deleted. Paths outside the upload folder are never touched."""
    if not in_upload_folder(path):
        return False
    path = Path(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("could not delete the upload %s: %s", path, error)
        return False
    if path.parent != Path(get_upload_folder()):
        try:
            path.parent.rmdir()  # Gradio puts each upload in a folder of its own
        except OSError:
            pass
    return True


class AnnotationFiles:
    """Exports and opened images for annotators: each in a fresh folder with a random name in
    Gradio's upload folder (served as is, not copied), deleted after `seconds` or by
    `remove_all` (when a visitor deletes chats: an older export could still hold them)."""

    def __init__(self, seconds: float | None = None):
        self.seconds = ANNOTATION_FILE_SECONDS if seconds is None else seconds
        self._files: dict[Path, threading.Timer] = {}
        self._lock = threading.Lock()

    def new_path(self, name: str) -> Path:
        """Where to write a new file named `name`; call `track` once it is written."""
        folder = Path(get_upload_folder()) / f"safevlm-{uuid.uuid4().hex}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def track(self, path: Path) -> str:
        """Schedule the file's deletion; returns its path for a Gradio output."""
        timer = threading.Timer(self.seconds, self.remove, [path])
        timer.daemon = True
        with self._lock:
            self._files[path] = timer
        timer.start()
        return str(path)

    def copy(self, source: Path, name: str) -> str:
        """A served copy of `source` (a stored image), deleted like every annotation file."""
        target = self.new_path(name)
        shutil.copyfile(source, target)
        return self.track(target)

    def remove(self, path: Path) -> None:
        with self._lock:
            timer = self._files.pop(path, None)
        if timer is not None:
            timer.cancel()
        shutil.rmtree(path.parent, ignore_errors=True)

    def remove_all(self) -> int:
        with self._lock:
            paths = list(self._files)
        for path in paths:
            self.remove(path)
        return len(paths)

    @property
    def paths(self) -> list[Path]:
        with self._lock:
            return list(self._files)
