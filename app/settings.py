"""The app's settings: what the environment decides (`AppSettings.from_env`) and the
example list of assets/examples.json. Reads no model and no logs."""

import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_FILE = ROOT / "assets" / "examples.json"
EXAMPLES_DIR = ROOT / "assets" / "examples"


@dataclass(frozen=True)
class AppSettings:
    """What the environment decides about one running app (see `from_env`)."""

    base: str = "tiny"
    checkpoint: str | None = None
    policy: str | None = None  # a policy file (`safevlm feedback thresholds --out`): default thresholds
    db: str = "logs/safevlm.db"
    annotation_token: str | None = None
    log_turns: bool = True
    max_new_tokens: int = 256
    public: bool = False  # anyone can open the page: a Space, or a bind beyond loopback
    space: bool = False  # on Hugging Face Spaces (SPACE_ID set)
    max_file_size: str = "10mb"
    hf_dataset: str | None = None  # push log snapshots to this private dataset repo
    hf_sync_minutes: float = 10.0
    hf_sync_images: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "AppSettings":
        raw_log = env.get("SAFEVLM_LOG", "on").strip().lower()
        if raw_log not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"SAFEVLM_LOG must be on or off, got {raw_log!r}")
        raw_tokens = env.get("SAFEVLM_MAX_NEW_TOKENS", "256").strip()
        if not raw_tokens.isdigit() or int(raw_tokens) < 1:
            raise ValueError(
                f"SAFEVLM_MAX_NEW_TOKENS must be a whole number >= 1, got {raw_tokens!r}"
            )
        raw_minutes = env.get("SAFEVLM_HF_SYNC_MINUTES", "10").strip()
        try:
            minutes = float(raw_minutes)
        except ValueError:
            minutes = 0.0
        if not minutes > 0:
            raise ValueError(f"SAFEVLM_HF_SYNC_MINUTES must be a number of minutes > 0, got {raw_minutes!r}")
        raw_token = env.get("SAFEVLM_ANNOTATION_TOKEN")
        token = raw_token.strip() if raw_token is not None else None
        if raw_token is not None and not token:
            raise ValueError(
                "SAFEVLM_ANNOTATION_TOKEN is set but blank; set a real token or unset it"
            )
        space = bool(env.get("SPACE_ID"))
        raw_images = env.get("SAFEVLM_HF_SYNC_IMAGES", "off").strip().lower()
        if raw_images not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"SAFEVLM_HF_SYNC_IMAGES must be on or off, got {raw_images!r}")
        return cls(
            base=env.get("SAFEVLM_BASE", "tiny").strip() or "tiny",
            checkpoint=env.get("SAFEVLM_CHECKPOINT", "").strip() or None,
            policy=env.get("SAFEVLM_POLICY", "").strip() or None,
            db=env.get("SAFEVLM_DB", "logs/safevlm.db").strip() or "logs/safevlm.db",
            annotation_token=token,
            log_turns=raw_log in ("on", "1", "true", "yes"),
            max_new_tokens=int(raw_tokens),
            public=space or not is_loopback(env.get("GRADIO_SERVER_NAME", "")),
            space=space,
            hf_dataset=env.get("SAFEVLM_HF_DATASET", "").strip() or None,
            hf_sync_minutes=minutes,
            hf_sync_images=raw_images in ("on", "1", "true", "yes"),
        )

    @property
    def annotation_open(self) -> bool:
        """Whether the Annotate tab can show anything at all."""
        return bool(self.annotation_token) or not self.public


def is_loopback(server_name: str) -> bool:
    """Whether Gradio bound to `server_name` (GRADIO_SERVER_NAME; "" is Gradio's default,
    127.0.0.1) is reachable from this machine only. 0.0.0.0, a LAN address or a host name
    other than localhost is not: the app is then as public as a Space."""
    name = server_name.strip().strip("[]").lower()
    if name in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict]:
    """The example list of assets/examples.json with absolute image paths; [] if missing."""
    try:
        listing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        log.warning("no examples: cannot read %s (%s)", path, error)
        return []
    examples = []
    for item in listing.get("examples", []):
        image = path.parent / "examples" / item["file"]
        if image.is_file():
            examples.append({**item, "path": str(image)})
    return examples
