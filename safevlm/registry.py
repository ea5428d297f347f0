"""The checkpoint registry: a folder of checkpoints that `safevlm retrain` writes, each
described by its `entry.json` (id, parent, data hash, metrics, date), and `promoted.json`
naming the one in use. The app loads the promoted one when SAFEVLM_CHECKPOINT names the
registry folder, and switches when another is promoted, without a restart.

    checkpoints/                  the registry (any folder)
      promoted.json               {"id": ..., "date": ..., "gate": {...}}
      20261205-0312-3f9a2c/       one checkpoint: config, safety modules, adapter
        entry.json
        retrain_report.json, retrain_report.md

Owns the files' format and the two rules around them: a checkpoint is promoted only by
`promote` with the gate's verdict, and nothing writes into the promoted checkpoint's folder.
Knows no model (the store's neighbour, not the engine's).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safevlm.errors import SafeVLMError
from safevlm.files import write_atomically

ENTRY_FILE = "entry.json"
PROMOTED_FILE = "promoted.json"


class RegistryError(SafeVLMError):
    """A registry that cannot be used as asked (unknown id, a write into the promoted checkpoint)."""


@dataclass(frozen=True)
class Entry:
    id: str
    parent: str
    data_hash: str
    date: str
    metrics: dict = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def checkpoint_label(folder: str | Path) -> str:
    """How a checkpoint folder is named to people: its registry id, else the folder itself."""
    entry = Path(folder) / ENTRY_FILE
    if entry.is_file():
        try:
            return str(json.loads(entry.read_text(encoding="utf-8"))["id"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return str(folder)


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def is_registry(folder: str | Path) -> bool:
        return (Path(folder) / PROMOTED_FILE).is_file()

    def path(self, entry_id: str) -> Path:
        return self.root / entry_id

    def entries(self) -> list[Entry]:
        out = []
        for path in sorted(self.root.glob(f"*/{ENTRY_FILE}")):
            try:
                out.append(Entry(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError) as e:
                raise RegistryError(f"{path}: not a registry entry ({e})") from None
        return out

    def get(self, entry_id: str) -> Entry:
        for entry in self.entries():
            if entry.id == entry_id:
                return entry
        known = ", ".join(e.id for e in self.entries()) or "none"
        raise RegistryError(f"no checkpoint {entry_id!r} in {self.root} (registered: {known})")

    def promoted_id(self) -> str | None:
        path = self.root / PROMOTED_FILE
        if not path.is_file():
            return None
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["id"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RegistryError(f"{path}: unreadable ({e}); promote a checkpoint again") from None

    def promoted_path(self) -> Path:
        """The promoted checkpoint's folder (the app loads this one)."""
        entry_id = self.promoted_id()
        if entry_id is None:
            raise RegistryError(f"{self.root}: no checkpoint is promoted yet (no {PROMOTED_FILE})")
        path = self.path(entry_id)
        if not (path / ENTRY_FILE).is_file():
            raise RegistryError(f"{self.root}: the promoted checkpoint {entry_id!r} is missing")
        return path

    def check_target(self, out: str | Path) -> None:
        """Refuse to write a new checkpoint where the promoted one (or the registry file) lives."""
        out = Path(out).resolve()
        entry_id = self.promoted_id()
        if entry_id is not None:
            promoted = self.path(entry_id).resolve()
            if out == promoted or promoted.is_relative_to(out):
                raise RegistryError(f"{out} holds the promoted checkpoint {entry_id!r}: "
                                    "pass another --out (a new folder in the registry)")

    def register(self, folder: str | Path, parent: str, data_hash: str, metrics: dict, note: str = "") -> Entry:
        """Describe the checkpoint in `folder` (a child of the registry) with a new entry."""
        folder = Path(folder)
        if folder.resolve().parent != self.root.resolve():
            raise RegistryError(f"{folder} is not a folder of the registry {self.root}")
        self.check_target(folder)
        entry = Entry(id=folder.name, parent=parent, data_hash=data_hash,
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), metrics=metrics, note=note)
        write_atomically(folder / ENTRY_FILE, entry.to_json())
        return entry

    def promote(self, entry_id: str, gate: dict | None = None) -> Entry:
        """Make `entry_id` the checkpoint in use (atomically: a reader sees the old or the new)."""
        entry = self.get(entry_id)
        record = {"id": entry.id, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "previous": self.promoted_id(), "gate": gate or {}}
        write_atomically(self.root / PROMOTED_FILE, json.dumps(record, indent=2) + "\n")
        return entry
