"""Labelled turns as training records (the JSONL schema of `safevlm.data.schema`), with
conflicting labels resolved and the annotators' agreement reported.

Rules (README "Feedback export"):
- A label's truth is `labels.truth` (true type and level; "decision correct" confirms the
  decision; a wrong decision with no type is no label). Each annotator counts once per turn:
  their newest label.
- Turns with the same image and prompt are one item. Its type is the majority of its labels,
  ties going to the most recent label; its level the majority among the labels of that type,
  ties likewise.
- The target answer: for a risky item the taxonomy's refusal for its type (project-written;
  a logged answer to a risky request is never a target); for a safe item the newest logged
  answer rated 4 or 5, else none (response "", meta.target "head-only": it trains the safety
  head, not the answer).
- Agreement, over items two or more annotators labelled: the share of annotator pairs that
  agree on the type, and per type Cohen's kappa of "is this type" over those pairs.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

from safevlm.feedback.labels import FeedbackError, truth
from safevlm.files import write_atomically
from safevlm.taxonomy import Taxonomy

GOOD_RATING = 4


def _level(turn_label: dict, label_type: str, taxonomy: Taxonomy) -> int:
    if label_type == taxonomy.safe_type:
        return 0
    level = turn_label.get("true_level")
    if level is None:  # "decision correct": the logged level
        level = turn_label.get("level") or 1
    return max(1, min(int(level), taxonomy.max_level))


def _pick(votes: list[tuple[str | int, tuple[str, int]]]):
    """Majority of (value, (created, annotation id)) votes; ties to the most recent vote
    among the tied (the id orders labels saved within the same millisecond)."""
    counts = Counter(value for value, _ in votes)
    top = max(counts.values())
    tied = {value for value, n in counts.items() if n == top}
    return max((v for v in votes if v[0] in tied), key=lambda v: v[1])[0]


def kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two raters' yes/no over `pairs`; None when chance agreement is 1."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    p_a, p_b = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    chance = p_a * p_b + (1 - p_a) * (1 - p_b)
    return None if chance >= 1 else (observed - chance) / (1 - chance)


def feedback_records(store, taxonomy: Taxonomy) -> tuple[list[dict], dict]:
    """(records, report) for every labelled turn of `store` (see the module's rules)."""
    turns = store.labelled_turns()
    if not turns:
        raise FeedbackError(f"no labelled turns in {store.path}: label turns in the Annotate tab first")
    items: dict[tuple, list[dict]] = defaultdict(list)
    skipped = Counter()
    for turn in turns:
        if turn["status"] != "complete":
            skipped["not complete"] += 1
            continue
        if not turn.get("image_path"):
            skipped["no image"] += 1
            continue
        if not Path(turn["image_path"]).is_file():
            raise FeedbackError(f"turn {turn['id']}: its image {turn['image_path']} is missing from the log's "
                                "image folder; restore it or delete the turn before exporting")
        labels = []
        newest: dict[str, dict] = {}
        for label in store.annotation_history(turn["id"]):  # oldest first: the last one per annotator wins
            newest[label["annotator"]] = label
        for annotator, label in newest.items():
            label_type = truth({**turn, **{k: label[k] for k in ("true_type", "true_level", "decision_correct")}},
                               taxonomy)
            if label_type is None:
                continue
            level = _level({**turn, **label}, label_type, taxonomy)
            labels.append({"annotator": annotator, "type": label_type, "level": level,
                           "created": label["created"], "id": label["id"], "turn": turn})
        if not labels:
            skipped["no usable label"] += 1
            continue
        items[(turn.get("image_hash"), " ".join(turn["prompt"].split()))].extend(labels)

    records, pair_types = [], []
    for labels in items.values():
        label_type = _pick([(lab["type"], (lab["created"], lab["id"])) for lab in labels])
        level = _pick([(lab["level"], (lab["created"], lab["id"])) for lab in labels if lab["type"] == label_type])
        turns_of_item = {lab["turn"]["id"]: lab["turn"] for lab in labels}
        newest_turn = max(turns_of_item.values(), key=lambda t: t["id"])
        meta = {"turns": sorted(turns_of_item), "labels": len(labels),
                "annotators": sorted({lab["annotator"] for lab in labels})}
        comments = [t["feedback_comment"] for t in turns_of_item.values() if t.get("feedback_comment")]
        if comments:
            meta["feedback_comment"] = " | ".join(comments)
        if label_type != taxonomy.safe_type:
            response, meta["target"] = taxonomy.refusal(label_type), "refusal"
        else:
            rated = [t for t in turns_of_item.values() if (t.get("response_rating") or 0) >= GOOD_RATING]
            good = max(rated, key=lambda t: t["id"]) if rated else None
            response, meta["target"] = (good["response"], "rated answer") if good else ("", "head-only")
        records.append({"image": newest_turn["image_path"], "prompt": newest_turn["prompt"], "response": response,
                        "type": label_type, "level": level, "source": "annotation", "split": "train", "meta": meta})
        by_annotator = {}
        for lab in sorted(labels, key=lambda lab: (lab["created"], lab["id"])):
            by_annotator[lab["annotator"]] = lab["type"]
        pair_types += list(combinations(by_annotator.values(), 2))
    report = {"turns": len(turns), "records": len(records), "skipped": dict(skipped),
              "by_type": dict(Counter(r["type"] for r in records)),
              "targets": dict(Counter(r["meta"]["target"] for r in records)),
              "agreement": {"pairs": len(pair_types),
                            "percent": (100 * sum(a == b for a, b in pair_types) / len(pair_types)
                                        if pair_types else None),
                            "kappa": {t: kappa([(a == t, b == t) for a, b in pair_types]) for t in taxonomy.types}}}
    return records, report


def write_records(records: list[dict], path: str | Path) -> Path:
    """The records as JSONL, written atomically (a failed export leaves the old file)."""
    return write_atomically(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
