"""`safevlm scan`: the safety head over a whole dataset (a folder of images, a training JSONL
or a LLaVA-style JSON) to find risky content, as the paper did with open multimodal sets.

Owns the resumable scan.csv and the run that fills it (inputs come from `scan_inputs`, the
scan.html report from `scan_report`); not the model (`engine`), the decision rule
(`policy`) or the training schema (`data.schema`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safevlm.csv_cells import spreadsheet_safe
from safevlm.files import write_atomically
from safevlm.policy import Thresholds
from safevlm.taxonomy import Taxonomy
from safevlm.tools.scan_inputs import ScanError, ScanItem
from safevlm.tools.scan_report import write_report

if TYPE_CHECKING:  # torch and the model load only when a scan runs, not for `safevlm --help`
    from safevlm.engine import ChatEngine, Verdict

log = logging.getLogger(__name__)

CSV_NAME, SETTINGS_NAME = "scan.csv", "scan.json"
MAX_CELL_CHARS = 10_000  # well under csv's default field limit (131072) when read back
# csv quotes a cell holding a CR only when CR is part of the line terminator: RFC 4180's CRLF
# keeps a prompt's CR inside its cell instead of ending the row there.
LINE_END = "\r\n"
TEXT_COLUMNS = ("key", "image", "prompt", "reader_text", "error")


@dataclass
class ScanResult:
    """What one run did (`scanned` items, of which `errors` unreadable, in `seconds`) and
    what the whole CSV now holds (`rows`, `flagged`, `unreadable`)."""

    csv_path: Path
    html_path: Path
    skipped: int  # already in the CSV from an earlier run
    scanned: int
    errors: int
    seconds: float
    rows: int
    flagged: int
    unreadable: int

    @property
    def images_per_second(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        classified = self.rows - self.unreadable
        share = f" ({self.flagged / classified:.1%})" if classified else ""
        return (
            f"scan: {self.rows} items in {self.csv_path} ({self.scanned} new, {self.skipped} "
            f"already done), {self.unreadable} unreadable; {self.flagged} of {classified} flagged"
            f"{share}; {self.images_per_second:.2f} images/s ({self.scanned} in "
            f"{self.seconds:.1f} s); report: {self.html_path}"
        )


# ---------------------------------------------------------------------- scan.csv


def csv_columns(taxonomy: Taxonomy) -> list[str]:
    return [
        "key",
        "image",
        "prompt",
        "decision",
        "type",
        "level",
        "flagged",
        *(f"p_{t}" for t in taxonomy.types),
        *(f"p_level_{k}" for k in range(len(taxonomy.levels))),
        "reader_text",
        "error",
    ]


def _cell(text: str) -> str:
    return spreadsheet_safe(text[:MAX_CELL_CHARS])


def verdict_row(item: ScanItem, verdict: Verdict, taxonomy: Taxonomy) -> dict:
    d = verdict.decision
    row = {
        "key": item.key,
        "image": str(item.image or ""),
        "prompt": item.prompt,
        "decision": d.action,
        "type": d.type,
        "level": d.level,
        "flagged": int(d.flagged),
        "reader_text": verdict.reader_text,
        "error": "",
    }
    row.update({f"p_{t}": f"{verdict.type_probs[t]:.5f}" for t in taxonomy.types})
    row.update({f"p_level_{k}": f"{p:.5f}" for k, p in enumerate(verdict.level_probs)})
    return row


def error_row(item: ScanItem, message: str) -> dict:
    return {
        "key": item.key,
        "image": str(item.image or ""),
        "prompt": item.prompt,
        "error": " ".join(message.split()),
    }


def read_rows(csv_path: Path, columns: Sequence[str]) -> list[dict]:
    """The complete rows of a scan.csv. A row cut short by a killed run (fewer fields, or a
    last line without its newline) is dropped and the file rewritten without it."""
    if not csv_path.is_file() or csv_path.stat().st_size == 0:
        return []
    # newline="": a CR inside a quoted cell (a prompt can hold one) stays in its cell
    with csv_path.open(newline="", encoding="utf-8") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if rows[0] != list(columns):
        raise ScanError(
            f"{csv_path} has other columns than this taxonomy's scan; pass another "
            "--out, or delete it to start over"
        )
    kept = [r for r in rows[1:] if len(r) == len(columns)]
    if not text.endswith("\n") and kept and len(rows[-1]) == len(columns):
        kept.pop()
    if len(kept) != len(rows) - 1:
        log.warning(
            "%s: dropping %d incomplete row(s) left by an interrupted scan",
            csv_path,
            len(rows) - 1 - len(kept),
        )
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator=LINE_END).writerows([columns, *kept])
        write_atomically(csv_path, buffer.getvalue())
    return [dict(zip(columns, r, strict=True)) for r in kept]


def _check_settings(out: Path, settings: dict) -> None:
    """A resumed scan must classify the rest the same way as the rows already written."""
    path = out / SETTINGS_NAME
    if path.is_file() and (out / CSV_NAME).is_file():
        earlier = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(
            k for k in settings.keys() | earlier.keys() if settings.get(k) != earlier.get(k)
        )
        if changed:
            raise ScanError(
                f"{out / CSV_NAME} was written with other settings ({', '.join(changed)} "
                "differ); pass another --out, or delete it to start over"
            )
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------- the scan


def scan(
    engine: ChatEngine,
    items: Sequence[ScanItem],
    out: str | Path,
    thresholds: Thresholds | str | dict | None = None,
    batch_size: int = 16,
    top: int = 50,
    progress: bool = True,
    source: str = "",
) -> ScanResult:
    """Classify every item not already in OUT/scan.csv, `batch_size` at a time, appending (and
    flushing) one row per item as it goes, then write OUT/scan.html from the whole CSV. An
    unreadable image or unusable prompt becomes a row with `error` set. `source` names the
    input and prompt: a resumed scan must have the same, and the same model and thresholds."""
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = engine.taxonomy
    thresholds = engine.thresholds(thresholds)
    columns = csv_columns(taxonomy)
    csv_path = out / CSV_NAME
    _check_settings(
        out,
        {
            "source": source,
            "model": engine.describe().get("base"),
            "checkpoint": engine.checkpoint_id,
            "reader": engine.reader is not None,
            "thresholds": thresholds.to_dict(),
        },
    )
    done = {row["key"] for row in read_rows(csv_path, columns)}
    pending = [item for item in items if _cell(item.key) not in done]
    if pending and engine.reader is not None:
        _warm_up(engine)
    errors = 0
    start = time.perf_counter()
    with (
        csv_path.open("a", newline="", encoding="utf-8") as f,
        tqdm(
            total=len(pending), desc="scan", unit="img", disable=not progress, dynamic_ncols=True
        ) as bar,
    ):
        writer = csv.DictWriter(f, columns, lineterminator=LINE_END, restval="")
        if f.tell() == 0:
            writer.writeheader()
        for rows in _classified_batches(engine, pending, batch_size, thresholds, PREFETCH):
            for row in rows:
                errors += bool(row["error"])
                writer.writerow({k: _cell(v) if k in TEXT_COLUMNS else v for k, v in row.items()})
                f.flush()
                bar.update()
    seconds = time.perf_counter() - start
    rows = read_rows(csv_path, columns)
    html_path = write_report(rows, out, taxonomy, top, thresholds)
    return ScanResult(
        csv_path,
        html_path,
        len(items) - len(pending),
        len(pending),
        errors,
        seconds,
        len(rows),
        sum(r["flagged"] == "1" for r in rows),
        sum(bool(r["error"]) for r in rows),
    )


PREFETCH = True


def _classified_batches(engine, pending, batch_size, thresholds, prefetch):
    """CSV rows, one list per batch. The per-image work (decoding, vision, OCR) of the next
    batch runs on a second thread while this batch's LLM query pass runs here."""
    from concurrent.futures import ThreadPoolExecutor

    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    if not prefetch:
        for batch in batches:
            yield classify_read(engine, read_items(engine, batch), thresholds)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-read") as ahead:
        future = ahead.submit(read_items, engine, batches[0]) if batches else None
        for k in range(len(batches)):
            read = future.result()
            if k + 1 < len(batches):
                future = ahead.submit(read_items, engine, batches[k + 1])
            yield classify_read(engine, read, thresholds)


