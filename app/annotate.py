"""Annotation handlers of the Annotate tab: browse logged turns, open one, save a label,
export. Every handler checks the token first; the images and exports it hands out live a few
minutes (`served`). No components (`layout`), no SQL (`store`)."""

import hmac
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app.checkpoints import EngineSlot, OnSlot
from app.errors import shown
from app.panel import level_frame, quote, type_frame
from app.served import AnnotationFiles
from app.settings import AppSettings
from safevlm.feedback.export import feedback_records, write_records
from safevlm.feedback.labels import FeedbackError, summary, threshold_policy, write_policy
from safevlm.feedback.queue import review_queue, why
from safevlm.images import ImageError, load_image
from safevlm.policy import ThresholdError
from safevlm.store import Store, StoreError

TURN_COLUMNS = [  # "why" early: in "most useful first" order it is what the annotator reads first
    "id",
    "why",
    "created",
    "decision",
    "type",
    "level",
    "source",
    "status",
    "prompt",
    "answer",
    "label",
    "👍/👎",
    "comment",
]
QUEUE_POOL = 2000  # newest unlabelled turns ranked for "most useful first"


@dataclass
class AnnotationHandlers(OnSlot):
    """The Annotate tab's callbacks over one store; the engine only lends its taxonomy and
    threshold parsing."""

    slot: EngineSlot
    store: Store
    settings: AppSettings
    files: AnnotationFiles = field(default_factory=AnnotationFiles)

    def check_token(self, token: str | None) -> None:
        """Raise gr.Error unless annotation is open to this caller."""
        expected = self.settings.annotation_token
        if expected:
            if not token or not hmac.compare_digest(str(token).encode(), expected.encode()):
                raise gr.Error("Wrong or missing annotation token.", print_exception=False)
        elif self.settings.public:
            raise gr.Error(
                "Annotation is disabled on this public app (a Space, or bound to a non-local "
                "address): no SAFEVLM_ANNOTATION_TOKEN is set.",
                print_exception=False,
            )

    def unlock(self, token: str) -> tuple[Any, str]:
        """(visibility of the annotation panel, status line)."""
        self.check_token(token)
        return gr.Column(visible=True), "Unlocked. Press **Load turns** to browse the log."

    def browse(self, token: str, decision: str, type_name: str, unlabelled: bool, limit: int = 100,
               order: str = "newest") -> pd.DataFrame:
        """Logged turns as a table (filters: decision, predicted type, unlabelled), newest
        first, or with order "useful" the unlabelled ones whose label would help most first
        (`feedback.queue`: head unsure, near a threshold, visitor disagreed), with the reason."""
        self.check_token(token)
        useful = order == "useful"  # ranks a pool of the newest unlabelled turns
        decision = None if decision in (None, "", "any") else decision
        type_name = None if type_name in (None, "", "any") else self._type_name(type_name)
        try:
            turns = self.store.list_turns(decision=decision, type=type_name, unlabelled=useful or bool(unlabelled),
                                          limit=QUEUE_POOL if useful else int(limit))
        except StoreError as error:
            raise shown(error) from None
        reasons = {}
        if useful:
            ranked = review_queue(turns, self.taxonomy, self.engine.default_thresholds())[: int(limit)]
            turns = [t for t, _ in ranked]
            reasons = {t["id"]: f"{parts['score']:.2f}: {why(parts)}" for t, parts in ranked}
        rows = [
            {
                "id": t["id"],
                "created": (t["created"] or "")[:19].replace("T", " "),
                "decision": t["decision"],
                "type": t["type"],
                "level": t["level"],
                "source": t["source"],
                "status": t["status"],
                "prompt": _shorten(t["prompt"]),
                "answer": _shorten(t["response"]),
                "label": "yes" if t["annotation_id"] is not None else "",
                "👍/👎": f"{t['feedback_up']}/{t['feedback_down']}",
                "comment": _shorten(t.get("feedback_comment")),
                "why": reasons.get(t["id"], ""),
            }
            for t in turns
        ]
        return pd.DataFrame(rows, columns=TURN_COLUMNS)

    def open_turn(self, token: str, turn_id: Any) -> tuple:
        """One turn for labelling: (turn id, image, text, type bars, level bars, decision_correct,
        true type, true level, rating, note). The image is a copy served for a few minutes."""
        self.check_token(token)
        turn = self.store.get_turn(_turn_id(turn_id))
        if turn is None:
            raise gr.Error(f"No logged turn with id {turn_id}.", print_exception=False)
        image = None
        stored = Path(turn["image_path"]) if turn.get("image_path") else None
        if stored is not None and stored.is_file():
            try:
                load_image(stored)  # only an image that decodes is shown
                image = self.files.copy(stored, f"turn-{turn['id']}{stored.suffix}")
            except ImageError:
                image = None
        labels = dict(zip(self.taxonomy.types, self.taxonomy.type_labels, strict=True))
        thresholds = None
        if turn.get("thresholds"):
            try:
                thresholds = self.engine.thresholds(turn["thresholds"])
            except ThresholdError:
                thresholds = None
        text = "\n\n".join(
            [
                f"**Turn {turn['id']}** · {turn['created'][:19].replace('T', ' ')} · source {turn['source']}"
                f" · status {turn['status']} · mode {turn['mode']}",
                f"**Decision:** {turn['decision']} · type {labels.get(turn['type'], turn['type'])}"
                f" · level {turn['level']}",
                f"**Prompt:** {quote(turn['prompt'], 2000)}",
                f"**Answer:** {quote(turn['response'], 4000)}",
                f"**Text read in the image:** {quote(turn.get('reader_text') or '') or 'none'}",
                f"**Hint:** {quote(turn.get('hint') or '') or 'none'} · "
                f"**Users:** {turn['feedback_up']} 👍 / {turn['feedback_down']} 👎",
                f"**User's comment:** {quote(turn.get('feedback_comment') or '', 2000) or 'none'}",
            ]
        )
        correct = {True: "yes", False: "no"}.get(turn["decision_correct"])
        return (
            turn["id"],
            image,
            text,
            type_frame(self.taxonomy, turn.get("type_probs"), thresholds),
            level_frame(self.taxonomy, turn.get("level_probs")),
            correct,
            turn["true_type"],
            turn["true_level"],
            turn["response_rating"],
            turn["note"] or "",
        )

    def save_label(
        self,
        token: str,
        turn_id: Any,
        annotator: str,
        decision_correct: str | None,
        true_type: str | None,
        true_level: Any,
        rating: Any,
        note: str,
    ) -> str:
        self.check_token(token)
        if not (annotator or "").strip():
            raise gr.Error(
                "Enter your name as annotator, so labels can be traced.", print_exception=False
            )
        try:
            annotation_id = self.store.annotate(
                _turn_id(turn_id),
                annotator=annotator.strip(),
                decision_correct={"yes": True, "no": False}.get(decision_correct or ""),
                true_type=self._type_name(true_type) if true_type else None,
                true_level=self._level_index(true_level) if true_level not in (None, "") else None,
                response_rating=int(rating) if rating not in (None, "") else None,
                note=(note or "").strip(),
            )
        except StoreError as error:
            raise shown(error) from None
        return f"Saved label #{annotation_id} for turn {_turn_id(turn_id)}."

    def export(self, token: str, kind: str, labelled_only: bool = True) -> str:
        """Write an export where only this caller learns the URL (a folder with a random name),
        deleted after a few minutes; its path. JSONL: training records of the labelled turns
        (`feedback.export`: conflicts resolved, project-written refusals as risky targets);
        CSV: every column of the turns (`labelled_only` applies to the CSV)."""
        self.check_token(token)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.files.new_path(f"safevlm-turns-{stamp}.{'jsonl' if kind == 'jsonl' else 'csv'}")
        try:
            if kind == "jsonl":  # training records: labelled turns only, by the feedback export's rules
                records, _ = feedback_records(self.store, self.taxonomy)
                write_records(records, path)
                count = len(records)
            else:
                count = self.store.export_csv(path, labelled_only=bool(labelled_only))
        except (StoreError, FeedbackError) as error:
            self.files.remove(path)
            raise shown(error) from None
        minutes = self.files.seconds / 60
        gr.Info(f"Exported {count} turn(s) to {path.name}; the file is deleted in {minutes:g} min.")
        return self.files.track(path)

    # --- thresholds from labels --------------------------------------------------------------

    def suggest(self, token: str, max_false_flags_pct: float, type_name: str) -> tuple[str, pd.DataFrame, dict, str]:
        """Per-type thresholds from the labelled turns at a false-flag budget (in percent):
        (summary, curve of `type_name`, the policy for Apply, path of the policy file)."""
        self.check_token(token)
        try:
            policy = threshold_policy(self.store.labelled_turns(), self.taxonomy,
                                      self.engine.default_thresholds(), float(max_false_flags_pct) / 100,
                                      db=str(self.settings.db))
        except (FeedbackError, StoreError) as error:
            raise shown(error) from None
        path = self.files.new_path(f"safevlm-policy-{time.strftime('%Y%m%d-%H%M%S')}.json")
        write_policy(policy, path)
        text = "```\n" + summary(policy, self.taxonomy) + "\n```"
        return text, curve_frame(policy, self._type_name(type_name)), policy, self.files.track(path)

    def curve(self, policy: dict | None, type_name: str) -> pd.DataFrame:
        """The curve of another type from the last suggestion (no recomputation)."""
        return curve_frame(policy, self._type_name(type_name)) if policy else curve_frame(None, "")

    def apply(self, token: str, policy: dict | None) -> str:
        """Make the suggested thresholds the defaults of new chats and API calls (this process,
        until it restarts: keep the policy file and set SAFEVLM_POLICY to make it last)."""
        self.check_token(token)
        if not policy:
            raise gr.Error("Compute a suggestion first.", print_exception=False)
        try:
            thresholds = self.engine.thresholds(policy["thresholds"])
        except ThresholdError as error:
            raise shown(error) from None
        self.engine.use_policy(thresholds)
        types = ", ".join(f"{n} {v:.2f}" for n, v in thresholds.types.items())
        return (f"Applied to new chats and API calls: {types}; level {thresholds.level:.2f}. Open chats keep "
                "their sliders. This lasts until the app restarts: download the policy file and set "
                "SAFEVLM_POLICY to keep it.")

    def _type_name(self, value: str) -> str:
        """A type's name from its name or its short label."""
        if value in self.taxonomy.types:
            return value
        labels = dict(zip(self.taxonomy.type_labels, self.taxonomy.types, strict=True))
        if value in labels:
            return labels[value]
        raise gr.Error(f"Unknown type {value!r}.", print_exception=False)

    def _level_index(self, value: Any) -> int:
        for i, (name, label) in enumerate(
            zip(self.taxonomy.levels, self.taxonomy.level_labels, strict=True)
        ):
            if value in (name, label, str(i)) or (isinstance(value, int) and value == i):
                return i
        raise gr.Error(f"Unknown level {value!r}.", print_exception=False)


CURVE_SERIES = ("recall", "precision", "false flags")


def curve_frame(policy: dict | None, type_name: str) -> pd.DataFrame:
    """Recall, precision and false-flag rate of one type over the threshold grid, plus two
    vertical marks at the current and the suggested threshold (series of their own)."""
    rows = []
    if policy and type_name in policy.get("curves", {}):
        for row in policy["curves"][type_name]:
            for series, key in zip(CURVE_SERIES, ("recall", "precision", "false_flags"), strict=True):
                if row[key] is not None:
                    rows.append({"threshold": row["threshold"], "value": row[key], "series": series})
        for series, thresholds in (("current", policy["current"]["thresholds"]), ("suggested", policy["thresholds"])):
            at = thresholds["types"][type_name]
            rows += [{"threshold": at, "value": 0.0, "series": series}, {"threshold": at, "value": 1.0, "series": series}]
    return pd.DataFrame(rows, columns=["threshold", "value", "series"])


def _shorten(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _turn_id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(
            "Pick a turn first (click a row or type its id).", print_exception=False
        ) from None
