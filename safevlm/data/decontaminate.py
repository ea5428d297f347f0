"""Decontamination: requests that reword an evaluation-benchmark prompt never reach training.

data/public/benchmark_fingerprints/fingerprints.json holds, per benchmark prompt (XSTest, FigStep's
SafeBench), the hashed set of its normalized words (no benchmark text is stored). A
training request whose hashed word set overlaps one of them by Jaccard >= 0.8 is dropped
from the records stages train and calibrate on (`clean_records`); eval sets keep theirs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import lru_cache

from safevlm.data.public import PUBLIC_DIR, normalize
from safevlm.data.schema import Record

log = logging.getLogger(__name__)
FILE = PUBLIC_DIR / "benchmark_fingerprints" / "fingerprints.json"
THRESHOLD = 0.8


def fingerprint(text: str) -> frozenset[str]:
    return frozenset(hashlib.sha256(w.encode()).hexdigest()[:8] for w in normalize(text).split())


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, list[frozenset[str]]], int]:
    if not FILE.exists():
        return {}, 0
    items = [frozenset(f) for f in json.loads(FILE.read_text(encoding="utf-8"))["fingerprints"]]
    index: dict[str, list[frozenset[str]]] = {}
    for item in items:
        for h in item:
            index.setdefault(h, []).append(item)
    return index, len(items)


def is_contaminated(text: str, threshold: float = THRESHOLD) -> bool:
    words = fingerprint(text)
    index, _ = _index()
    for h in words:
        for other in index.get(h, ()):
            if len(words & other) / len(words | other) >= threshold:
                return True
    return False


def request_text(record: Record) -> str:
    """The request a record carries: its drawn or asked request, else its prompt."""
    return (record.meta or {}).get("request") or record.prompt


def clean_records(records: Sequence[Record]) -> list[Record]:
    """Records whose request rewords no benchmark prompt."""
    kept = [r for r in records if not is_contaminated(request_text(r))]
    if len(kept) < len(records):
        log.info("decontamination: dropped %d record(s) rewording a benchmark prompt",
                 len(records) - len(kept))
    return kept