def _warm_up(engine: ChatEngine) -> None:
    """Load the reader's models before the clock starts: images/s measures the scan, not the
    one-off model load (like the engine's own, outside the timing too)."""
    engine.reader.warm_up()


@dataclass
class _Read:
    """An item after its per-image work: the engine's prepared features and reader text, or
    the reason it cannot be classified."""

    item: ScanItem
    prompt: str = ""
    prepared: object = None
    error: str = ""


def read_items(engine: ChatEngine, items: Sequence[ScanItem]) -> list[_Read]:
    """Decode each image, clean its prompt, then vision and reader through `engine.prepare`."""
    from safevlm.engine import PromptError, clean_prompt
    from safevlm.images import ImageError, load_image

    read, loaded = [], []
    for item in items:
        try:
            image = load_image(item.image) if item.image is not None else None
            prompt = clean_prompt(item.prompt)
        except (ImageError, PromptError) as e:
            read.append(_Read(item, error=str(e)))
            continue
        except OSError as e:  # permissions, I/O: load_image only checks that the file exists
            read.append(_Read(item, error=f"{item.image}: cannot read ({e.strerror or e})"))
            continue
        read.append(_Read(item, prompt))
        loaded.append((read[-1], image))
    prepared = engine.prepare_many([image for _, image in loaded])  # one vision pass, OCR in parallel
    for (r, _), p in zip(loaded, prepared, strict=True):
        r.prepared = p
    return read


def classify_read(engine: ChatEngine, read: Sequence[_Read], thresholds: Thresholds) -> list[dict]:
    """CSV rows for a batch, in order: a verdict each (one batched head pass), or the error."""
    ready = [r for r in read if not r.error]
    verdicts = iter(
        engine.classify_prepared([r.prepared for r in ready], [r.prompt for r in ready], thresholds)
        if ready
        else ()
    )
    return [
        error_row(r.item, r.error)
        if r.error
        else verdict_row(r.item, next(verdicts), engine.taxonomy)
        for r in read
    ]


__all__ = [
    "ScanResult",
    "csv_columns",
    "read_rows",
    "scan",
]
