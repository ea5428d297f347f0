"""Files the app lets Gradio serve at /gradio_api/file=…: visitors' uploads, the images an
annotator opens and exports. Whoever holds such a URL can fetch the file, so uploads go when
their page opts out of logging or deletes its chats, and annotation files live a few minutes
in a folder with an unguessable name. Knows no store and no model."""

import json
import logging
import shutil
import threading
import uuid
from collections import Counter
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


class UploadClaims:
    """Which uploads an API call may still need. Gradio stores an upload under the hash of its
    bytes, so two clients sending the same image share one file: a /chat call that deletes
    "its" upload when it ends would pull it from under a call still queued. Each answered
    upload adds a claim (`CountUploads`); `release` drops one and deletes the file when no
    claim is left and no upload is being received (that upload may be the same bytes; the
    file is deleted once it is counted). A page's uploads are claimed and never released:
    they go with the page's chats (`remove_upload`) or by Gradio's hourly sweep."""

    PRUNE_AT = 2000  # entries; beyond this, claims on files that are gone are dropped

    def __init__(self):
        self._claims: Counter[str] = Counter()
        self._receiving = 0
        self._waiting: set[str] = set()  # released while an upload was being received
        self._lock = threading.Lock()

    def claim(self, paths: list[str]) -> None:
        with self._lock:
            self._claims.update(str(p) for p in paths)
            if len(self._claims) > self.PRUNE_AT:
                for path in [p for p in self._claims if not Path(p).exists()]:
                    del self._claims[path]

    def release(self, path: str | Path) -> bool:
        """Drop one claim on `path`; True when the file was deleted now."""
        path = str(path)
        with self._lock:
            if self._claims[path] > 0:
                self._claims[path] -= 1
            if self._claims[path] > 0:
                return False
            del self._claims[path]
            if self._receiving:
                self._waiting.add(path)
                return False
        return remove_upload(path)

    def receiving(self) -> None:
        with self._lock:
            self._receiving += 1

    def received(self, paths: list[str]) -> None:
        """An upload request ended (`paths`: what it stored, [] when it failed)."""
        self.claim(paths)
        with self._lock:
            self._receiving -= 1
            if self._receiving:
                return
            ready = [p for p in self._waiting if self._claims[p] == 0]
            self._waiting.clear()
        for path in ready:
            remove_upload(path)

    def count(self, path: str | Path) -> int:
        with self._lock:
            return self._claims[str(path)]


UPLOADS = UploadClaims()


class CountUploads:
    """ASGI middleware: every upload Gradio answers (POST …/gradio_api/upload, a JSON list of
    the stored paths) becomes a claim in `claims`."""

    def __init__(self, app, claims: UploadClaims = UPLOADS):
        self.app = app
        self.claims = claims

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"].endswith("/gradio_api/upload")):
            await self.app(scope, receive, send)
            return
        status, body, paths = 0, [], []

        async def capture(message):
            nonlocal status, paths
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200:
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    paths = stored_paths(b"".join(body))
            await send(message)

        self.claims.receiving()
        try:
            await self.app(scope, receive, capture)
        finally:
            self.claims.received(paths)


def stored_paths(body: bytes) -> list[str]:
    """The paths of an upload response; [] for anything else."""
    try:
        value = json.loads(body)
    except ValueError:
        return []
    return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []


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
