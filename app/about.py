"""The text of the "About this model" accordion: base, checkpoint, taxonomy with default
thresholds, and where logs go. Plain values in, Markdown out; no components."""

import html
import json

from app.settings import AppSettings
from safevlm.engine import ChatEngine


def about_markdown(engine: ChatEngine, settings: AppSettings, logging_on: bool, registry=None) -> str:
    """`registry`: the checkpoint registry the app follows (SAFEVLM_CHECKPOINT), if any."""
    about, taxonomy = engine.describe(), engine.taxonomy
    defaults = engine.default_thresholds()
    rows = "\n".join(
        f"| {label} | `{name}` | {'—' if name == taxonomy.safe_type else f'{defaults.types[name]:.2f}'} "
        f"| {html.escape(taxonomy.descriptions.get(name, ''))} |"
        for name, label in zip(taxonomy.types, taxonomy.type_labels, strict=True)
    )
    levels = " · ".join(taxonomy.level_labels)
    if not logging_on:
        logging_note = "Logging is **off** on this server (`SAFEVLM_LOG=off`): no turn is saved."
    else:
        if settings.hf_dataset:
            pushed = ("prompts, answers, OCR text, safety scores, ratings and comments, "
                      "annotators' labels, notes and names") + (", images" if settings.hf_sync_images else "")
            where = (
                f"on this server; a snapshot ({pushed}) is pushed to the private dataset "
                f"`{settings.hf_dataset}` every {settings.hf_sync_minutes:g} minutes."
            )
        else:
            where = "on this server only; nothing is uploaded anywhere."
            if settings.space:
                where += " On a Space, local files vanish when it restarts."
        logging_note = (
            f"Turns are logged to a local SQLite file (`{settings.db}`) {where} Tick *Don't log this "
            "chat* to opt out: it applies at once (to the answer being written too) and deletes the "
            "images you uploaded from the server. *Delete my logged chats* deletes every turn this "
            "page logged, across *Clear* and new images. Uploads of logged chats are deleted from "
            "the server within the hour. The browser keeps no chat history: reloading the page "
            "starts a new chat."
        )
    config = json.dumps(about.get("config", {}), indent=1)
    registry_note = (f" (promoted in the registry `{registry.root}`; the app switches when another "
                     "checkpoint is promoted)" if registry is not None else "")
    policy_note = (f"Default thresholds come from the policy file `{settings.policy}` (`SAFEVLM_POLICY`), "
                   "not the checkpoint's calibration.\n" if settings.policy else "")
    return f"""
**Base:** `{about.get("base")}` · **Safety checkpoint:** `{about.get("checkpoint")}`{registry_note} ·
**Text reader (OCR):** {"on" if about.get("reader") else "off"} · **Default mode:** `{about.get("default_mode")}` ·
**Max new tokens:** {settings.max_new_tokens}

**Taxonomy** `{taxonomy.name}` — levels: {levels}; default level threshold {defaults.level:.2f}.
{policy_note}

| Type | Name | Default threshold | Covers |
|---|---|---|---|
{rows}

**Logs.** {logging_note}

<details><summary>Safety module config</summary>

```json
{config}
```
</details>
"""
