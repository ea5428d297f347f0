"""Where the files SafeVLM ships beside its code live: the taxonomy, the phrase list, the
example images, project-written data and the shipped checkpoint (`assets/`)."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
